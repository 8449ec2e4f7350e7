package verifyio_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/internal/verifyio"
)

func TestReader(t *testing.T) {
	content := []byte(strings.Repeat("ferry payload ", 1000))
	good := digest.FromBytes(content)
	tests := []struct {
		name    string
		src     io.Reader
		size    int64
		want    digest.Digest
		wantErr func(error) bool
	}{
		{"exact", bytes.NewReader(content), int64(len(content)), good, nil},
		{"one byte at a time", iotest.OneByteReader(bytes.NewReader(content)), int64(len(content)), good, nil},
		{"empty", bytes.NewReader(nil), 0, digest.FromBytes(nil), nil},
		{"flipped byte", bytes.NewReader(flip(content, 500)), int64(len(content)), good,
			func(err error) bool { var d *verifyio.DigestError; return errors.As(err, &d) }},
		{"more than promised", io.MultiReader(bytes.NewReader(content), strings.NewReader("x")), int64(len(content)), good,
			func(err error) bool { return errors.Is(err, verifyio.ErrTooLong) }},
		{"endless", zeros{}, 1 << 20, good,
			func(err error) bool { return errors.Is(err, verifyio.ErrTooLong) }},
		{"short", bytes.NewReader(content[:100]), int64(len(content)), good,
			func(err error) bool { return errors.Is(err, verifyio.ErrTruncated) }},
		{"cut mid-stream", io.MultiReader(bytes.NewReader(content[:100]), iotest.ErrReader(io.ErrUnexpectedEOF)), int64(len(content)), good,
			func(err error) bool { return errors.Is(err, verifyio.ErrTruncated) }},
		{"source error passes through", iotest.ErrReader(errors.New("stick removed")), 10, good,
			func(err error) bool { return err != nil && strings.Contains(err.Error(), "stick removed") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := verifyio.NewReader(tt.src, tt.size, tt.want)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				if int64(len(got)) != tt.size {
					t.Fatalf("read %d bytes, want %d", len(got), tt.size)
				}
				return
			}
			if !tt.wantErr(err) {
				t.Fatalf("error %v is not the expected kind", err)
			}
			if int64(len(got)) > tt.size {
				t.Fatalf("passed on %d bytes, more than the %d promised", len(got), tt.size)
			}
			// The error is sticky: a caller that retries learns nothing new.
			if _, err2 := r.Read(make([]byte, 1)); err2 == nil || err2 == io.EOF {
				t.Fatalf("second Read after %v returned %v", err, err2)
			}
		})
	}
}

func TestNewReaderRefuses(t *testing.T) {
	for _, tt := range []struct {
		name string
		size int64
		d    digest.Digest
	}{
		{"not a digest", 1, digest.Digest("nope")},
		{"sha512", 1, digest.Digest("sha512:" + strings.Repeat("ab", 64))},
		{"sha384 (not allowed in bundles)", 1, digest.Digest("sha384:" + strings.Repeat("ab", 48))},
		{"negative size", -1, digest.FromString("x")},
	} {
		if _, err := verifyio.NewReader(strings.NewReader("x"), tt.size, tt.d); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
}

func TestReadAll(t *testing.T) {
	b, err := verifyio.ReadAll(strings.NewReader("config"), 6, digest.FromString("config"))
	if err != nil || string(b) != "config" {
		t.Fatalf("ReadAll = %q, %v", b, err)
	}
	if _, err := verifyio.ReadAll(strings.NewReader("config!"), 6, digest.FromString("config")); !errors.Is(err, verifyio.ErrTooLong) {
		t.Fatalf("ReadAll of a longer blob: %v", err)
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 1
	return c
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
