package bundle_test

import (
	"bytes"
	"io"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/bundle"
)

func TestArchiveAssemble(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b.ferry")
	content := randomBytes(300<<10, 3)
	res, err := bundle.Create(path, bundle.Options{
		Name: "demo", Version: "2.0.0", DeviceTypes: []string{"x"}, PartSize: 16 << 10,
		Sign: func(d digest.Digest) ([]bundle.Signature, error) {
			p, _ := bundle.NewSimpleSigning("demo", d, nil)
			return []bundle.Signature{{Payload: p, Sig: []byte("sig")}}, nil
		},
	}, bundle.Source{Name: "rootfs", Type: bundle.Rootfs, Content: bytes.NewReader(content)})
	if err != nil {
		t.Fatal(err)
	}
	a, err := bundle.OpenArchive(path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	layers := a.Manifest().Layers
	if len(layers) < 2 {
		t.Fatalf("want a split payload, got %d layers", len(layers))
	}
	open := func(l ocispec.Descriptor) (io.ReadCloser, error) {
		r, _, err := a.Blob(l.Digest)
		return io.NopCloser(r), err
	}
	var out bytes.Buffer
	if err := bundle.Assemble(&out, bundle.Parts{Manifest: a.RawManifest(), Config: a.RawConfig(), Signatures: a.Signatures(), Layer: open}); err != nil {
		t.Fatal(err)
	}
	r, err := bundle.NewReader(&out)
	if err != nil {
		t.Fatal(err)
	}
	if r.ManifestDigest() != res.ManifestDigest || len(r.Signatures()) != 1 {
		t.Fatalf("assembled bundle: manifest %s, %d signatures", r.ManifestDigest(), len(r.Signatures()))
	}
	p, _ := r.Next()
	got, err := io.ReadAll(p)
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("assembled payload: %v", err)
	}

	// A layer source that serves other bytes is caught while streaming.
	wrong := func(l ocispec.Descriptor) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(make([]byte, l.Size))), nil
	}
	err = bundle.Assemble(io.Discard, bundle.Parts{Manifest: a.RawManifest(), Config: a.RawConfig(), Layer: wrong})
	if err == nil {
		t.Fatal("assembled a bundle from wrong layer bytes")
	}
	// A config that is not the one the manifest names is refused first.
	err = bundle.Assemble(io.Discard, bundle.Parts{Manifest: a.RawManifest(), Config: []byte("{}"), Layer: open})
	if err == nil {
		t.Fatal("assembled a bundle with a foreign config")
	}
	sa, err := bundle.NewSignatureArtifact(a.Signatures())
	if err != nil {
		t.Fatal(err)
	}
	sigs, err := bundle.ParseSignatures(sa.Manifest, func(_ string, d ocispec.Descriptor, _ int64) ([]byte, error) { return sa.Blobs[d.Digest], nil })
	if err != nil || len(sigs) != 1 || !bytes.Equal(sigs[0].Sig, []byte("sig")) {
		t.Fatalf("signature artifact round trip: %v %v", err, sigs)
	}
}
