//go:build cgo

package zstd

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"regexp"
	"runtime"
	"strconv"
	"testing"

	ddzstd "github.com/DataDog/zstd"
)

func buildEncoders() []encoder {
	var list []encoder
	for _, n := range []int{1, 2, 3} {
		list = append(list, encoder{
			name: "libzstd-" + strconv.Itoa(n),
			new:  func(w io.Writer) (io.WriteCloser, error) { return newWriter(w, n) },
		})
	}
	return list
}

func buildDecoders() []decoder {
	return []decoder{{"libzstd", func(r io.Reader) (io.ReadCloser, error) { return ddzstd.NewReader(r), nil }}}
}

func TestImplementation(t *testing.T) {
	got := Implementation()
	if !regexp.MustCompile(`^libzstd 1\.\d+\.\d+ \(cgo\)$`).MatchString(got) {
		t.Errorf("Implementation() = %q, want libzstd 1.x.y (cgo)", got)
	}
}

func TestWriteAfterClose(t *testing.T) {
	w, err := NewWriter(io.Discard, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("Write after Close succeeded")
	}
}

// TestSameOutputAnyWorkers: the job size, not the worker count, decides
// libzstd's output (jobSize), so a bundle is byte-identical whatever
// number of CPUs the host has. The input spans several jobs, so that more
// than one worker really takes part.
func TestSameOutputAnyWorkers(t *testing.T) {
	data := semiCompressible(3*jobSize + 12345)
	var want []byte
	check := func(name string, w func(io.Writer) (io.WriteCloser, error)) {
		t.Helper()
		var buf bytes.Buffer
		zw, err := w(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := zw.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		if want == nil {
			want = buf.Bytes()
			return
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("%s: %d bytes, differs from 1 worker's %d", name, buf.Len(), len(want))
		}
	}
	for _, n := range []int{1, 3} {
		check(fmt.Sprintf("%d workers", n), func(w io.Writer) (io.WriteCloser, error) { return NewWriter(w, n) })
	}
	for _, procs := range []int{2, 16} {
		old := runtime.GOMAXPROCS(procs)
		check(fmt.Sprintf("GOMAXPROCS=%d", procs), func(w io.Writer) (io.WriteCloser, error) { return NewWriter(w, 0) })
		runtime.GOMAXPROCS(old)
	}
}

// TestFrameLevel: the build's frame encoder compresses at FrameLevel,
// which on chunk-sized text beats Level.
func TestFrameLevel(t *testing.T) {
	words := []string{"ferry ", "bundle ", "chunk ", "delta ", "slot ", "device ", "mirror ", "\n", "index ", "zstd "}
	rng := rand.New(rand.NewPCG(1, 2))
	var src []byte
	for len(src) < 16<<10 {
		src = append(src, words[rng.IntN(len(words))]...)
		src = strconv.AppendInt(src, rng.Int64N(1000), 10)
	}
	enc, err := NewFrameEncoder()
	if err != nil {
		t.Fatal(err)
	}
	frame, err := enc.EncodeFrame(nil, src)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ddzstd.CompressLevel(nil, src, FrameLevel)
	if err != nil {
		t.Fatal(err)
	}
	low, err := ddzstd.CompressLevel(nil, src, Level)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(frame, want) || len(frame) >= len(low) {
		t.Errorf("frame of %d bytes: want libzstd level %d's %d bytes, below level %d's %d", len(frame), FrameLevel, len(want), Level, len(low))
	}
}
