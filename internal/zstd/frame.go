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

// DictEncoder compresses whole buffers into single zstd frames against a
// raw-content dictionary (zstd's "raw content" dictionary, dictionary ID
// 0, which the frame header does not name): the records of a delta
// stream (bundle/FORMAT.md §15.9), each compressed against the base's
// bytes around the place of the chunk. It is klauspost/compress at
// SpeedDefault in every build (one encoder, its dictionary changed per
// frame). Measured per 16 KiB chunk with a 32 KiB dictionary:
// SpeedBestCompression rebuilds its tables for every dictionary, about
// 1 s and 170 MB of allocations; SpeedBetterCompression 2.3 ms;
// SpeedDefault 0.4 ms. On the bench's in-place pair (a fifth of its new
// chunks) SpeedBetterCompression's frames were 0.03 % smaller than
// SpeedDefault's, not worth 6 times the time a mirror spends making a
// stream. It is not safe for concurrent use.
type DictEncoder struct{ enc *kzstd.Encoder }

// NewDictEncoder returns a dictionary frame encoder.
func NewDictEncoder() (*DictEncoder, error) {
	enc, err := kzstd.NewWriter(nil,
		kzstd.WithEncoderLevel(kzstd.SpeedDefault),
		kzstd.WithZeroFrames(true),
	)
	if err != nil {
		return nil, fmt.Errorf("creating zstd dictionary encoder: %w", err)
	}
	return &DictEncoder{enc}, nil
}

// EncodeFrame appends to dst the frame of src compressed against dict
// (none when dict is empty).
func (e *DictEncoder) EncodeFrame(dst, src, dict []byte) ([]byte, error) {
	opt := kzstd.WithEncoderDictDelete()
	if len(dict) > 0 {
		opt = kzstd.WithEncoderDictRaw(0, dict)
	}
	if err := e.enc.ResetWithOptions(nil, opt); err != nil {
		return nil, fmt.Errorf("zstd dictionary: %w", err)
	}
	return e.enc.EncodeAll(src, dst), nil
}

// DictDecoder decodes single frames made by DictEncoder against the same
// dictionary. Like FrameDecoder it bounds a frame's window and memory
// (by maxSize and the dictionary's length), so a hostile frame costs at
// most that much. It is not safe for concurrent use.
type DictDecoder struct {
	dec     *kzstd.Decoder
	maxSize int
}

// NewDictDecoder returns a decoder for frames of at most maxSize bytes of
// content against dictionaries of at most maxDict bytes.
func NewDictDecoder(maxSize, maxDict int) (*DictDecoder, error) {
	limit := min(MaxWindow, 2*uint64(maxSize)+uint64(maxDict))
	dec, err := kzstd.NewReader(nil,
		kzstd.WithDecoderConcurrency(1),
		kzstd.WithDecoderLowmem(true),
		kzstd.WithDecoderMaxWindow(limit),
		kzstd.WithDecoderMaxMemory(2*uint64(maxSize)),
	)
	if err != nil {
		return nil, fmt.Errorf("creating zstd dictionary decoder: %w", err)
	}
	return &DictDecoder{dec: dec, maxSize: maxSize}, nil
}

// DecodeFrame appends the content of frame, decoded against dict, to
// dst. It does not check the content: the caller compares its digest.
func (d *DictDecoder) DecodeFrame(dst, frame, dict []byte) ([]byte, error) {
	if err := d.dec.ResetWithOptions(nil, kzstd.WithDecoderDictRaw(0, dict)); err != nil {
		return nil, fmt.Errorf("zstd dictionary: %w", err)
	}
	out, err := d.dec.DecodeAll(frame, dst)
	if err != nil {
		return nil, fmt.Errorf("decompressing zstd frame: %w", err)
	}
	return out, nil
}

// ContentSize returns the content size a frame's header declares, and
// false when the header is malformed or declares none. A reader that
// knows what a frame must hold checks it before decoding, so a hostile
// frame cannot make it decode more.
func ContentSize(frame []byte) (uint64, bool) {
	var h kzstd.Header
	if err := h.Decode(frame); err != nil || !h.HasFCS || h.Skippable {
		return 0, false
	}
	return h.FrameContentSize, true
}
