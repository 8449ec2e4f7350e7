package zstd

import (
	"bytes"
	"io"
	"runtime"
	"testing"
)

// FuzzReader feeds arbitrary bytes to the decoder: it must not panic, and
// what one input may allocate is bounded by the window limit however much
// it claims to decode to. It runs NewReader's decoder with an 8 MiB limit
// rather than MaxWindow: allocating (and zeroing) a 128 MiB window takes
// ~90 ms, which would stall the fuzzer on every mutated window descriptor.
func FuzzReader(f *testing.F) {
	for _, e := range encoders() {
		f.Add(compress(f, e, nil))
		f.Add(compress(f, e, []byte("ferry")))
		f.Add(compress(f, e, semiCompressible(16<<10)))
	}
	f.Add([]byte{})
	f.Add(frame(0x00, 0x00))
	f.Add(frame(0x00, 20<<3))
	f.Add(frame(0xe0, 0, 0, 0, 0, 0, 1, 0, 0))
	// Skippable frame, then an RLE block of 128 KiB.
	f.Add([]byte{0x50, 0x2a, 0x4d, 0x18, 1, 0, 0, 0, 0, 0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38, 0x03, 0x00, 0x10, 'z'})

	// Output read per input: enough to cross many blocks and windows,
	// small enough to keep executions fast.
	const maxOut = 16 << 20
	const maxWindow = 8 << 20
	f.Fuzz(func(t *testing.T, data []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		r, err := newReader(bytes.NewReader(data), maxWindow)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(r, maxOut))
		r.Close()
		runtime.ReadMemStats(&after)
		if got := after.TotalAlloc - before.TotalAlloc; got > maxWindow+8<<20 {
			t.Fatalf("decoding %d input bytes allocated %d MiB", len(data), got>>20)
		}
	})
}
