package bootenv

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ferry-update/ferry/internal/filelock"
)

// lockFile takes the lock libubootenv takes on the same file; an empty path
// means no locking.
//
// The lock's directory (/var/lock, that is /run/lock, a tmpfs) may not exist
// yet when boot-check runs early in boot, or in a minimal container; it is
// created then, as systemd-tmpfiles would (mode 1777, so that fw_setenv run
// by another user can lock too), rather than failing the boot check.
func lockFile(path string) (unlock func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	unlock, err = filelock.Lock(path, 0o666)
	if err != nil && errors.Is(err, fs.ErrNotExist) {
		dir := filepath.Dir(path)
		// /var/lock is a symbolic link to /run/lock: create its target.
		if target, lerr := os.Readlink(dir); lerr == nil {
			if !filepath.IsAbs(target) {
				target = filepath.Join(filepath.Dir(dir), target)
			}
			dir = target
		}
		if mkErr := os.MkdirAll(dir, 0o755); mkErr == nil {
			_ = os.Chmod(dir, 0o1777|fs.ModeSticky)
			unlock, err = filelock.Lock(path, 0o666)
		}
	}
	return unlock, err
}
