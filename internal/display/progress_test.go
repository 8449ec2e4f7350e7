package display_test

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/internal/display"
)

func TestProgressOffWithoutTerminal(t *testing.T) {
	var buf bytes.Buffer
	update, finish := display.Progress(&buf, 100, "x")
	if update != nil {
		t.Error("a bar was made for a writer that is not a terminal")
	}
	finish()
	if buf.Len() != 0 {
		t.Errorf("wrote %q to a non-terminal", buf.String())
	}
}

func TestCountingReader(t *testing.T) {
	var seen []int64
	r := &display.CountingReader{R: strings.NewReader(strings.Repeat("x", 10000)), Update: func(n int64) { seen = append(seen, n) }}
	n, err := io.Copy(io.Discard, r)
	if err != nil || n != 10000 {
		t.Fatalf("copied %d, %v", n, err)
	}
	if len(seen) == 0 || seen[len(seen)-1] != 10000 {
		t.Errorf("updates %v, want the last to be 10000", seen)
	}
	// A nil Update (no terminal) is allowed.
	if _, err := io.Copy(io.Discard, &display.CountingReader{R: strings.NewReader("abc")}); err != nil {
		t.Fatal(err)
	}
}
