//go:build cgo

package zstd

import (
	"io"
	"regexp"
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
