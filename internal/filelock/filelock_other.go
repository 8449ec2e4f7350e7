//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package filelock

import "io/fs"

// Lock does nothing where flock(2) is missing; the tools the lock guards
// against do not run on such systems.
func Lock(string, fs.FileMode) (func(), error) { return func() {}, nil }
