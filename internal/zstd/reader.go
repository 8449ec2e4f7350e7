package zstd

import (
	"errors"
	"fmt"
	"io"

	kzstd "github.com/klauspost/compress/zstd"
)

// MaxWindow is the largest frame window NewReader accepts: 128 MiB, the
// zstd CLI's own default decoding limit (--memory=128MB). Our frames use
// 2 MiB (libzstd level 3) or 8 MiB (klauspost SpeedDefault), so the limit
// only refuses foreign or hostile input. The decoder allocates a frame's
// whole window when the frame starts, so one reader costs at most about
// MaxWindow however the input is crafted.
const MaxWindow = 128 << 20

// ErrWindowTooLarge is returned (wrapped) when a frame declares a window,
// or a single-segment content size, above MaxWindow.
var ErrWindowTooLarge = errors.New("frame window too large")

// NewReader returns a streaming zstd decoder for r. It decodes on the
// calling goroutine with small buffers and refuses frames whose window
// exceeds MaxWindow (ErrWindowTooLarge). It does not verify the content:
// callers check the payload digest while reading, as for any untrusted
// input. Close releases the decoder; it does not close r.
func NewReader(r io.Reader) (io.ReadCloser, error) {
	return newReader(r, MaxWindow)
}

// newReader is NewReader with another window limit, for the fuzz test.
// The decoder allocates a frame's whole window when the frame starts.
func newReader(r io.Reader, maxWindow uint64) (io.ReadCloser, error) {
	dec, err := kzstd.NewReader(r,
		// One goroutine: no read-ahead of decoded blocks. On a 2-core
		// device the asynchronous decoder buys little and costs buffers.
		kzstd.WithDecoderConcurrency(1),
		kzstd.WithDecoderLowmem(true),
		kzstd.WithDecoderMaxWindow(maxWindow),
		// Without this, a small *bytes.Buffer (or anything with Bytes and
		// Len) is decoded whole into memory, bounded only by the 64 GiB
		// default of WithDecoderMaxMemory rather than by the window.
		kzstd.WithDecodeBuffersBelow(0),
	)
	if err != nil {
		return nil, fmt.Errorf("creating zstd reader: %w", err)
	}
	return &reader{dec: dec, maxWindow: maxWindow}, nil
}

type reader struct {
	dec       *kzstd.Decoder
	maxWindow uint64
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.dec.Read(p)
	return n, r.wrapErr(err)
}

// WriteTo lets io.Copy take decoded blocks without an extra copy.
func (r *reader) WriteTo(w io.Writer) (int64, error) {
	n, err := r.dec.WriteTo(w)
	return n, r.wrapErr(err)
}

func (r *reader) Close() error {
	r.dec.Close()
	return nil
}

func (r *reader) wrapErr(err error) error {
	switch {
	case err == nil, err == io.EOF:
		return err
	case errors.Is(err, kzstd.ErrWindowSizeExceeded), errors.Is(err, kzstd.ErrDecoderSizeExceeded):
		return fmt.Errorf("decompressing zstd stream: %w: over %d MiB", ErrWindowTooLarge, r.maxWindow>>20)
	default:
		return fmt.Errorf("decompressing zstd stream: %w", err)
	}
}
