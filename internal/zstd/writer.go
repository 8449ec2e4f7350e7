package zstd

import (
	"fmt"
	"io"
	"runtime"

	kzstd "github.com/klauspost/compress/zstd"
)

// Level is the zstd CLI level NewWriter matches.
const Level = 3

// DefaultMaxWorkers caps the thread count NewWriter picks by itself: each
// libzstd worker holds jobs of input and output, so memory grows with it
// (about 55 MiB at 2 workers, 72 MiB at 4, 100 MiB at 8).
const DefaultMaxWorkers = 4

// NewWriter returns a zstd encoder at a level comparable to the zstd CLI's
// -3, using workers threads (0 means GOMAXPROCS, at most DefaultMaxWorkers). Its output is a standard
// zstd frame stream that any decoder reads. The caller must Close the
// writer to finish the stream and release its resources; Close does not
// close w.
func NewWriter(w io.Writer, workers int) (io.WriteCloser, error) {
	if workers < 0 {
		return nil, fmt.Errorf("creating zstd writer: negative worker count %d", workers)
	}
	if workers == 0 {
		workers = min(runtime.GOMAXPROCS(0), DefaultMaxWorkers)
	}
	return newWriter(w, workers)
}

// Implementation reports the encoder NewWriter uses, such as
// "libzstd 1.5.7 (cgo)" or "klauspost/compress (pure Go)".
func Implementation() string {
	return implementation()
}

// newPureGoWriter is the encoder of builds without cgo. It is compiled into
// every build so that tests can compare both encoders.
func newPureGoWriter(w io.Writer, workers int) (io.WriteCloser, error) {
	enc, err := kzstd.NewWriter(w,
		kzstd.WithEncoderLevel(kzstd.SpeedDefault),
		kzstd.WithEncoderConcurrency(workers),
		kzstd.WithEncoderCRC(false),
		// An empty input still yields one valid (empty) frame, as libzstd
		// and the CLI do, rather than zero bytes.
		kzstd.WithZeroFrames(true),
	)
	if err != nil {
		return nil, fmt.Errorf("creating zstd writer: %w", err)
	}
	return enc, nil
}
