//go:build !unix

package atomicfile

import "errors"

var errEINVAL = errors.New("no EINVAL on this platform")
