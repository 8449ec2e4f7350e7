//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filelock

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// Lock waits for an exclusive lock on path, creating the file with perm if
// needed. Calling unlock (closing the file) releases it; so does the
// process ending, so a crash never leaves a stale lock.
func Lock(path string, perm fs.FileMode) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, perm)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
