package verifyio

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/opencontainers/go-digest"
)

// ErrTooLong is wrapped by the error returned when a stream holds more bytes
// than its descriptor promised (the "endless data" attack).
var ErrTooLong = errors.New("more data than the signed size")

// ErrTruncated is wrapped by the error returned when a stream ends before the
// promised size.
var ErrTruncated = errors.New("data ends before the signed size")

// DigestError says that a stream's content did not hash to the expected
// digest.
type DigestError struct {
	Want, Got digest.Digest
}

func (e *DigestError) Error() string {
	return fmt.Sprintf("digest mismatch: got %s, want %s", e.Got, e.Want)
}

// SizeError says that a stream held more or fewer bytes than expected.
type SizeError struct {
	Want, Got int64
	err       error // ErrTooLong or ErrTruncated
}

func (e *SizeError) Error() string {
	if e.err == ErrTooLong {
		return fmt.Sprintf("%v: more than %d bytes", e.err, e.Want)
	}
	return fmt.Sprintf("%v: got %d bytes, want %d", e.err, e.Got, e.Want)
}

func (e *SizeError) Unwrap() error { return e.err }

// Reader is an io.Reader that verifies what it passes on. It reads exactly
// Size bytes from its source; one more byte is an error, and so is an early
// EOF or a digest that does not match.
type Reader struct {
	src  io.Reader
	want digest.Digest
	size int64
	n    int64
	h    hash.Hash
	err  error
}

// NewReader returns a Reader over r that expects exactly size bytes hashing
// to want. Only sha256 digests are accepted: it is the one algorithm ferry's
// format allows.
func NewReader(r io.Reader, size int64, want digest.Digest) (*Reader, error) {
	if err := want.Validate(); err != nil {
		return nil, fmt.Errorf("verify stream: %w", err)
	}
	if want.Algorithm() != digest.SHA256 {
		return nil, fmt.Errorf("verify stream: digest algorithm %q not allowed, want sha256", want.Algorithm())
	}
	if size < 0 {
		return nil, fmt.Errorf("verify stream: negative size %d", size)
	}
	return &Reader{src: r, want: want, size: size, h: sha256.New()}, nil
}

// Read implements io.Reader. It returns io.EOF only after the size and the
// digest have both been checked.
func (v *Reader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if remaining := v.size - v.n; int64(len(p)) > remaining {
		// Read one byte beyond the promised size, so that extra data is
		// seen now rather than trusted later.
		p = p[:remaining+1]
	}
	n, err := v.src.Read(p)
	if v.n+int64(n) > v.size {
		n = int(v.size - v.n)
		v.h.Write(p[:n])
		v.n += int64(n)
		v.err = &SizeError{Want: v.size, Got: v.n + 1, err: ErrTooLong}
		return n, v.err
	}
	v.h.Write(p[:n])
	v.n += int64(n)
	switch {
	case err == io.EOF:
		v.err = v.check()
		return n, v.err
	case err != nil:
		if err == io.ErrUnexpectedEOF {
			err = &SizeError{Want: v.size, Got: v.n, err: ErrTruncated}
		}
		v.err = err
		return n, err
	}
	return n, nil
}

func (v *Reader) check() error {
	if v.n != v.size {
		return &SizeError{Want: v.size, Got: v.n, err: ErrTruncated}
	}
	if got := digest.NewDigest(digest.SHA256, v.h); got != v.want {
		return &DigestError{Want: v.want, Got: got}
	}
	return io.EOF
}

// Finish drains the rest of the stream (checking it) and returns nil only when
// all of it matched. Use it where the data itself is not needed.
func (v *Reader) Finish() error {
	_, err := io.Copy(io.Discard, v)
	return err
}

// ReadAll reads a small verified blob whole.
func ReadAll(r io.Reader, size int64, want digest.Digest) ([]byte, error) {
	v, err := NewReader(r, size, want)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 0, size)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := v.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// ReadFileLimited reads a small file whole, refusing one larger than max
// bytes before holding more than max+1 of it: for metadata files an
// attacker may have planted or grown.
func ReadFileLimited(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: more than the limit of %d bytes", path, max)
	}
	return b, nil
}
