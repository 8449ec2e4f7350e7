package bundle

import (
	"bytes"
	"io"
	"testing"

	"filippo.io/age"
)

// keyCatcher is an age.Recipient that wraps for r and remembers the file
// key, so a test can decrypt what age.Encrypt made with ferry's reader.
type keyCatcher struct {
	r       age.Recipient
	fileKey []byte
}

func (k *keyCatcher) Wrap(fileKey []byte) ([]*age.Stanza, error) {
	k.fileKey = append([]byte(nil), fileKey...)
	return k.r.Wrap(fileKey)
}

// TestAgeCompatible checks ferry's header and STREAM code against package
// age both ways, at chunk boundaries: what ferry encrypts, age decrypts
// (header, then ciphertext: what FORMAT.md says 'cat HEADER PARTS | age
// -d' reads), and what age encrypts, ferry decrypts.
func TestAgeCompatible(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1, streamChunk - 1, streamChunk, streamChunk + 1, 2 * streamChunk, 3*streamChunk + 77} {
		plain := bytes.Repeat([]byte{byte(n), 1, 2, 3, 5, 8, 13}, n/7+1)[:n]

		header, fk, err := NewAgeHeader([]age.Recipient{id.Recipient()})
		if err != nil {
			t.Fatal(err)
		}
		var ct bytes.Buffer
		ew, err := newEncryptWriter(&ct, fk)
		if err != nil {
			t.Fatal(err)
		}
		ew.Write(plain)
		if err := ew.Close(); err != nil {
			t.Fatal(err)
		}
		ar, err := age.Decrypt(io.MultiReader(bytes.NewReader(header), bytes.NewReader(ct.Bytes())), id)
		if err != nil {
			t.Fatalf("%d bytes: age cannot read ferry's header: %v", n, err)
		}
		if got, err := io.ReadAll(ar); err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%d bytes: age decrypts ferry's ciphertext to %d bytes, %v", n, len(got), err)
		}
		if ext, err := age.ExtractHeader(bytes.NewReader(header)); err != nil || !bytes.Equal(ext, header) {
			t.Fatalf("%d bytes: age re-marshals ferry's header differently (%v)", n, err)
		}

		kc := &keyCatcher{r: id.Recipient()}
		var out bytes.Buffer
		aw, err := age.Encrypt(&out, kc)
		if err != nil {
			t.Fatal(err)
		}
		aw.Write(plain)
		aw.Close()
		ahdr, err := age.ExtractHeader(bytes.NewReader(out.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		h, err := ParseAgeHeader(ahdr)
		if err != nil {
			t.Fatalf("%d bytes: ferry cannot parse age's header: %v", n, err)
		}
		if fk, err := h.Unwrap(id); err != nil || !bytes.Equal(fk, kc.fileKey) {
			t.Fatalf("%d bytes: unwrap age's header: %v", n, err)
		}
		got, err := io.ReadAll(newDecryptReader(bytes.NewReader(out.Bytes()[len(ahdr):]), kc.fileKey))
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%d bytes: ferry decrypts age's ciphertext to %d bytes, %v", n, len(got), err)
		}
	}
}

// TestDecryptRefusesDamage: a truncated stream, a missing last chunk,
// data after it and a flipped bit are each refused with ErrDecrypt.
func TestDecryptRefusesDamage(t *testing.T) {
	fk := bytes.Repeat([]byte{7}, fileKeySize)
	var ct bytes.Buffer
	ew, _ := newEncryptWriter(&ct, fk)
	ew.Write(bytes.Repeat([]byte("x"), 2*streamChunk+10))
	ew.Close()
	good := ct.Bytes()
	full := streamNonceSize + streamChunk + streamOverhead
	flip := append([]byte(nil), good...)
	flip[full+5] ^= 1
	for name, b := range map[string][]byte{
		"truncated in a chunk": good[:len(good)-3],
		"without last chunk":   good[:streamNonceSize+2*(streamChunk+streamOverhead)],
		"data after the end":   append(append([]byte(nil), good...), 0),
		"bit flipped":          flip,
		"nonce only":           good[:streamNonceSize],
		"short nonce":          good[:5],
	} {
		got, err := io.ReadAll(newDecryptReader(bytes.NewReader(b), fk))
		if err == nil {
			t.Errorf("%s: decrypted %d bytes without error", name, len(got))
		}
	}
}

// FuzzDecryptStream feeds the STREAM reader hostile ciphertext: it never
// panics, and whatever it accepts is a whole stream whose plaintext has
// the size the chunk structure gives.
func FuzzDecryptStream(f *testing.F) {
	fk := bytes.Repeat([]byte{9}, fileKeySize)
	for _, n := range []int{0, 5, streamChunk, streamChunk + 3} {
		var ct bytes.Buffer
		ew, _ := newEncryptWriter(&ct, fk)
		ew.Write(bytes.Repeat([]byte{1}, n))
		ew.Close()
		f.Add(ct.Bytes())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := io.ReadAll(newDecryptReader(bytes.NewReader(b), fk))
		if err != nil {
			return
		}
		body := len(b) - streamNonceSize
		chunks := (body + streamChunk + streamOverhead - 1) / (streamChunk + streamOverhead)
		if body < streamOverhead || len(got) != body-chunks*streamOverhead {
			t.Fatalf("accepted %d bytes of ciphertext as %d of plaintext", len(b), len(got))
		}
	})
}
