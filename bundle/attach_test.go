package bundle_test

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/bundle"
)

const (
	testSPDX = `{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"demo","packages":[{"name":"busybox"},{"name":"openssl"}]}`
	testCDX  = `{"bomFormat":"CycloneDX","specVersion":"1.5","components":[{"name":"a","components":[{"name":"a1"}]},{"name":"b"}]}`
)

// attachBundle writes a signed bundle with an SPDX and a CycloneDX
// attachment and returns its path.
func attachBundle(t *testing.T, dir string, partSize int64) (string, *bundle.Result, []byte) {
	t.Helper()
	path := filepath.Join(dir, "b.ferry")
	content := randomBytes(100<<10, 4)
	res, err := bundle.Create(path, bundle.Options{
		Name: "demo", Version: "1.0.0", DeviceTypes: []string{"x"}, Created: time.Unix(1700000000, 0), PartSize: partSize,
		Attachments: []bundle.AttachmentData{
			{Attachment: bundle.Attachment{Name: "sbom.spdx.json", MediaType: bundle.SPDXMediaType}, Data: []byte(testSPDX)},
			{Attachment: bundle.Attachment{Name: "sbom.cdx.json", MediaType: bundle.CycloneDXMediaType}, Data: []byte(testCDX)},
		},
		Sign: func(d digest.Digest) ([]bundle.Signature, error) {
			p, _ := bundle.NewSimpleSigning("demo", d, nil)
			return []bundle.Signature{{Payload: p, Sig: []byte("sig")}}, nil
		},
	}, bundle.Source{Name: "rootfs", Type: bundle.Rootfs, Content: bytes.NewReader(content)})
	if err != nil {
		t.Fatal(err)
	}
	return path, res, content
}

// checkAttached reads a bundle and checks its attachments, manifest layers
// and payload.
func checkAttached(t *testing.T, r io.Reader, want digest.Digest, content []byte) *bundle.Reader {
	t.Helper()
	br, err := bundle.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	if br.ManifestDigest() != want {
		t.Errorf("manifest %s, want %s", br.ManifestDigest(), want)
	}
	atts := br.Attachments()
	if len(atts) != 2 || atts[0].Name != "sbom.spdx.json" || string(atts[0].Data) != testSPDX ||
		atts[1].Name != "sbom.cdx.json" || atts[1].MediaType != bundle.CycloneDXMediaType || string(atts[1].Data) != testCDX {
		t.Fatalf("attachments: %+v", atts)
	}
	if cfg := br.Config(); cfg.FormatVersion != 1 || len(cfg.Attachments) != 2 || cfg.Attachments[0].Digest != digest.FromString(testSPDX) {
		t.Errorf("config: %+v", cfg)
	}
	ls := br.Manifest().Layers
	if ls[0].MediaType != bundle.SPDXMediaType || ls[0].Annotations[bundle.AttachmentNameAnnotation] != "sbom.spdx.json" ||
		ls[0].Annotations[ocispec.AnnotationTitle] != "sbom.spdx.json" || ls[1].MediaType != bundle.CycloneDXMediaType {
		t.Errorf("manifest layers: %+v", ls[:2])
	}
	p, err := br.Next()
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(p)
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("payload: %v", err)
	}
	if _, err := br.Next(); err != io.EOF {
		t.Fatalf("after the payload: %v", err)
	}
	return br
}

// TestAttachmentsRoundTrip: Create writes the attachments into the head in
// front of the parts, the reader returns them checked, and every way a
// bundle is rewritten (Assemble from its blobs, AddSignatures) keeps them.
func TestAttachmentsRoundTrip(t *testing.T) {
	for _, partSize := range []int64{0, 512} { // 512: the head outgrows the reserve
		dir := t.TempDir()
		path, res, content := attachBundle(t, dir, partSize)
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		br := checkAttached(t, f, res.ManifestDigest, content)
		f.Close()

		// Member order: the attachments follow the signature blobs and
		// come before the first part.
		names := tarNames(t, path)
		spdx, cdx := "blobs/sha256/"+digest.FromString(testSPDX).Encoded(), "blobs/sha256/"+digest.FromString(testCDX).Encoded()
		first := "blobs/sha256/" + br.Manifest().Layers[2].Digest.Encoded()
		if i := indexOf(names, spdx); i < 0 || names[i+1] != cdx || names[i+2] != first {
			t.Errorf("members: %v", names)
		}

		a, err := bundle.OpenArchive(path)
		if err != nil {
			t.Fatal(err)
		}
		// Archive.Blob serves attachments as it serves parts: the mirror
		// and registry code moves every manifest layer through it.
		var out bytes.Buffer
		err = bundle.Assemble(&out, bundle.Parts{Manifest: a.RawManifest(), Config: a.RawConfig(), Signatures: a.Signatures(),
			Layer: func(l ocispec.Descriptor) (io.ReadCloser, error) {
				r, _, err := a.Blob(l.Digest)
				return io.NopCloser(r), err
			}})
		a.Close()
		if err != nil {
			t.Fatal(err)
		}
		checkAttached(t, &out, res.ManifestDigest, content)

		if _, err := bundle.AddSignatures(path, func(r *bundle.Reader) ([]bundle.Signature, error) {
			p, _ := bundle.NewSimpleSigning("demo", r.ManifestDigest(), map[string]string{"n": "2"})
			return []bundle.Signature{{Payload: p, Sig: []byte("sig2")}}, nil
		}); err != nil {
			t.Fatal(err)
		}
		f, _ = os.Open(path)
		if br := checkAttached(t, f, res.ManifestDigest, content); len(br.Signatures()) != 2 {
			t.Errorf("%d signatures after AddSignatures", len(br.Signatures()))
		}
		f.Close()
	}
}

