package display_test

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ferry-update/ferry/internal/display"
)

func TestLogWriter(t *testing.T) {
	at := time.Date(2026, 3, 1, 13, 0, 5, 0, time.FixedZone("CET", 3600))
	var b strings.Builder
	l := &display.LogWriter{W: &b, Now: func() time.Time { return at }}
	fmt.Fprintf(l, "writing payload %s\n", "rootfs")
	// A health check's output comes in pieces, with escape sequences.
	io.WriteString(l, "health: \x1b[32mok")
	io.WriteString(l, "\x1b[0m\n\tdetail\nno newline")
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "2026-03-01T12:00:05Z writing payload rootfs\n" +
		"2026-03-01T12:00:05Z health: \\x1b[32mok\\x1b[0m\n" +
		"2026-03-01T12:00:05Z \tdetail\n" +
		"2026-03-01T12:00:05Z no newline\n"
	if b.String() != want {
		t.Errorf("log:\n%q\nwant\n%q", b.String(), want)
	}

	// Without Now, no stamps; a line longer than the limit is cut.
	b.Reset()
	l = &display.LogWriter{W: &b}
	io.WriteString(l, "plain\n"+strings.Repeat("x", 70000))
	if got := b.String(); !strings.HasPrefix(got, "plain\nxxx") || strings.Count(got, "\n") != 2 {
		t.Errorf("log of %d bytes, %d lines, starting %q", len(got), strings.Count(got, "\n"), got[:min(len(got), 12)])
	}
	l.Flush()
	if got := b.String(); len(got) != len("plain\n")+70000+1 {
		t.Errorf("log of %d bytes after Flush", len(got))
	}
}
