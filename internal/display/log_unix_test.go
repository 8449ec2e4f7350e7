//go:build unix

package display_test

import (
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/ferry-update/ferry/internal/display"
)

// TestNewLogStampsOffTerminal: a file or pipe gets time stamps. (A terminal
// does not: cmd/ferry-agent's testdata/log.txtar runs it under script(1).)
func TestNewLogStampsOffTerminal(t *testing.T) {
	f, err := os.Create(t.TempDir() + "/log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	t.Setenv("JOURNAL_STREAM", "")
	if display.NewLog(f).Now == nil {
		t.Error("a log file gets no time stamps")
	}
	// Under systemd, stderr connected to the journal gets none: the
	// journal stamps every line. JOURNAL_STREAM names that stream.
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino))
	if display.NewLog(f).Now != nil {
		t.Error("the journal's stream gets time stamps")
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino+1))
	if display.NewLog(f).Now == nil {
		t.Error("a log file gets no time stamps while the journal is another stream")
	}
}
