//go:build cgo

package zstd

/*
// ZSTD_versionNumber is compiled into this binary by github.com/DataDog/zstd
// (or comes from the system library with its external_libzstd tag), so
// declaring it is enough; its header need not be on our include path.
unsigned ZSTD_versionNumber(void);
*/
import "C"

import (
	"errors"
	"fmt"
	"io"

	ddzstd "github.com/DataDog/zstd"
)

// chunkSize is how much input the libzstd writer gathers before each cgo
// call. Large chunks amortise the call overhead, and DataDog's Writer sizes
// its output buffer by the chunk, so very large writes are split too.
const chunkSize = 1 << 20

func implementation() string {
	v := uint(C.ZSTD_versionNumber())
	return fmt.Sprintf("libzstd %d.%d.%d (cgo)", v/10000, v/100%100, v%100)
}

func newWriter(w io.Writer, workers int) (io.WriteCloser, error) {
	enc := ddzstd.NewWriterLevel(w, Level)
	// libzstd's nbWorkers=1 already moves compression to one background
	// thread, overlapping it with our I/O, as the CLI's -T1 does.
	if err := enc.SetNbWorkers(workers); err != nil {
		_ = enc.Close() // the SetNbWorkers error is the one to report
		return nil, fmt.Errorf("creating zstd writer with %d workers: %w", workers, err)
	}
	return &chunkWriter{enc: enc, buf: make([]byte, 0, chunkSize)}, nil
}

var errClosed = errors.New("zstd: write after Close")

// chunkWriter hands libzstd input in chunkSize pieces.
type chunkWriter struct {
	enc      *ddzstd.Writer
	buf      []byte
	err      error // first Write error, sticky
	closed   bool
	closeErr error
}

func (cw *chunkWriter) Write(p []byte) (int, error) {
	if cw.closed {
		return 0, errClosed
	}
	if cw.err != nil {
		return 0, cw.err
	}
	n := 0
	for len(p) > 0 {
		if len(cw.buf) == 0 && len(p) >= chunkSize {
			// Whole chunks go straight to libzstd, without a copy.
			if err := cw.write(p[:chunkSize]); err != nil {
				return n, err
			}
			p = p[chunkSize:]
			n += chunkSize
			continue
		}
		c := copy(cw.buf[len(cw.buf):cap(cw.buf)], p)
		cw.buf = cw.buf[:len(cw.buf)+c]
		p = p[c:]
		n += c
		if len(cw.buf) == cap(cw.buf) {
			if err := cw.write(cw.buf); err != nil {
				return n, err
			}
			cw.buf = cw.buf[:0]
		}
	}
	return n, nil
}

func (cw *chunkWriter) write(p []byte) error {
	if _, err := cw.enc.Write(p); err != nil {
		cw.err = fmt.Errorf("compressing zstd stream: %w", err)
		return cw.err
	}
	return nil
}

// Close compresses what is buffered, ends the frame and frees libzstd's
// context. It does not close the underlying writer.
func (cw *chunkWriter) Close() error {
	if cw.closed {
		return cw.closeErr
	}
	cw.closed = true
	if cw.err == nil && len(cw.buf) > 0 {
		_ = cw.write(cw.buf) // kept in cw.err
	}
	cw.buf = nil
	err := cw.enc.Close()
	switch {
	case cw.err != nil:
		cw.closeErr = cw.err
	case err != nil:
		cw.closeErr = fmt.Errorf("finishing zstd stream: %w", err)
	}
	return cw.closeErr
}
