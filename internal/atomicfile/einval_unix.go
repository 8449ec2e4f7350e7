//go:build unix

package atomicfile

import "syscall"

var errEINVAL error = syscall.EINVAL
