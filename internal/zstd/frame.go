package zstd

import (
	"fmt"

	kzstd "github.com/klauspost/compress/zstd"
)

// FrameLevel is the libzstd level of FrameEncoder's frames. Chunks are
// small (16 KiB by default) and compress without their neighbours, so a
// higher level than Level pays: on the bench image level 12 made the
// frames 7 % smaller than level 3 (the chunked bundle, and the new chunks
// a device fetches, 0.4 MB of 60 MB), at about 5 times the CPU time of
// level 3; level 19 saved 1 % more at 3.5 times level 12's time.
const FrameLevel = 12

// FrameEncoder compresses whole buffers into single zstd frames, one per
// call: the frames of a chunked payload (bundle/FORMAT.md §15), at
// FrameLevel with libzstd (cgo builds), at klauspost/compress's
// SpeedBetterCompression without. It is not safe for concurrent use; give
// each goroutine its own.
type FrameEncoder interface {
	// EncodeFrame appends the frame of src to dst.
	EncodeFrame(dst, src []byte) ([]byte, error)
}

// NewFrameEncoder returns the build's frame encoder (libzstd with cgo,
// klauspost/compress without).
func NewFrameEncoder() (FrameEncoder, error) { return newFrameEncoder() }

type pureGoFrameEncoder struct{ enc *kzstd.Encoder }

func newPureGoFrameEncoder() (FrameEncoder, error) {
	enc, err := kzstd.NewWriter(nil,
		kzstd.WithEncoderLevel(kzstd.SpeedBetterCompression),
		kzstd.WithEncoderConcurrency(1),
		kzstd.WithEncoderCRC(false),
		kzstd.WithZeroFrames(true),
	)
	if err != nil {
		return nil, fmt.Errorf("creating zstd frame encoder: %w", err)
	}
	return pureGoFrameEncoder{enc}, nil
}

func (e pureGoFrameEncoder) EncodeFrame(dst, src []byte) ([]byte, error) {
	return e.enc.EncodeAll(src, dst), nil
}

// FrameDecoder decodes single frames of known content size, such as the
// chunks of a delta install. It is safe for concurrent use.
type FrameDecoder struct{ dec *kzstd.Decoder }

// NewFrameDecoder returns a decoder for frames of at most maxSize bytes
// of content. It refuses a frame whose content or window exceeds twice
// that (an encoder rounds the window of a small frame up to a power of
// two), or whose window exceeds MaxWindow, so a hostile frame costs at
// most that much memory; the caller checks the exact size.
func NewFrameDecoder(maxSize int) (*FrameDecoder, error) {
	dec, err := kzstd.NewReader(nil,
		kzstd.WithDecoderConcurrency(1),
		kzstd.WithDecoderLowmem(true),
		kzstd.WithDecoderMaxWindow(min(MaxWindow, 2*uint64(maxSize))),
		kzstd.WithDecoderMaxMemory(2*uint64(maxSize)),
	)
	if err != nil {
		return nil, fmt.Errorf("creating zstd frame decoder: %w", err)
	}
	return &FrameDecoder{dec}, nil
}

// DecodeFrame appends the content of frame (one or more whole frames) to
// dst. It does not check the content: the caller compares its digest.
func (d *FrameDecoder) DecodeFrame(dst, frame []byte) ([]byte, error) {
	out, err := d.dec.DecodeAll(frame, dst)
	if err != nil {
		return nil, fmt.Errorf("decompressing zstd frame: %w", err)
	}
	return out, nil
}
