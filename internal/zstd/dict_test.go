package zstd

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestDictFrames: a frame compressed against a dictionary that holds most
// of its content is small, decodes to its input only against that
// dictionary, and one encoder and decoder serve changing dictionaries.
func TestDictFrames(t *testing.T) {
	enc, err := NewDictEncoder()
	if err != nil {
		t.Fatal(err)
	}
	dec, err := NewDictDecoder(1<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.NewChaCha8([32]byte{7})
	for round := range 3 {
		base := make([]byte, 40_000)
		_, _ = rng.Read(base)
		src := bytes.Clone(base[4096 : 4096+32_000])
		_, _ = rng.Read(src[10_000:14_000])
		frame, err := enc.EncodeFrame([]byte("p"), src, base)
		if err != nil {
			t.Fatal(err)
		}
		frame = frame[1:]
		if len(frame) > 6_000 {
			t.Fatalf("round %d: frame of %d bytes for 4000 new bytes", round, len(frame))
		}
		got, err := dec.DecodeFrame(nil, frame, base)
		if err != nil || !bytes.Equal(got, src) {
			t.Fatalf("round %d: decoded %d bytes, %v", round, len(got), err)
		}
		other := bytes.Clone(base)
		other[5000] ^= 1
		if got, err := dec.DecodeFrame(nil, frame, other); err == nil && bytes.Equal(got, src) {
			t.Fatalf("round %d: decoded right against another dictionary", round)
		}
		plain, err := enc.EncodeFrame(nil, src, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := dec.DecodeFrame(nil, plain, nil); err != nil || !bytes.Equal(got, src) {
			t.Fatalf("round %d: plain frame: %d bytes, %v", round, len(got), err)
		}
	}
}
