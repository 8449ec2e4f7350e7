//go:build unix

package display

import (
	"fmt"
	"os"
	"syscall"
)

// isJournal reports whether w is the stream systemd connected to the
// journal, which stamps every line itself: systemd.exec(5) names it in
// $JOURNAL_STREAM as DEVICE:INODE, to be compared with the file's.
func isJournal(w any) bool {
	f, ok := w.(*os.File)
	env := os.Getenv("JOURNAL_STREAM")
	if !ok || env == "" {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return env == fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}
