package bundle_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/bundle"
)

func newIdentity(t testing.TB) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// encryptedBundle writes a signed bundle of contents (one rootfs payload
// each) encrypted to recipients, in parts of partSize.
func encryptedBundle(t testing.TB, path string, partSize int64, recipients []age.Recipient, contents ...[]byte) *bundle.Result {
	t.Helper()
	var srcs []bundle.Source
	for i, c := range contents {
		srcs = append(srcs, bundle.Source{Name: "p" + string(rune('a'+i)), Type: bundle.Rootfs, Content: bytes.NewReader(c)})
	}
	res, err := bundle.Create(path, bundle.Options{
		Name: "demo", Version: "1.2.3", DeviceTypes: []string{"board-a"},
		Created: time.Unix(1700000000, 0), PartSize: partSize, EncryptTo: recipients,
		Sign: func(d digest.Digest) ([]bundle.Signature, error) {
			p, _ := bundle.NewSimpleSigning("demo", d, nil)
			return []bundle.Signature{{Payload: p, Sig: []byte{1}}}, nil
		},
	}, srcs...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func openBundle(t testing.TB, path string) *bundle.Reader {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	r, err := bundle.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// readAll reads every payload of r, returning their contents.
func readAll(r *bundle.Reader) ([][]byte, error) {
	var out [][]byte
	for {
		p, err := r.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		b, err := io.ReadAll(p)
		if err != nil {
			return out, err
		}
		out = append(out, b)
	}
}

func TestEncryptedRoundTrip(t *testing.T) {
	a, b, stranger := newIdentity(t), newIdentity(t), newIdentity(t)
	contents := [][]byte{randomBytes(200<<10, 1), randomBytes(64<<10, 2), {}}
	path := filepath.Join(t.TempDir(), "enc.ferry")
	res := encryptedBundle(t, path, 4096, []age.Recipient{a.Recipient(), b.Recipient()}, contents...)
	if res.Config.FormatVersion != bundle.EncryptedFormatVersion {
		t.Errorf("formatVersion %d, want %d", res.Config.FormatVersion, bundle.EncryptedFormatVersion)
	}
	for _, p := range res.Config.Payloads {
		if p.Encryption != bundle.EncryptionAge {
			t.Errorf("payload %s: encryption %q", p.Name, p.Encryption)
		}
	}

	for _, id := range []*age.X25519Identity{a, b} {
		r := openBundle(t, path)
		if !r.Encrypted() || r.AgeHeader().Recipients() != 2 {
			t.Fatalf("Encrypted %v, recipients %d: want an encrypted bundle to 2", r.Encrypted(), r.AgeHeader().Recipients())
		}
		for _, l := range r.Manifest().Layers[1:] {
			if l.MediaType != bundle.EncryptedPayloadMediaType {
				t.Errorf("layer %s: media type %s", l.Digest, l.MediaType)
			}
		}
		if err := r.Unlock(id); err != nil {
			t.Fatal(err)
		}
		got, err := readAll(r)
		if err != nil {
			t.Fatal(err)
		}
		for i := range contents {
			if !bytes.Equal(got[i], contents[i]) {
				t.Errorf("payload %d differs after decryption", i)
			}
		}
	}

	// The plaintext is not in the file, not even its first bytes.
	raw, _ := os.ReadFile(path)
	if bytes.Contains(raw, contents[0][:64]) {
		t.Error("the bundle holds plaintext")
	}

	// Without a key, the parts still check (at the speed of SHA-256), the
	// content cannot be read.
	r := openBundle(t, path)
	if err := r.Finish(); err != nil {
		t.Fatalf("Finish without a key: %v", err)
	}
	r = openBundle(t, path)
	if _, err := readAll(r); !errors.Is(err, bundle.ErrLocked) {
		t.Fatalf("read without Unlock: %v, want ErrLocked", err)
	}

	r = openBundle(t, path)
	err := r.Unlock(stranger)
	var nre *bundle.NotRecipientError
	if !errors.As(err, &nre) || nre.Recipients != 2 || len(nre.Identities) != 1 || nre.Identities[0] != stranger.Recipient().String() {
		t.Fatalf("Unlock by a stranger: %v, want a *NotRecipientError naming it among 2", err)
	}
}

func TestEncryptedTamperedCiphertext(t *testing.T) {
	id := newIdentity(t)
	content := randomBytes(300<<10, 3)
	path := filepath.Join(t.TempDir(), "enc.ferry")
	encryptedBundle(t, path, 1<<20, []age.Recipient{id.Recipient()}, content)
	r := openBundle(t, path)
	raw, _ := os.ReadFile(path)
	// The first part's data follows its header, after the pad member.
	hdrs := bytes.Index(raw[r.PayloadOffset():], []byte("blobs/sha256/"))
	partOff := r.PayloadOffset() + int64(hdrs) + 512
	at := partOff + 100<<10 // in the second STREAM chunk
	raw[at] ^= 1
	bad := filepath.Join(t.TempDir(), "bad.ferry")
	if err := os.WriteFile(bad, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	r = openBundle(t, bad)
	if err := r.Unlock(id); err != nil {
		t.Fatal(err)
	}
	p, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(p)
	var be *bundle.Error
	if !errors.As(err, &be) || be.What != `payload "pa" part 1 of 1` {
		t.Fatalf("read of tampered ciphertext: %v, want the part's digest error", err)
	}
	// What came out before the error is the authentic plaintext that the
	// chunks before the tampered one decrypt to, nothing of the rest.
	if len(got) >= 100<<10 || !bytes.Equal(got, content[:len(got)]) {
		t.Errorf("read %d bytes before the error; want fewer than the %d before the tampered chunk, all authentic", len(got), 100<<10)
	}
}

func TestReencrypt(t *testing.T) {
	old, kept, added := newIdentity(t), newIdentity(t), newIdentity(t)
	content := randomBytes(150<<10, 4)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.ferry"), filepath.Join(dir, "out.ferry")
	res := encryptedBundle(t, in, 8192, []age.Recipient{old.Recipient(), kept.Recipient()}, content)

	signed := 0
	nres, err := bundle.Reencrypt(in, out, bundle.ReencryptOptions{
		Identities: []age.Identity{kept},
		Recipients: []age.Recipient{kept.Recipient(), added.Recipient()},
		Sign: func(d digest.Digest, _ *bundle.Config) ([]bundle.Signature, error) {
			signed++
			p, _ := bundle.NewSimpleSigning("demo", d, nil)
			return []bundle.Signature{{Payload: p, Sig: []byte{2}}}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if nres.ManifestDigest == res.ManifestDigest || signed != 1 {
		t.Errorf("manifest %s (was %s), signed %d times: want a new manifest signed once", nres.ManifestDigest, res.ManifestDigest, signed)
	}
	before, after := openBundle(t, in), openBundle(t, out)
	// The parts, the ciphertext, are the same layers.
	if b, a := before.Manifest().Layers[1:], after.Manifest().Layers[1:]; len(a) != len(b) {
		t.Fatalf("%d part layers, was %d", len(a), len(b))
	} else {
		for i := range a {
			if a[i].Digest != b[i].Digest {
				t.Errorf("part %d: %s, was %s", i, a[i].Digest, b[i].Digest)
			}
		}
	}
	if sigs := after.Signatures(); len(sigs) != 1 || !bytes.Equal(sigs[0].Sig, []byte{2}) {
		t.Errorf("signatures %v: want only the new one", sigs)
	}
	var nre *bundle.NotRecipientError
	if err := after.Unlock(old); !errors.As(err, &nre) {
		t.Errorf("old recipient: %v, want *NotRecipientError", err)
	}
	for _, id := range []*age.X25519Identity{kept, added} {
		r := openBundle(t, out)
		if err := r.Unlock(id); err != nil {
			t.Fatal(err)
		}
		got, err := readAll(r)
		if err != nil || !bytes.Equal(got[0], content) {
			t.Fatalf("decrypt re-encrypted bundle: %v", err)
		}
	}

	// Only a recipient can re-encrypt.
	_, err = bundle.Reencrypt(in, filepath.Join(dir, "x.ferry"), bundle.ReencryptOptions{
		Identities: []age.Identity{added}, Recipients: []age.Recipient{added.Recipient()},
	})
	if !errors.As(err, &nre) {
		t.Errorf("re-encrypt by a non-recipient: %v, want *NotRecipientError", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.ferry")); !os.IsNotExist(err) {
		t.Errorf("a failed re-encryption left a file: %v", err)
	}
}

func TestEncryptedConfigRules(t *testing.T) {
	base := func() *bundle.Config {
		return &bundle.Config{
			FormatVersion: 3, Name: "demo", Version: "1.0.0", DeviceTypes: []string{"b"}, Created: time.Unix(1, 0),
			Payloads:    []bundle.Payload{{Name: "r", Type: bundle.Rootfs, Target: "rootfs", Digest: digest.FromString(""), Compression: "zstd", Parts: 1, Encryption: "age"}},
			Attachments: []bundle.Attachment{{Name: bundle.AgeHeaderName, MediaType: bundle.AgeHeaderMediaType, Digest: digest.FromString("h"), Size: 1}},
		}
	}
	if err := base().Validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	for name, change := range map[string]func(c *bundle.Config){
		"format version 2":          func(c *bundle.Config) { c.FormatVersion = 2 },
		"no header":                 func(c *bundle.Config) { c.Attachments = nil },
		"header, nothing encrypted": func(c *bundle.Config) { c.Payloads[0].Encryption = "" },
		"unknown encryption":        func(c *bundle.Config) { c.Payloads[0].Encryption = "aes" },
		"header misnamed":           func(c *bundle.Config) { c.Attachments[0].Name = "hdr" },
		"two headers": func(c *bundle.Config) {
			c.Attachments = append(c.Attachments, bundle.Attachment{Name: "h2", MediaType: bundle.AgeHeaderMediaType, Digest: digest.FromString("i"), Size: 1})
		},
	} {
		c := base()
		change(c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: config accepted", name)
		}
	}
}
