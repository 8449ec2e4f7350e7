//go:build !cgo

package zstd

import "io"

func newWriter(w io.Writer, workers int) (io.WriteCloser, error) {
	return newPureGoWriter(w, workers)
}

func implementation() string { return "klauspost/compress (pure Go)" }
