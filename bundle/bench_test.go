package bundle_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/ferry-update/ferry/bundle"
)

// benchSize is the payload of the bundle benchmarks: large enough for
// libzstd's worker threads to overlap (its jobs are 8 MiB at level 3), small
// enough to keep a run short. scripts/bench.sh measures a real 1 GiB image.
const benchSize = 64 << 20

// benchInput returns n reproducible bytes that compress roughly like a root
// filesystem: 4 KiB blocks of text-like runs of words from a small
// vocabulary (60 %), incompressible random bytes (25 %) and zeros (15 %).
func benchInput(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	words := make([][]byte, 512)
	for i := range words {
		w := make([]byte, 2+r.IntN(10))
		for j := range w {
			w[j] = 'a' + byte(r.IntN(26))
		}
		words[i] = w
	}
	b := make([]byte, 0, n)
	block := make([]byte, 4096)
	for len(b) < n {
		switch k := r.IntN(100); {
		case k < 60:
			block = block[:0]
			for len(block) < 4096 {
				block = append(block, words[r.IntN(len(words))]...)
				block = append(block, " \n/_."[r.IntN(5)])
			}
			block = block[:4096]
		case k < 85:
			for i := range block {
				block[i] = byte(r.Uint32())
			}
		default:
			clear(block)
		}
		b = append(b, block[:min(len(block), n-len(b))]...)
	}
	return b
}

func createBench(tb testing.TB, path string, data []byte) *bundle.Result {
	tb.Helper()
	res, err := bundle.Create(path, bundle.Options{
		Name: "bench", Version: "1.0.0", DeviceTypes: []string{"bench-board"},
		Created: time.Unix(1700000000, 0),
	}, bundle.Source{Name: "rootfs", Type: bundle.Rootfs, Content: bytes.NewReader(data)})
	if err != nil {
		tb.Fatal(err)
	}
	return res
}

// BenchmarkCreate packs benchSize bytes into a bundle file (compression,
// SHA-256 of content and parts, fsync). MB/s is over the input; "ratio" is
// the compressed payload over the input.
func BenchmarkCreate(b *testing.B) {
	data := benchInput(benchSize)
	path := filepath.Join(b.TempDir(), "bench.ferry")
	b.SetBytes(int64(len(data)))
	var res *bundle.Result
	for b.Loop() {
		res = createBench(b, path, data)
	}
	p := res.Config.Payloads[0]
	b.ReportMetric(float64(p.CompressedSize)/float64(p.Size), "ratio")
}

// BenchmarkRead reads a bundle of benchSize bytes the two ways a device
// does: "content" decompresses the payload and checks every digest (MB/s over
// the decompressed bytes); "discard" checks the parts' digests only, as
// verify does (MB/s over the bundle file).
func BenchmarkRead(b *testing.B) {
	data := benchInput(benchSize)
	path := filepath.Join(b.TempDir(), "bench.ferry")
	res := createBench(b, path, data)

	read := func(b *testing.B, consume func(*bundle.PayloadReader) error) {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		r, err := bundle.NewReader(f)
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		p, err := r.Next()
		if err != nil {
			b.Fatal(err)
		}
		if err := consume(p); err != nil {
			b.Fatal(err)
		}
		if _, err := r.Next(); err != io.EOF {
			b.Fatalf("after the payload: %v, want io.EOF", err)
		}
	}
	b.Run("content", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			read(b, func(p *bundle.PayloadReader) error {
				n, err := io.Copy(io.Discard, p)
				if err == nil && n != int64(len(data)) {
					b.Fatalf("read %d bytes, want %d", n, len(data))
				}
				return err
			})
		}
		b.ReportMetric(float64(res.Config.Payloads[0].CompressedSize)/float64(len(data)), "ratio")
	})
	b.Run("discard", func(b *testing.B) {
		b.SetBytes(res.Size)
		for b.Loop() {
			read(b, (*bundle.PayloadReader).Discard)
		}
	})
}

// BenchmarkAgeHeader10k measures an age header for 10,000 X25519
// recipients (a large fleet, bundle/FORMAT.md §6.3): the time to make it
// (a random file key wrapped 10,000 times), its size, and the time a
// device takes to unwrap the file key when it is the last recipient (the
// worst case: every stanza before its own is tried) or the first.
func BenchmarkAgeHeader10k(b *testing.B) {
	const n = 10000
	ids := make([]*age.X25519Identity, n)
	recipients := make([]age.Recipient, n)
	for i := range ids {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			b.Fatal(err)
		}
		ids[i], recipients[i] = id, id.Recipient()
	}
	header, _, err := bundle.NewAgeHeader(recipients)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("create", func(b *testing.B) {
		for range b.N {
			if _, _, err := bundle.NewAgeHeader(recipients); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(header)), "header-bytes")
	})
	for _, tc := range []struct {
		name string
		id   *age.X25519Identity
	}{{"unwrap-last", ids[n-1]}, {"unwrap-first", ids[0]}} {
		b.Run(tc.name, func(b *testing.B) {
			for range b.N {
				h, err := bundle.ParseAgeHeader(header)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := h.Unwrap(tc.id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