// TestAttachmentsUnchangedWithout: a bundle without attachments is what it
// was before they existed: no config key, only payload layers.
func TestAttachmentsUnchangedWithout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b.ferry")
	if _, err := bundle.Create(path, bundle.Options{Name: "demo", Version: "1.0.0", DeviceTypes: []string{"x"}},
		bundle.Source{Name: "rootfs", Type: bundle.Rootfs, Content: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(path)
	defer f.Close()
	r, err := bundle.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(r.RawConfig(), []byte("attachments")) || len(r.Attachments()) != 0 || r.Config().FormatVersion != 1 {
		t.Errorf("config %s", r.RawConfig())
	}
}

// TestAttachmentTampered: an attachment is signed like everything in the
// head: one flipped byte is refused before any payload, naming it.
func TestAttachmentTampered(t *testing.T) {
	path, _, _ := attachBundle(t, t.TempDir(), 0)
	raw, _ := os.ReadFile(path)
	i := bytes.Index(raw, []byte(`"openssl"`))
	if i < 0 {
		t.Fatal("SPDX document not found in the archive")
	}
	raw[i+2] ^= 0x20
	_, err := bundle.NewReader(bytes.NewReader(raw))
	var be *bundle.Error
	if !errors.As(err, &be) || be.What != `attachment "sbom.spdx.json"` || !strings.Contains(err.Error(), "digest") {
		t.Fatalf("tampered attachment: %v", err)
	}
	t.Log(err)

	// Assemble refuses an attachment source that serves other bytes,
	// before it writes anything.
	a, err := bundle.OpenArchive(path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var out bytes.Buffer
	err = bundle.Assemble(&out, bundle.Parts{Manifest: a.RawManifest(), Config: a.RawConfig(),
		Layer: func(l ocispec.Descriptor) (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(make([]byte, l.Size))), nil
		}})
	if !errors.As(err, &be) || be.What != `attachment "sbom.spdx.json"` || out.Len() != 0 {
		t.Fatalf("assemble with a wrong attachment: %v (%d bytes written)", err, out.Len())
	}
}

// TestAttachmentRules: the config and the manifest must agree on the
// attachments, and the limits hold.
func TestAttachmentRules(t *testing.T) {
	att := func(name, mt string, size int64) bundle.Attachment {
		return bundle.Attachment{Name: name, MediaType: mt, Digest: digest.FromString(name), Size: size}
	}
	base := func() bundle.Config {
		return bundle.Config{FormatVersion: 1, Name: "demo", Version: "1.0.0", DeviceTypes: []string{"x"}, Created: time.Unix(1, 0),
			Payloads: []bundle.Payload{{Name: "rootfs", Type: bundle.Rootfs, Target: "rootfs", Digest: digest.FromString(""), Compression: "zstd", Parts: 1}}}
	}
	tests := []struct {
		name string
		atts []bundle.Attachment
		ok   bool
	}{
		{"none", nil, true},
		{"spdx", []bundle.Attachment{att("sbom.spdx.json", bundle.SPDXMediaType, 10)}, true},
		{"other document type", []bundle.Attachment{att("notes.txt", "text/plain", 10)}, true},
		{"payload media type", []bundle.Attachment{att("x", bundle.PayloadMediaType, 10)}, false},
		{"bad media type", []bundle.Attachment{att("x", "not a type", 10)}, false},
		{"bad name", []bundle.Attachment{att("SBOM.json", bundle.SPDXMediaType, 10)}, false},
		{"duplicate name", []bundle.Attachment{att("a", bundle.SPDXMediaType, 1), att("a", bundle.SPDXMediaType, 1)}, false},
		{"too large", []bundle.Attachment{att("a", bundle.SPDXMediaType, bundle.MaxAttachmentSize+1)}, false},
		{"at the limit", []bundle.Attachment{att("a", bundle.SPDXMediaType, bundle.MaxAttachmentSize)}, true},
		{"together too large", []bundle.Attachment{att("a", bundle.SPDXMediaType, bundle.MaxAttachmentSize/2+1), att("b", bundle.SPDXMediaType, bundle.MaxAttachmentSize/2)}, false},
		{"too many", func() []bundle.Attachment {
			var as []bundle.Attachment
			for i := 0; i <= bundle.MaxAttachments; i++ {
				as = append(as, att("a"+string(rune('a'+i)), bundle.SPDXMediaType, 1))
			}
			return as
		}(), false},
	}
	for _, tt := range tests {
		c := base()
		c.Attachments = tt.atts
		if err := c.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: Validate: %v", tt.name, err)
		}
	}

	// A manifest whose attachment layer differs from the config is refused
	// (here: the config lists one, the manifest names another digest).
	path, _, _ := attachBundle(t, t.TempDir(), 0)
	a, err := bundle.OpenArchive(path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var m ocispec.Manifest
	if err := json.Unmarshal(a.RawManifest(), &m); err != nil {
		t.Fatal(err)
	}
	m.Layers[0].Annotations[bundle.AttachmentNameAnnotation] = "other.json"
	raw, _ := json.Marshal(&m)
	err = bundle.Assemble(io.Discard, bundle.Parts{Manifest: raw, Config: a.RawConfig(), Layer: func(ocispec.Descriptor) (io.ReadCloser, error) {
		t.Fatal("fetched a layer of a manifest that does not match its config")
		return nil, nil
	}})
	if err == nil || !strings.Contains(err.Error(), "attachment 0") {
		t.Fatalf("mismatched attachment layer: %v", err)
	}
}

func TestDetectSBOM(t *testing.T) {
	tests := []struct {
		name, doc  string
		mediaType  string
		spec       string
		components int
	}{
		{"spdx", testSPDX, bundle.SPDXMediaType, "SPDX-2.3", 2},
		{"spdx without packages", `{"spdxVersion":"SPDX-2.2"}`, bundle.SPDXMediaType, "SPDX-2.2", 0},
		{"cyclonedx nested", testCDX, bundle.CycloneDXMediaType, "CycloneDX 1.5", 3},
		{"cyclonedx leading space", " \n" + `{"bomFormat":"CycloneDX"}`, bundle.CycloneDXMediaType, "CycloneDX", 0},
		{"both", `{"spdxVersion":"SPDX-2.3","bomFormat":"CycloneDX"}`, "", "", 0},
		{"neither", `{"name":"x"}`, "", "", 0},
		{"other bomFormat", `{"bomFormat":"SWID"}`, "", "", 0},
		{"array", `[]`, "", "", 0},
		{"not json", `spdxVersion: SPDX-2.3`, "", "", 0},
		{"spdx tag-value", "SPDXVersion: SPDX-2.3\nDataLicense: CC0-1.0\n", "", "", 0},
		{"packages not an array", `{"spdxVersion":"SPDX-2.3","packages":{}}`, "", "", 0},
	}
	for _, tt := range tests {
		s, err := bundle.DetectSBOM([]byte(tt.doc))
		if tt.mediaType == "" {
			if err == nil {
				t.Errorf("%s: detected %+v", tt.name, s)
			}
			continue
		}
		if err != nil || s.MediaType != tt.mediaType || s.Spec != tt.spec || s.Components != tt.components {
			t.Errorf("%s: %+v %v", tt.name, s, err)
		}
	}
	if _, err := bundle.DetectSBOM(make([]byte, bundle.MaxAttachmentSize+1)); err == nil {
		t.Error("detected an SBOM over the size limit")
	}
}

// FuzzDetectSBOM: any input gives a result or an error, never a panic, and
// a result always has one of the two media types.
func FuzzDetectSBOM(f *testing.F) {
	for _, s := range []string{testSPDX, testCDX, `{"bomFormat":"CycloneDX","components":[{"components":[{"components":[]}]}]}`, `{"spdxVersion":"SPDX-2.3","packages":null}`, `{}`, `[`, ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := bundle.DetectSBOM(b)
		if err != nil {
			return
		}
		if s.MediaType != bundle.SPDXMediaType && s.MediaType != bundle.CycloneDXMediaType || s.Components < 0 || len(s.Spec) > 80 {
			t.Fatalf("detected %+v", s)
		}
	})
}

func tarNames(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			names = append(names, h.Name)
		}
	}
}

func indexOf(ss []string, s string) int {
	for i, x := range ss {
		if x == s {
			return i
		}
	}
	return -1
}
