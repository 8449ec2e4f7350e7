package zstd

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"testing"
)

// semiCompressible returns n deterministic bytes that compress roughly like
// a root file system: text-like 64 KiB chunks (small vocabulary, random
// order) with every fourth chunk random.
func semiCompressible(n int) []byte {
	words := bytes.Fields([]byte(`ferry bundle payload update device agent
		manifest signature rootfs kernel initramfs partition slot boot mirror
		media verify digest sha256 zstd frame window block literal sequence
		offset match length usr lib bin share doc locale ELF .text .data .bss
		0x00000000 0xffffffff {"name": "value", "size": 4096} <config/>`))
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([]byte, 0, n+128)
	const chunk = 64 << 10
	for i := 0; len(out) < n; i++ {
		end := min(len(out)+chunk, n)
		if i%4 == 3 {
			for len(out) < end {
				out = binary.LittleEndian.AppendUint64(out, rng.Uint64())
			}
			continue
		}
		for len(out) < end {
			out = append(out, words[rng.IntN(len(words))]...)
			if rng.IntN(12) == 0 {
				out = append(out, '\n')
			} else {
				out = append(out, ' ')
			}
		}
	}
	return out[:n]
}

func randomBytes(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	out := make([]byte, 0, n+8)
	for len(out) < n {
		out = binary.LittleEndian.AppendUint64(out, rng.Uint64())
	}
	return out[:n]
}

type encoder struct {
	name string
	new  func(w io.Writer) (io.WriteCloser, error)
}

type decoder struct {
	name string
	new  func(r io.Reader) (io.ReadCloser, error)
}

// encoders lists every encoder this build has: NewWriter as built, plus the
// pure-Go one, plus (with cgo) libzstd at several worker counts.
func encoders() []encoder {
	list := []encoder{
		{"NewWriter", func(w io.Writer) (io.WriteCloser, error) { return NewWriter(w, 0) }},
		{"purego-1", func(w io.Writer) (io.WriteCloser, error) { return newPureGoWriter(w, 1) }},
		{"purego-2", func(w io.Writer) (io.WriteCloser, error) { return newPureGoWriter(w, 2) }},
	}
	return append(list, buildEncoders()...)
}

// decoders lists NewReader plus, with cgo, libzstd's own decoder.
func decoders() []decoder {
	list := []decoder{{"NewReader", NewReader}}
	return append(list, buildDecoders()...)
}

func compress(t testing.TB, e encoder, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := e.new(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decompress(t testing.TB, d decoder, data []byte) []byte {
	t.Helper()
	r, err := d.new(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: %v", d.name, err)
	}
	return out
}
