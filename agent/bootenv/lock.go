package bootenv

import "github.com/ferry-update/ferry/internal/filelock"

// lockFile takes the lock libubootenv takes on the same file; an empty path
// means no locking.
func lockFile(path string) (unlock func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	return filelock.Lock(path, 0o666)
}
