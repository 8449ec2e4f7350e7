package zstd

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestFrames: each encoder's frame decodes to its input, also after
// other content in dst, and the decoder refuses a frame whose content is
// above twice its limit.
func TestFrames(t *testing.T) {
	src := make([]byte, 100_000)
	_, _ = rand.NewChaCha8([32]byte{3}).Read(src[:50_000])
	build, err := NewFrameEncoder()
	if err != nil {
		t.Fatal(err)
	}
	pure, err := newPureGoFrameEncoder()
	if err != nil {
		t.Fatal(err)
	}
	dec, err := NewFrameDecoder(len(src))
	if err != nil {
		t.Fatal(err)
	}
	small, err := NewFrameDecoder(len(src)/2 - 1)
	if err != nil {
		t.Fatal(err)
	}
	for name, enc := range map[string]FrameEncoder{"build": build, "pure Go": pure} {
		frame, err := enc.EncodeFrame([]byte("prefix"), src)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.HasPrefix(frame, []byte("prefix")) || len(frame) > 60_000 {
			t.Fatalf("%s: frame of %d bytes", name, len(frame))
		}
		got, err := dec.DecodeFrame([]byte("x"), frame[len("prefix"):])
		if err != nil || !bytes.Equal(got, append([]byte("x"), src...)) {
			t.Fatalf("%s: decoded %d bytes, %v", name, len(got), err)
		}
		if _, err := small.DecodeFrame(nil, frame[len("prefix"):]); err == nil {
			t.Errorf("%s: a frame above the decoder's limit was decoded", name)
		}
	}
}
