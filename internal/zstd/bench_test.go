package zstd

import (
	"bytes"
	"io"
	"sync"
	"testing"
)

// benchInput is 64 MiB of deterministic semi-compressible data (~2.4:1 at
// level 3).
var benchInput = sync.OnceValue(func() []byte { return semiCompressible(64 << 20) })

// BenchmarkWriter compresses benchInput with every encoder of this build;
// MB/s is input bytes.
func BenchmarkWriter(b *testing.B) {
	data := benchInput()
	for _, e := range encoders() {
		b.Run(e.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			var size int
			for b.Loop() {
				var n countWriter
				w, err := e.new(&n)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := w.Write(data); err != nil {
					b.Fatal(err)
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
				size = int(n)
			}
			b.ReportMetric(float64(size)/float64(len(data)), "out/in")
		})
	}
}

// BenchmarkReader decompresses benchInput as NewWriter compressed it, with
// NewReader (and, with cgo, libzstd's decoder for comparison); MB/s is
// output bytes.
func BenchmarkReader(b *testing.B) {
	data := benchInput()
	z := compress(b, encoders()[0], data)
	for _, d := range decoders() {
		b.Run(d.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				r, err := d.new(bytes.NewReader(z))
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, r)
				if err != nil || n != int64(len(data)) {
					b.Fatalf("decoded %d bytes, %v", n, err)
				}
				r.Close()
			}
		})
	}
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}
