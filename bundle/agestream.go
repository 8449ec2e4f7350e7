package bundle

import (
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"
)

// age's payload encryption, STREAM (age-encryption.org/v1, "Payload"): a
// 16-byte nonce, then the plaintext in chunks of 64 KiB, each sealed with
// ChaCha20-Poly1305 under HKDF-SHA-256(file key, nonce, "payload"), the
// AEAD nonce being an 11-byte big-endian chunk counter and a last-chunk
// flag. An encrypted payload's parts hold exactly this, for the file key
// of the bundle's age header: cat HEADER PARTS... | age -d is the
// compressed content.

const (
	streamNonceSize = 16
	streamChunk     = 64 << 10
	streamOverhead  = chacha20poly1305.Overhead
)

// ErrDecrypt is wrapped by errors about ciphertext that does not
// authenticate under the file key.
var ErrDecrypt = errors.New("ciphertext does not authenticate")

func streamAEAD(fileKey, nonce []byte) (cipher.AEAD, error) {
	key := make([]byte, chacha20poly1305.KeySize)
	if _, err := io.ReadFull(hkdf.New(sha256.New, fileKey, nonce, []byte("payload")), key); err != nil {
		return nil, err
	}
	return chacha20poly1305.New(key)
}

type streamNonce [chacha20poly1305.NonceSize]byte

func (n *streamNonce) set(counter uint64, last bool) {
	clear(n[:])
	for i := 10; i >= 3; i-- { // 11-byte counter; 2^64 chunks are plenty
		n[i] = byte(counter)
		counter >>= 8
	}
	if last {
		n[11] = 1
	}
}

// encryptWriter encrypts what it is written and writes the ciphertext
// (nonce first) to w. Close seals the last chunk.
type encryptWriter struct {
	w       io.Writer
	aead    cipher.AEAD
	buf     []byte
	out     []byte
	counter uint64
	nonce   streamNonce
}

func newEncryptWriter(w io.Writer, fileKey []byte) (*encryptWriter, error) {
	nonce := make([]byte, streamNonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	aead, err := streamAEAD(fileKey, nonce)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(nonce); err != nil {
		return nil, err
	}
	return &encryptWriter{w: w, aead: aead, buf: make([]byte, 0, streamChunk), out: make([]byte, 0, streamChunk+streamOverhead)}, nil
}

func (e *encryptWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		// A full chunk is sealed only when more follows: the last chunk
		// is sealed by Close, with the last-chunk flag.
		if len(e.buf) == streamChunk {
			if err := e.seal(false); err != nil {
				return 0, err
			}
		}
		n := copy(e.buf[len(e.buf):streamChunk], p)
		e.buf = e.buf[:len(e.buf)+n]
		p = p[n:]
	}
	return total, nil
}

func (e *encryptWriter) seal(last bool) error {
	e.nonce.set(e.counter, last)
	e.counter++
	e.out = e.aead.Seal(e.out[:0], e.nonce[:], e.buf, nil)
	e.buf = e.buf[:0]
	_, err := e.w.Write(e.out)
	return err
}

// Close seals the last chunk (empty only when nothing was written).
func (e *encryptWriter) Close() error { return e.seal(true) }

// decryptReader reads the plaintext of a STREAM ciphertext (nonce first)
// read from r. Every chunk is authenticated before a byte of it is
// returned; a chunk that does not authenticate, a stream that ends
// without its last chunk, or data after it fail with ErrDecrypt.
type decryptReader struct {
	r       io.Reader
	fileKey []byte
	aead    cipher.AEAD
	in      []byte // ciphertext read ahead: a chunk and one byte more
	pbuf    []byte // holds the decrypted chunk
	plain   []byte // decrypted, not yet returned (in pbuf)
	counter uint64
	nonce   streamNonce
	done    bool
	err     error
}

func newDecryptReader(r io.Reader, fileKey []byte) *decryptReader {
	return &decryptReader{r: r, fileKey: fileKey}
}

func (d *decryptReader) Read(b []byte) (int, error) {
	for len(d.plain) == 0 {
		if d.err != nil {
			return 0, d.err
		}
		if d.done {
			return 0, io.EOF
		}
		d.err = d.next()
	}
	n := copy(b, d.plain)
	d.plain = d.plain[n:]
	return n, nil
}

// next decrypts the next chunk into d.plain.
func (d *decryptReader) next() error {
	if d.aead == nil {
		nonce := make([]byte, streamNonceSize)
		if _, err := io.ReadFull(d.r, nonce); err != nil {
			return fmt.Errorf("%w: stream nonce: %w", ErrDecrypt, eofIsTruncation(err))
		}
		aead, err := streamAEAD(d.fileKey, nonce)
		if err != nil {
			return err
		}
		d.aead = aead
		d.in = make([]byte, 0, streamChunk+streamOverhead+1)
		d.pbuf = make([]byte, 0, streamChunk)
	}
	// Keep one byte beyond a full chunk to tell whether it is the last.
	have := len(d.in)
	n, err := io.ReadFull(d.r, d.in[have:cap(d.in)])
	d.in = d.in[:have+n]
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return err
	}
	last := len(d.in) <= streamChunk+streamOverhead
	chunk := d.in
	if !last {
		chunk = d.in[:streamChunk+streamOverhead]
	}
	if len(chunk) < streamOverhead {
		return fmt.Errorf("%w: chunk %d is truncated", ErrDecrypt, d.counter)
	}
	d.nonce.set(d.counter, last)
	plain, oerr := d.aead.Open(d.pbuf[:0], d.nonce[:], chunk, nil)
	if oerr != nil {
		return fmt.Errorf("%w: chunk %d (at ciphertext offset %d)", ErrDecrypt, d.counter, streamNonceSize+int64(d.counter)*(streamChunk+streamOverhead))
	}
	if last && len(plain) == 0 && d.counter > 0 {
		return fmt.Errorf("%w: empty last chunk", ErrDecrypt)
	}
	d.counter++
	d.plain = plain
	if last {
		d.done = true
		d.in = d.in[:0]
		return nil
	}
	// Keep the byte read ahead for the next chunk.
	d.in = append(d.in[:0], d.in[streamChunk+streamOverhead])
	return nil
}

func eofIsTruncation(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
