package bundle_test

// Tests that pin FORMAT.md: they build a small bundle, take it apart with
// archive/tar and plain byte offsets, and check every rule the spec states,
// then damage it region by region and check that the reader refuses it with
// an error that says where. Helpers are prefixed "spec" to stay clear of the
// package's other tests.

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	_ "crypto/sha512" // for digest.SHA512
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	kzstd "github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/zstd"
)

const (
	specPartSize = 4096
	specReserve  = 64 << 10 // FORMAT.md "Head reserve": where the writer puts the first part
	specVersion  = "1.2.3+build.7"
	specTag      = "1.2.3_build.7"
	specRef      = "registry.example.com/demo"
)

var specCreated = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// specRandom returns n deterministic incompressible bytes.
func specRandom(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// specTree returns a deterministic tar stream for the files payload, big
// enough (incompressible 10 KB) to need several parts.
func specTree(t testing.TB, seed uint64) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	entries := []struct {
		name string
		typ  byte
		data []byte
	}{
		{"etc/", tar.TypeDir, nil},
		{"etc/app.conf", tar.TypeReg, []byte("level = 3\n")},
		{"usr/", tar.TypeDir, nil},
		{"usr/bin/", tar.TypeDir, nil},
		{"usr/bin/app", tar.TypeReg, specRandom(10000, seed)},
	}
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o755, Size: int64(len(e.data)), ModTime: specCreated, Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// specSign stands in for package verify (which bundle must not import): three
// signatures, the first two over the same payload, so the archive holds two
// signature payload blobs. The bundle package does not judge signatures.
func specSign(d digest.Digest) ([]bundle.Signature, error) {
	p1, err := bundle.NewSimpleSigning(specRef, d, map[string]string{"dev.ferry.keyid": strings.Repeat("a", 64), "dev.ferry.signer": "release@example.com"})
	if err != nil {
		return nil, err
	}
	p2, err := bundle.NewSimpleSigning(specRef, d, nil)
	if err != nil {
		return nil, err
	}
	return []bundle.Signature{
		{Payload: p1, Sig: []byte{1, 2, 3}, Annotations: map[string]string{"dev.sigstore.cosign/certificate": "none"}},
		{Payload: p1, Sig: []byte{4, 5, 6}},
		{Payload: p2, Sig: []byte{7, 8, 9}},
	}, nil
}

type specBundle struct {
	path     string
	raw      []byte
	res      *bundle.Result
	contents map[string][]byte // payload name -> decompressed content
	sigs     []bundle.Signature
}

// specCreate writes a bundle with a rootfs payload (5 parts) and a files
// payload (3 parts). seed varies the content.
func specCreate(t testing.TB, seed uint64, sign bool) *specBundle {
	t.Helper()
	rootfs := specRandom(20000, seed)
	tree := specTree(t, seed+1)
	opts := bundle.Options{
		Name:        "demo",
		Version:     specVersion,
		DeviceTypes: []string{"qemu-x86_64", "rpi4"},
		Description: "a bundle for the format tests",
		Annotations: map[string]string{"org.example.build": "42"},
		Created:     specCreated,
		PartSize:    specPartSize,
		Workers:     1,
	}
	b := &specBundle{contents: map[string][]byte{"rootfs": rootfs, "app": tree}}
	if sign {
		opts.Sign = func(d digest.Digest) ([]bundle.Signature, error) {
			s, err := specSign(d)
			b.sigs = s
			return s, err
		}
	}
	b.path = filepath.Join(t.TempDir(), "demo.bundle")
	var err error
	b.res, err = bundle.Create(b.path, opts,
		bundle.Source{Name: "rootfs", Type: bundle.Rootfs, Content: bytes.NewReader(rootfs)},
		bundle.Source{Name: "app", Type: bundle.Files, Target: "opt/app", Content: bytes.NewReader(tree)},
	)
	if err != nil {
		t.Fatal(err)
	}
	if b.raw, err = os.ReadFile(b.path); err != nil {
		t.Fatal(err)
	}
	return b
}

// specMember is one tar entry with its byte offsets in the archive.
type specMember struct {
	name    string
	typ     byte
	hdrOff  int64 // offset of its (only) header block
	dataOff int64
	size    int64 // bytes of data (for 'g', the pax records)
	data    []byte
}

func (m specMember) end() int64       { return m.dataOff + m.size }
func (m specMember) paddedEnd() int64 { return (m.end() + 511) &^ 511 }

type specCounter struct {
	r io.Reader
	n int64
}

func (c *specCounter) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// specMembers lists the archive's entries with archive/tar, insisting that
// each has exactly one header block (no pax 'x' or GNU long-name blocks).
func specMembers(t testing.TB, raw []byte) []specMember {
	t.Helper()
	c := &specCounter{r: bytes.NewReader(raw)}
	tr := tar.NewReader(c)
	var ms []specMember
	var prevEnd int64
	for {
		hdrOff := (prevEnd + 511) &^ 511
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("tar: %v", err)
		}
		m := specMember{name: h.Name, typ: h.Typeflag, hdrOff: hdrOff, dataOff: hdrOff + 512}
		if h.Typeflag == tar.TypeXGlobalHeader {
			// archive/tar has consumed the records already.
			m.size = c.n - m.dataOff
		} else {
			if c.n != m.dataOff {
				t.Fatalf("member %s: header at %d is not a single 512-byte block (data at %d)", h.Name, hdrOff, c.n)
			}
			if m.data, err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
			m.size = int64(len(m.data))
		}
		prevEnd = c.n
		ms = append(ms, m)
	}
	return ms
}

// specRead reads a whole bundle the way a device does: the head, then every
// payload decompressed to the end. With discard, payloads are only checked
// against their layer digests (Discard), as verify does by default.
func specRead(raw []byte, discard bool) (*bundle.Reader, map[string][]byte, error) {
	r, err := bundle.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	got := map[string][]byte{}
	for {
		p, err := r.Next()
		if err == io.EOF {
			return r, got, nil
		}
		if err != nil {
			return r, got, err
		}
		if discard {
			err = p.Discard()
		} else {
			got[p.Name], err = io.ReadAll(p)
		}
		if err != nil {
			return r, got, err
		}
	}
}

func specDigestHex(b []byte) string {
	s := sha256.Sum256(b)
	return fmt.Sprintf("%x", s)
}

func specIsUSTAR(t *testing.T, raw []byte, m specMember) {
	t.Helper()
	h := raw[m.hdrOff : m.hdrOff+512]
	if string(h[257:263]) != "ustar\x00" || string(h[263:265]) != "00" {
		t.Errorf("%s: magic/version %q, want POSIX ustar", m.name, h[257:265])
	}
	if h[156] != tar.TypeReg {
		t.Errorf("%s: typeflag %q, want '0'", m.name, h[156])
	}
	if got := strings.TrimRight(string(h[0:100]), "\x00"); got != m.name {
		t.Errorf("%s: name field %q (names must fit the 100-byte field, no prefix)", m.name, got)
	}
	if string(h[108:116]) != "0000000\x00" || string(h[116:124]) != "0000000\x00" {
		t.Errorf("%s: uid/gid %q %q, want 0", m.name, h[108:116], h[116:124])
	}
	if mt, _ := strconv.ParseInt(strings.TrimRight(string(h[136:147]), "\x00 "), 8, 64); mt != specCreated.Unix() {
		t.Errorf("%s: mtime %d, want the config's created time %d", m.name, mt, specCreated.Unix())
	}
}

// TestFormatArchive pins FORMAT.md "The archive" and "index.json", "The
// manifest", "The config", "Signatures" on a bundle that Create wrote.
func TestFormatArchive(t *testing.T) {
	b := specCreate(t, 1, true)
	ms := specMembers(t, b.raw)
	if int64(len(b.raw)) != b.res.Size {
		t.Errorf("file is %d bytes, Result.Size %d", len(b.raw), b.res.Size)
	}

	// End of archive: exactly two zero blocks after the last member, no
	// record padding.
	last := ms[len(ms)-1]
	if got := int64(len(b.raw)) - last.paddedEnd(); got != 1024 {
		t.Errorf("%d bytes after the last member, want the 1024-byte end-of-archive marker", got)
	}
	if !bytes.Equal(b.raw[len(b.raw)-1024:], make([]byte, 1024)) {
		t.Error("end-of-archive marker is not zero")
	}

	// Head members, in order.
	names := func(ms []specMember) []string {
		var s []string
		for _, m := range ms {
			if m.typ == tar.TypeXGlobalHeader {
				s = append(s, "<pad>")
			} else {
				s = append(s, m.name)
			}
		}
		return s
	}
	mdHex := b.res.ManifestDigest.Encoded()
	if ms[0].name != "oci-layout" || string(ms[0].data) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Fatalf("member 0 = %s %q, want oci-layout", ms[0].name, ms[0].data)
	}
	if ms[1].name != "index.json" {
		t.Fatalf("member 1 = %s, want index.json", ms[1].name)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(ms[1].data, &idx); err != nil {
		t.Fatal(err)
	}
	if idx.SchemaVersion != 2 || idx.MediaType != ocispec.MediaTypeImageIndex || len(idx.Manifests) != 2 {
		t.Fatalf("index: %s", ms[1].data)
	}
	bd, sd := idx.Manifests[0], idx.Manifests[1]
	if bd.MediaType != ocispec.MediaTypeImageManifest || bd.ArtifactType != bundle.ArtifactType ||
		bd.Digest != b.res.ManifestDigest || !maps(bd.Annotations, map[string]string{bundle.RefNameAnnotation: specTag}) {
		t.Errorf("index bundle descriptor: %+v", bd)
	}
	if want := "sha256-" + mdHex + ".sig"; sd.MediaType != ocispec.MediaTypeImageManifest ||
		!maps(sd.Annotations, map[string]string{bundle.RefNameAnnotation: want}) {
		t.Errorf("index signature descriptor: %+v, want tag %s", sd, want)
	}

	// The bundle manifest.
	if ms[2].name != "blobs/sha256/"+mdHex || specDigestHex(ms[2].data) != mdHex || int64(len(ms[2].data)) != bd.Size {
		t.Fatalf("member 2 = %s, want the manifest blobs/sha256/%s", ms[2].name, mdHex)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(ms[2].data, &m); err != nil {
		t.Fatal(err)
	}
	if m.SchemaVersion != 2 || m.MediaType != bundle.ManifestMediaType || m.ArtifactType != "application/vnd.ferry.bundle.v1" ||
		m.Config.MediaType != "application/vnd.ferry.bundle.config.v1+json" {
		t.Errorf("manifest header: %s", ms[2].data[:200])
	}
	if !maps(m.Annotations, map[string]string{
		"org.opencontainers.image.title":   "demo",
		"org.opencontainers.image.version": specVersion,
		"org.opencontainers.image.created": "2025-01-02T03:04:05Z",
	}) {
		t.Errorf("manifest annotations %v", m.Annotations)
	}

	// The config.
	if ms[3].name != "blobs/sha256/"+m.Config.Digest.Encoded() || specDigestHex(ms[3].data) != m.Config.Digest.Encoded() {
		t.Fatalf("member 3 = %s, want the config", ms[3].name)
	}
	cfg, err := bundle.ParseConfig(ms[3].data)
	if err != nil {
		t.Fatal(err)
	}
	var cfgFields map[string]json.RawMessage
	if err := json.Unmarshal(ms[3].data, &cfgFields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"formatVersion", "name", "version", "deviceTypes", "created", "description", "payloads", "annotations"} {
		if _, ok := cfgFields[k]; !ok {
			t.Errorf("config lacks %q: %s", k, ms[3].data)
		}
	}
	if cfg.FormatVersion != 1 || cfg.Name != "demo" || cfg.Version != specVersion || cfg.Tag() != specTag ||
		!slices.Equal(cfg.DeviceTypes, []string{"qemu-x86_64", "rpi4"}) || !cfg.Created.Equal(specCreated) {
		t.Errorf("config: %s", ms[3].data)
	}
	if string(cfgFields["created"]) != `"2025-01-02T03:04:05Z"` {
		t.Errorf("created is %s, want RFC 3339 UTC seconds", cfgFields["created"])
	}

	// Signature manifest, its config, then each distinct payload once.
	if ms[4].name != "blobs/sha256/"+sd.Digest.Encoded() || specDigestHex(ms[4].data) != sd.Digest.Encoded() {
		t.Fatalf("member 4 = %s, want the signature manifest", ms[4].name)
	}
	var sm ocispec.Manifest
	if err := json.Unmarshal(ms[4].data, &sm); err != nil {
		t.Fatal(err)
	}
	if sm.SchemaVersion != 2 || sm.MediaType != ocispec.MediaTypeImageManifest || sm.ArtifactType != "" ||
		sm.Config.MediaType != "application/vnd.oci.image.config.v1+json" || len(sm.Layers) != 3 {
		t.Fatalf("signature manifest: %s", ms[4].data)
	}
	if ms[5].name != "blobs/sha256/"+sm.Config.Digest.Encoded() {
		t.Fatalf("member 5 = %s, want the signature config", ms[5].name)
	}
	var sc ocispec.Image
	if err := json.Unmarshal(ms[5].data, &sc); err != nil {
		t.Fatal(err)
	}
	if sc.RootFS.Type != "layers" || len(sc.RootFS.DiffIDs) != 3 {
		t.Errorf("signature config: %s", ms[5].data)
	}
	for i, l := range sm.Layers {
		if l.MediaType != "application/vnd.dev.cosign.simplesigning.v1+json" || sc.RootFS.DiffIDs[i] != l.Digest {
			t.Errorf("signature layer %d: %+v", i, l)
		}
		if got, want := l.Annotations["dev.cosignproject.cosign/signature"], base64.StdEncoding.EncodeToString(b.sigs[i].Sig); got != want {
			t.Errorf("signature layer %d: signature %q, want %q", i, got, want)
		}
		if l.Digest != digest.FromBytes(b.sigs[i].Payload) {
			t.Errorf("signature layer %d: digest %s is not the payload's", i, l.Digest)
		}
	}
	if sm.Layers[0].Annotations["dev.sigstore.cosign/certificate"] != "none" {
		t.Errorf("extra signature annotations are not kept: %v", sm.Layers[0].Annotations)
	}
	if sm.Layers[0].Digest != sm.Layers[1].Digest || sm.Layers[0].Digest == sm.Layers[2].Digest {
		t.Fatal("test setup: want layers 0 and 1 to share a payload")
	}
	if ms[6].name != "blobs/sha256/"+sm.Layers[0].Digest.Encoded() || ms[7].name != "blobs/sha256/"+sm.Layers[2].Digest.Encoded() {
		t.Errorf("signature payload members %s, %s: want each distinct digest once, in order of first appearance", ms[6].name, ms[7].name)
	}
	if !bytes.Equal(ms[6].data, b.sigs[0].Payload) || !bytes.Equal(ms[7].data, b.sigs[2].Payload) {
		t.Error("signature payload members do not hold the signed payloads")
	}

	// The writer's pad: one pax global header whose only record is a
	// comment, filling the head to the 64 KiB reserve.
	pad := ms[8]
	if pad.typ != tar.TypeXGlobalHeader {
		t.Fatalf("member 8 is %q %s, want the pax global header pad", pad.typ, pad.name)
	}
	if pad.paddedEnd() != specReserve {
		t.Errorf("pad ends at %d, want the first payload member at %d", pad.paddedEnd(), specReserve)
	}
	if ms[7].paddedEnd() != pad.hdrOff {
		t.Errorf("pad at %d does not follow the head (ends %d)", pad.hdrOff, ms[7].paddedEnd())
	}
	padRec := string(b.raw[pad.dataOff:pad.end()])
	if !regexp.MustCompile(`^[0-9]+ comment= *\n$`).MatchString(padRec) {
		t.Errorf("pad records %.40q...: want a single comment record", padRec)
	}

	// Payload parts: members 9.. in manifest layer order.
	parts := ms[9:]
	if len(parts) != len(m.Layers) {
		t.Fatalf("%d members after the pad, manifest has %d layers: %v", len(parts), len(m.Layers), names(parts))
	}
	if len(m.Layers) != 8 {
		t.Errorf("%d layers, want 5 rootfs + 3 app parts for this content", len(m.Layers))
	}
	li := 0
	for pi, p := range cfg.Payloads {
		var stream []byte
		var sum int64
		for k := 0; k < p.Parts; k++ {
			l, mem := m.Layers[li], parts[li]
			if l.MediaType != "application/vnd.ferry.payload.v1+zstd" {
				t.Errorf("layer %d media type %s", li, l.MediaType)
			}
			if !maps(l.Annotations, map[string]string{"dev.ferry.payload.name": p.Name, "dev.ferry.payload.part": strconv.Itoa(k)}) {
				t.Errorf("layer %d annotations %v, want %s part %d", li, l.Annotations, p.Name, k)
			}
			if mem.name != "blobs/sha256/"+l.Digest.Encoded() || specDigestHex(mem.data) != l.Digest.Encoded() || mem.size != l.Size {
				t.Errorf("member %s does not hold layer %d (%s, %d bytes)", mem.name, li, l.Digest, l.Size)
			}
			if l.Size > specPartSize || (k < p.Parts-1 && l.Size != specPartSize) {
				t.Errorf("%s part %d is %d bytes: want exactly PartSize (%d) but for the last", p.Name, k, l.Size, specPartSize)
			}
			if (mem.dataOff-specReserve)%512 != 0 {
				t.Errorf("part at %d not block aligned", mem.dataOff)
			}
			stream = append(stream, mem.data...)
			sum += l.Size
			li++
		}
		if sum != p.CompressedSize {
			t.Errorf("%s: parts hold %d bytes, compressedSize %d", p.Name, sum, p.CompressedSize)
		}
		want := b.contents[p.Name]
		if p.Size != int64(len(want)) || p.Digest != digest.FromBytes(want) || p.Compression != "zstd" {
			t.Errorf("payload %d: %+v", pi, p)
		}
		// The parts concatenated are one zstd stream of the content.
		dec, err := zstd.NewReader(bytes.NewReader(stream))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(dec)
		dec.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: parts do not decompress to the content: %v", p.Name, err)
		}
	}
	if cfg.Payloads[0].Type != bundle.Rootfs || cfg.Payloads[0].Target != "rootfs" ||
		cfg.Payloads[1].Type != bundle.Files || cfg.Payloads[1].Target != "opt/app" {
		t.Errorf("payload types/targets: %+v", cfg.Payloads)
	}

	for _, mem := range ms {
		if mem.typ != tar.TypeXGlobalHeader {
			specIsUSTAR(t, b.raw, mem)
		}
	}
}

func maps(got, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			return false
		}
	}
	return true
}

// TestFormatRead: what NewReader, Next and Read give back.
func TestFormatRead(t *testing.T) {
	b := specCreate(t, 1, true)
	r, got, err := specRead(b.raw, false)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range b.contents {
		if !bytes.Equal(got[name], want) {
			t.Errorf("payload %s: read %d bytes, want the original %d", name, len(got[name]), len(want))
		}
	}
	if r.ManifestDigest() != b.res.ManifestDigest || digest.FromBytes(r.RawManifest()) != r.ManifestDigest() {
		t.Error("manifest digest")
	}
	if r.PayloadOffset() > specReserve {
		t.Errorf("PayloadOffset %d beyond the reserve", r.PayloadOffset())
	}
	sigs := r.Signatures()
	if len(sigs) != 3 {
		t.Fatalf("%d signatures", len(sigs))
	}
	for i, s := range sigs {
		if !bytes.Equal(s.Payload, b.sigs[i].Payload) || !bytes.Equal(s.Sig, b.sigs[i].Sig) {
			t.Errorf("signature %d differs", i)
		}
		if _, ok := s.Annotations[bundle.CosignSigAnnotation]; ok {
			t.Errorf("signature %d: annotations still hold the signature", i)
		}
	}
	if sigs[0].Annotations["dev.sigstore.cosign/certificate"] != "none" {
		t.Errorf("signature 0 annotations %v", sigs[0].Annotations)
	}
	if _, _, err := specRead(b.raw, true); err != nil {
		t.Errorf("Discard: %v", err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("Next after the last payload: %v, want io.EOF", err)
	}
}

// TestFormatUnsigned: without signatures the index names one manifest and
// the parts follow the config.
func TestFormatUnsigned(t *testing.T) {
	b := specCreate(t, 1, false)
	ms := specMembers(t, b.raw)
	var idx ocispec.Index
	if err := json.Unmarshal(ms[1].data, &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 1 {
		t.Fatalf("index of an unsigned bundle names %d manifests", len(idx.Manifests))
	}
	if ms[4].typ != tar.TypeXGlobalHeader || ms[5].dataOff != specReserve+512 {
		t.Errorf("member 4 %q %s, member 5 at %d: want pad, then the first part at %d", ms[4].typ, ms[4].name, ms[5].dataOff-512, specReserve)
	}
	r, got, err := specRead(b.raw, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Signatures()) != 0 || !bytes.Equal(got["rootfs"], b.contents["rootfs"]) {
		t.Error("unsigned bundle does not read back")
	}
}

// TestFormatHeadOutgrowsReserve: a head larger than 64 KiB is written
// without a pad, payloads right behind it; readers do not care.
func TestFormatHeadOutgrowsReserve(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.bundle")
	content := specRandom(3000, 9)
	_, err := bundle.Create(path, bundle.Options{
		Name: "big", Version: "1.0.0", DeviceTypes: []string{"x"}, Created: specCreated, PartSize: 512,
		Sign: func(d digest.Digest) ([]bundle.Signature, error) {
			var sigs []bundle.Signature
			for i := range bundle.MaxSignatures {
				p, err := bundle.NewSimpleSigning(specRef, d, map[string]string{"n": strconv.Itoa(i), "fill": strings.Repeat("x", 1500)})
				if err != nil {
					return nil, err
				}
				sigs = append(sigs, bundle.Signature{Payload: p, Sig: []byte{byte(i)}})
			}
			return sigs, nil
		},
	}, bundle.Source{Name: "rootfs", Type: bundle.Rootfs, Content: bytes.NewReader(content)})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	ms := specMembers(t, raw)
	for _, m := range ms {
		if m.typ == tar.TypeXGlobalHeader {
			t.Errorf("pad member at %d, want none", m.hdrOff)
		}
	}
	if ms[4+1+1+bundle.MaxSignatures].hdrOff <= specReserve {
		t.Error("head is expected to outgrow the reserve")
	}
	_, got, err := specRead(raw, false)
	if err != nil || !bytes.Equal(got["rootfs"], content) {
		t.Fatalf("read: %v", err)
	}
}

// TestFormatEmptyPayload: an empty payload is one part holding an empty
// zstd frame.
func TestFormatEmptyPayload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.bundle")
	res, err := bundle.Create(path, bundle.Options{Name: "e", Version: "0.0.1", DeviceTypes: []string{"x"}, Created: specCreated},
		bundle.Source{Name: "m", Type: bundle.Module, Content: bytes.NewReader(nil)})
	if err != nil {
		t.Fatal(err)
	}
	p := res.Config.Payloads[0]
	if p.Parts != 1 || p.Size != 0 || p.CompressedSize == 0 || p.Digest != digest.FromBytes(nil) {
		t.Errorf("empty payload: %+v", p)
	}
	raw, _ := os.ReadFile(path)
	_, got, err := specRead(raw, false)
	if err != nil || len(got["m"]) != 0 {
		t.Fatalf("read: %v %d", err, len(got["m"]))
	}
}

// specSplice returns raw with ins inserted at off.
func specSplice(raw []byte, off int64, ins ...[]byte) []byte {
	out := append([]byte{}, raw[:off]...)
	for _, b := range ins {
		out = append(out, b...)
	}
	return append(out, raw[off:]...)
}

func specHeader(t testing.TB, h *tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(h); err != nil {
		t.Fatal(err)
	}
	if h.Typeflag == tar.TypeXGlobalHeader {
		if err := tw.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes() // the header block(s) only, without data
}

// TestFormatReaderSkips: readers skip directory entries and pax global
// headers anywhere, and accept a "./" prefix on member names.
func TestFormatReaderSkips(t *testing.T) {
	b := specCreate(t, 1, true)
	ms := specMembers(t, b.raw)
	dir := func(name string) []byte {
		return specHeader(t, &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: specCreated, Format: tar.FormatUSTAR})
	}
	glob := specHeader(t, &tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: map[string]string{"comment": "hello"}, Format: tar.FormatPAX})
	raw := b.raw
	// Insert from the back so offsets stay valid.
	raw = specSplice(raw, ms[11].hdrOff, glob, dir("blobs/"))                      // between parts
	raw = specSplice(raw, ms[2].hdrOff, dir("blobs/"), dir("blobs/sha256/"), glob) // before the manifest
	raw = specSplice(raw, ms[1].hdrOff, glob)                                      // before index.json
	raw = specSplice(raw, 0, dir("./"), glob)                                      // first of all
	if _, got, err := specRead(raw, false); err != nil || !bytes.Equal(got["app"], b.contents["app"]) {
		t.Fatalf("with directories and global headers inserted: %v", err)
	}

	// "./oci-layout": rewrite the layout header with a ./ prefix.
	raw = append([]byte{}, b.raw...)
	copy(raw[0:512], specHeader(t, &tar.Header{Typeflag: tar.TypeReg, Name: "./oci-layout", Size: ms[0].size, Mode: 0o644, ModTime: specCreated, Format: tar.FormatUSTAR}))
	if _, _, err := specRead(raw, false); err != nil {
		t.Errorf("./oci-layout: %v", err)
	}

	// Other entry types are refused.
	raw = specSplice(b.raw, ms[2].hdrOff, specHeader(t, &tar.Header{Typeflag: tar.TypeSymlink, Name: "blobs/x", Linkname: "y", ModTime: specCreated, Format: tar.FormatUSTAR}))
	if _, _, err := specRead(raw, false); err == nil || !strings.Contains(err.Error(), "regular file") {
		t.Errorf("symlink member: %v, want refused", err)
	}
}

// TestFormatOrderEnforced: members out of the fixed order are refused.
func TestFormatOrderEnforced(t *testing.T) {
	b := specCreate(t, 1, true)
	ms := specMembers(t, b.raw)
	cut := func(m specMember) []byte { return b.raw[m.hdrOff:m.paddedEnd()] }
	swap := func(i, j int) []byte { // i < j, adjacent
		out := append([]byte{}, b.raw[:ms[i].hdrOff]...)
		out = append(out, cut(ms[j])...)
		out = append(out, cut(ms[i])...)
		return append(out, b.raw[ms[j].paddedEnd():]...)
	}
	drop := func(i int) []byte {
		return append(append([]byte{}, b.raw[:ms[i].hdrOff]...), b.raw[ms[i].paddedEnd():]...)
	}
	tests := []struct {
		name string
		raw  []byte
		want string
	}{
		{"index before layout", swap(0, 1), "layout"},
		{"config before manifest", swap(2, 3), "manifest"},
		{"signature manifest before config", swap(3, 4), "config"},
		{"signature config before signature manifest", swap(4, 5), "signature manifest"},
		{"signature payloads swapped", swap(6, 7), "signature"},
		{"parts swapped", swap(9, 10), `payload "rootfs" part 1 of 5`},
		{"payloads swapped", swap(13, 14), `payload "rootfs" part 5 of 5`},
		{"no layout", drop(0), "layout"},
		{"no signature config", drop(5), "signature config"},
		{"part missing", drop(12), `payload "rootfs" part 4 of 5`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := specRead(tt.raw, false)
			specWantError(t, err, tt.want)
		})
	}
}

func specWantError(t *testing.T, err error, region string) {
	t.Helper()
	if err == nil {
		t.Fatalf("read succeeded, want an error about %s", region)
	}
	var be *bundle.Error
	if !errors.As(err, &be) {
		t.Errorf("error %q is not a *bundle.Error", err)
	}
	if !strings.Contains(err.Error(), region) {
		t.Errorf("error %q does not mention %s", err, region)
	}
}

// specSameView reports whether a damaged bundle that read without error gave
// the reader exactly what the intact one gives: then the damage was in bytes
// nothing depends on (tar padding, unsigned names in the index).
func specSameView(b *specBundle, raw []byte) error {
	r, got, err := specRead(raw, false)
	if err != nil {
		return err
	}
	if r.ManifestDigest() != b.res.ManifestDigest {
		return fmt.Errorf("manifest digest %s", r.ManifestDigest())
	}
	if len(r.Signatures()) != len(b.sigs) {
		return fmt.Errorf("%d signatures", len(r.Signatures()))
	}
	for i, s := range r.Signatures() {
		if !bytes.Equal(s.Payload, b.sigs[i].Payload) || !bytes.Equal(s.Sig, b.sigs[i].Sig) {
			return fmt.Errorf("signature %d differs", i)
		}
	}
	for name, want := range b.contents {
		if !bytes.Equal(got[name], want) {
			return fmt.Errorf("payload %s differs", name)
		}
	}
	return nil
}

// TestFormatCorruptHead flips every byte of the head, one at a time. A flip in
// a digest-checked blob (manifest, config, signature manifest, signature
// config, signature payloads) must be refused, naming the blob. A flip
// elsewhere (tar headers and padding, the unsigned oci-layout and
// index.json, the pad) must be refused or change nothing the reader returns.
func TestFormatCorruptHead(t *testing.T) {
	b := specCreate(t, 1, true)
	ms := specMembers(t, b.raw)
	regions := []string{"layout", "index", "manifest", "config", "signature manifest", "signature config", "signature 1", "signature 3"}
	type job struct {
		off      int64
		mask     byte
		region   string // "tar" for bytes outside any member's data
		mustFail bool
		alsoOK   []string // other names an error may give instead
	}
	var jobs []job
	for i, m := range ms[:8] {
		region := regions[i]
		for off := m.hdrOff; off < m.dataOff; off++ {
			jobs = append(jobs, job{off: off, mask: 0x01, region: "tar"})
		}
		for off := m.dataOff; off < m.end(); off++ {
			switch i {
			case 0:
				jobs = append(jobs, job{off, 0x01, region, false, nil}, job{off, 0x20, region, false, nil})
			case 1:
				// A changed digest or size in the index is reported
				// by the member it names.
				jobs = append(jobs, job{off, 0x01, region, false, []string{"manifest"}}, job{off, 0x20, region, false, []string{"manifest"}})
			default:
				jobs = append(jobs, job{off, 0x01, region, true, nil})
			}
		}
		// Tar padding is read by nobody: its first and last byte stand
		// for all of it.
		if m.end() < m.paddedEnd() {
			jobs = append(jobs, job{off: m.end(), mask: 0x01, region: "tar"}, job{off: m.paddedEnd() - 1, mask: 0x01, region: "tar"})
		}
	}
	pad := ms[8]
	for off := pad.hdrOff; off < pad.dataOff+16; off++ {
		jobs = append(jobs, job{off: off, mask: 0x01, region: "tar"})
	}
	for off := pad.end() - 16; off < pad.paddedEnd(); off++ {
		jobs = append(jobs, job{off: off, mask: 0x01, region: "tar"})
	}
	if testing.Short() {
		var some []job
		for i := 0; i < len(jobs); i += 7 {
			some = append(some, jobs[i])
		}
		jobs = some
	}

	var mu sync.Mutex
	harmless := map[string][]int64{}
	run := func(j job) {
		raw := append([]byte{}, b.raw...)
		raw[j.off] ^= j.mask
		_, _, err := specRead(raw, true)
		if err == nil {
			if j.mustFail {
				t.Errorf("%s: byte %d ^%#x: read succeeded", j.region, j.off, j.mask)
				return
			}
			if verr := specSameView(b, raw); verr != nil {
				t.Errorf("%s: byte %d ^%#x: read succeeded with a different result: %v", j.region, j.off, j.mask, verr)
			}
			mu.Lock()
			harmless[j.region] = append(harmless[j.region], j.off)
			mu.Unlock()
			return
		}
		var be *bundle.Error
		if !errors.As(err, &be) {
			t.Errorf("%s: byte %d ^%#x: error %q is not a *bundle.Error", j.region, j.off, j.mask, err)
		}
		if j.region == "tar" {
			return
		}
		for _, w := range append([]string{j.region}, j.alsoOK...) {
			if strings.Contains(err.Error(), w) {
				return
			}
		}
		t.Errorf("%s: byte %d ^%#x: error %q does not name the region", j.region, j.off, j.mask, err)
	}
	ch := make(chan job)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for j := range ch {
				run(j)
			}
		})
	}
	for _, j := range jobs {
		ch <- j
	}
	close(ch)
	wg.Wait()

	// Say which unsigned bytes nothing checks (FORMAT.md: index.json and
	// oci-layout are not covered by any digest).
	for _, region := range []string{"layout", "index"} {
		offs := slices.Compact(slices.Sorted(slices.Values(harmless[region])))
		var spans []string
		for i := 0; i < len(offs); {
			j := i
			for j+1 < len(offs) && offs[j+1] == offs[j]+1 {
				j++
			}
			spans = append(spans, fmt.Sprintf("%q", b.raw[offs[i]:offs[j]+1]))
			i = j + 1
		}
		if len(spans) > 0 {
			t.Logf("%s: flips that change nothing the reader returns: %s", region, strings.Join(spans, " "))
		}
	}
}

// TestFormatCorruptPayload flips a byte at the start, middle and end of every
// part: Read (decompressing) and Discard (layer digests only) must both fail
// and name the payload.
func TestFormatCorruptPayload(t *testing.T) {
	b := specCreate(t, 1, true)
	ms := specMembers(t, b.raw)
	parts := ms[9:]
	for i, p := range parts {
		name := "rootfs"
		if i >= 5 {
			name = "app"
		}
		for _, at := range []int64{0, p.size / 2, p.size - 1} {
			for _, discard := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/part%d/at%d/discard=%v", name, i, at, discard), func(t *testing.T) {
					raw := append([]byte{}, b.raw...)
					raw[p.dataOff+at] ^= 0x01
					_, _, err := specRead(raw, discard)
					specWantError(t, err, fmt.Sprintf("payload %q", name))
				})
			}
		}
	}
}

// TestFormatTruncated cuts the bundle every 512 bytes (and at odd offsets in
// between): every cut before the end of the last part's data must fail with
// ErrTruncated.
func TestFormatTruncated(t *testing.T) {
	b := specCreate(t, 1, true)
	var cuts []int64
	for off := int64(0); off < int64(len(b.raw)); off += 512 {
		cuts = append(cuts, off)
		if off+211 < int64(len(b.raw)) {
			cuts = append(cuts, off+211)
		}
	}
	// FORMAT.md §3.5: the end-of-archive marker is read and checked too,
	// so every cut is an error, also one in the marker.
	for _, n := range cuts {
		raw := b.raw[:n]
		for _, discard := range []bool{false, true} {
			_, _, err := specRead(raw, discard)
			if err == nil {
				t.Errorf("cut at %d, discard=%v: read succeeded", n, discard)
				continue
			}
			if !errors.Is(err, bundle.ErrTruncated) {
				t.Errorf("cut at %d, discard=%v: %v: not ErrTruncated", n, discard, err)
			}
			var be *bundle.Error
			if !errors.As(err, &be) {
				t.Errorf("cut at %d, discard=%v: %q is not a *bundle.Error", n, discard, err)
			}
		}
	}
}

// TestFormatSwappedPart puts a part of another bundle in place of one of
// this bundle's parts: the member name (its digest) does not match.
func TestFormatSwappedPart(t *testing.T) {
	a := specCreate(t, 1, true)
	o := specCreate(t, 2, true)
	am, om := specMembers(t, a.raw), specMembers(t, o.raw)
	for _, i := range []int{9, 10, 13, 14, 16} {
		name := "rootfs"
		if i >= 14 {
			name = "app"
		}
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			raw := append([]byte{}, a.raw[:am[i].hdrOff]...)
			raw = append(raw, o.raw[om[i].hdrOff:om[i].paddedEnd()]...)
			raw = append(raw, a.raw[am[i].paddedEnd():]...)
			_, _, err := specRead(raw, false)
			specWantError(t, err, fmt.Sprintf("payload %q", name))
			if !strings.Contains(err.Error(), "unexpected member") {
				t.Errorf("error %q: want an unexpected member", err)
			}
			// And with the header renamed to the expected digest, the
			// data fails its digest.
			copy(raw[am[i].hdrOff:], specHeader(t, &tar.Header{Typeflag: tar.TypeReg, Name: am[i].name, Size: om[i].size, Mode: 0o644, ModTime: specCreated, Format: tar.FormatUSTAR}))
			_, _, err = specRead(raw, true)
			specWantError(t, err, fmt.Sprintf("payload %q", name))
		})
	}
}

// TestFormatPartSizeMismatch: a part member that holds more (or fewer) bytes
// than its layer descriptor is refused before its data is read.
func TestFormatPartSizeMismatch(t *testing.T) {
	b := specCreate(t, 1, true)
	ms := specMembers(t, b.raw)
	for _, tt := range []struct {
		name  string
		i     int
		delta int64
	}{{"junk appended", 10, 512}, {"one byte more", 13, 1}, {"one byte less", 16, -1}, {"empty", 9, -specPartSize}} {
		t.Run(tt.name, func(t *testing.T) {
			m := ms[tt.i]
			size := m.size + tt.delta
			data := append([]byte{}, m.data...)
			if tt.delta > 0 {
				data = append(data, bytes.Repeat([]byte{'J'}, int(tt.delta))...)
			} else {
				data = data[:size]
			}
			hdr := specHeader(t, &tar.Header{Typeflag: tar.TypeReg, Name: m.name, Size: size, Mode: 0o644, ModTime: specCreated, Format: tar.FormatUSTAR})
			raw := append([]byte{}, b.raw[:m.hdrOff]...)
			raw = append(raw, hdr...)
			raw = append(raw, data...)
			raw = append(raw, make([]byte, (512-size%512)%512)...)
			raw = append(raw, b.raw[m.paddedEnd():]...)
			_, _, err := specRead(raw, false)
			specWantError(t, err, "payload")
			if !strings.Contains(err.Error(), "manifest says") {
				t.Errorf("error %q: want a size mismatch", err)
			}
		})
	}
}

// TestFormatSimpleSigning pins the exact bytes of the signed payload.
func TestFormatSimpleSigning(t *testing.T) {
	d := digest.FromString("m")
	got, err := bundle.NewSimpleSigning(specRef, d, map[string]string{
		"dev.ferry.signer": "release@example.com", "dev.ferry.keyid": "ab", "dev.ferry.signed-at": "2025-01-02T03:04:06Z",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"critical":{"identity":{"docker-reference":"` + specRef + `"},"image":{"docker-manifest-digest":"` + d.String() +
		`"},"type":"cosign container image signature"},"optional":{"dev.ferry.keyid":"ab","dev.ferry.signed-at":"2025-01-02T03:04:06Z","dev.ferry.signer":"release@example.com"}}`
	if string(got) != want {
		t.Errorf("payload\n got %s\nwant %s", got, want)
	}
	got, _ = bundle.NewSimpleSigning(specRef, d, nil)
	if !strings.HasSuffix(string(got), `"optional":null}`) {
		t.Errorf("payload without claims: %s", got)
	}
	s, err := bundle.ParseSimpleSigning(got)
	if err != nil || s.Critical.Image.DockerManifestDigest != d.String() {
		t.Errorf("parse: %v", err)
	}
	if bundle.SignatureTag(d) != "sha256-"+d.Encoded()+".sig" {
		t.Error(bundle.SignatureTag(d))
	}
	for _, bad := range []string{
		`{"critical":{"image":{"docker-manifest-digest":"` + d.String() + `"},"type":"atomic container signature"}}`,
		`{"critical":{"image":{"docker-manifest-digest":"sha256:xyz"},"type":"cosign container image signature"}}`,
		`[]`,
	} {
		if _, err := bundle.ParseSimpleSigning([]byte(bad)); err == nil {
			t.Errorf("ParseSimpleSigning(%s) succeeded", bad)
		}
	}
}

// TestFormatConfigRules pins the config's field constraints (FORMAT.md "The
// config").
func TestFormatConfigRules(t *testing.T) {
	valid := func() *bundle.Config {
		return &bundle.Config{
			FormatVersion: 1, Name: "demo", Version: "1.0.0", DeviceTypes: []string{"rpi4"}, Created: specCreated,
			Payloads: []bundle.Payload{{Name: "rootfs", Type: bundle.Rootfs, Target: "rootfs", Size: 1, Digest: digest.FromString("x"), Compression: "zstd", CompressedSize: 1, Parts: 1}},
		}
	}
	if err := valid().Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		edit  func(c *bundle.Config)
		valid bool
	}{
		{"formatVersion 0", func(c *bundle.Config) { c.FormatVersion = 0 }, false},
		{"formatVersion 2", func(c *bundle.Config) { c.FormatVersion = 2 }, true},
		{"formatVersion 4", func(c *bundle.Config) { c.FormatVersion = 4 }, false},
		{"provides", func(c *bundle.Config) { c.Provides = map[string]string{"app-conf": "1.2.0", "gw-os.kernel": "6.1.0"} }, true},
		{"provides own name", func(c *bundle.Config) { c.Provides = map[string]string{"demo": "1.0.0"} }, false},
		{"provides bad name", func(c *bundle.Config) { c.Provides = map[string]string{"App": "1.0.0"} }, false},
		{"provides short version", func(c *bundle.Config) { c.Provides = map[string]string{"app": "1.2"} }, false},
		{"provides 65", func(c *bundle.Config) {
			c.Provides = map[string]string{}
			for i := range 65 {
				c.Provides[fmt.Sprintf("c%d", i)] = "1.0.0"
			}
		}, false},
		{"depends in version 1", func(c *bundle.Config) { c.Depends = []string{"gw-os >= 1.4"} }, false},
		{"depends in version 2", func(c *bundle.Config) { c.FormatVersion = 2; c.Depends = []string{"gw-os >= 1.4", "demo >= 0.9, < 1"} }, true},
		{"depends on itself", func(c *bundle.Config) { c.FormatVersion = 2; c.Depends = []string{"demo >= 0.9"} }, true},
		{"depends malformed", func(c *bundle.Config) { c.FormatVersion = 2; c.Depends = []string{"gw-os ~> 1.4"} }, false},
		{"depends twice", func(c *bundle.Config) { c.FormatVersion = 2; c.Depends = []string{"gw-os >= 1.4", "gw-os < 2"} }, false},
		{"name upper case", func(c *bundle.Config) { c.Name = "Demo" }, false},
		{"name 128", func(c *bundle.Config) { c.Name = strings.Repeat("a", 128) }, true},
		{"name 129", func(c *bundle.Config) { c.Name = strings.Repeat("a", 129) }, false},
		{"name leading dot", func(c *bundle.Config) { c.Name = ".demo" }, false},
		{"version prerelease+build", func(c *bundle.Config) { c.Version = "2.0.0-rc.1+g1234" }, true},
		{"version v prefix", func(c *bundle.Config) { c.Version = "v1.0.0" }, false},
		{"version two parts", func(c *bundle.Config) { c.Version = "1.0" }, false},
		{"version leading zero", func(c *bundle.Config) { c.Version = "01.0.0" }, false},
		{"no device types", func(c *bundle.Config) { c.DeviceTypes = nil }, false},
		{"device type plus", func(c *bundle.Config) { c.DeviceTypes = []string{"imx8mm-var+dart"} }, true},
		{"device type twice", func(c *bundle.Config) { c.DeviceTypes = []string{"a", "a"} }, false},
		{"device type 65", func(c *bundle.Config) { c.DeviceTypes = []string{strings.Repeat("a", 65)} }, false},
		{"no payloads", func(c *bundle.Config) { c.Payloads = nil }, false},
		{"payload names twice", func(c *bundle.Config) { c.Payloads = append(c.Payloads, c.Payloads[0]) }, false},
		{"payload type", func(c *bundle.Config) { c.Payloads[0].Type = "image" }, false},
		{"target path", func(c *bundle.Config) { c.Payloads[0].Target = "opt/app/current" }, true},
		{"target absolute", func(c *bundle.Config) { c.Payloads[0].Target = "/opt" }, false},
		{"target dotdot", func(c *bundle.Config) { c.Payloads[0].Target = "opt/../etc" }, false},
		{"digest sha512", func(c *bundle.Config) { c.Payloads[0].Digest = digest.SHA512.FromString("x") }, false},
		{"compression gzip", func(c *bundle.Config) { c.Payloads[0].Compression = "gzip" }, false},
		{"parts 0", func(c *bundle.Config) { c.Payloads[0].Parts = 0 }, false},
		{"negative size", func(c *bundle.Config) { c.Payloads[0].Size = -1 }, false},
	}
	for _, tt := range tests {
		c := valid()
		tt.edit(c)
		if err := c.Validate(); (err == nil) != tt.valid {
			t.Errorf("%s: Validate() = %v, want valid=%v", tt.name, err, tt.valid)
		}
	}
	c := valid()
	c.Version = "1.2.3+build.7"
	if c.Tag() != "1.2.3_build.7" {
		t.Errorf("Tag() = %s", c.Tag())
	}
	if bundle.CompareVersions("1.0.0+a", "1.0.0+b") != 0 || bundle.CompareVersions("1.0.0-rc.1", "1.0.0") != -1 {
		t.Error("CompareVersions: want semver 2.0.0 precedence, build metadata ignored")
	}
}

// specAssemble builds a bundle archive from this document's rules alone,
// without package bundle's writer: a second implementation in miniature.
// streams holds each payload's compressed stream already cut into parts
// (of any sizes); cfg's Parts and CompressedSize are filled in here. With
// dirs, directory entries are written before the blobs, as other OCI tools
// do.
func specAssemble(t testing.TB, cfg bundle.Config, streams map[string][][]byte, sigs []bundle.Signature, dirs bool) []byte {
	t.Helper()
	desc := func(mediaType string, b []byte) ocispec.Descriptor {
		return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	}
	var layers []ocispec.Descriptor
	var parts [][]byte
	for i := range cfg.Payloads {
		p := &cfg.Payloads[i]
		p.Parts, p.CompressedSize = len(streams[p.Name]), 0
		for k, part := range streams[p.Name] {
			d := desc("application/vnd.ferry.payload.v1+zstd", part)
			d.Annotations = map[string]string{"dev.ferry.payload.name": p.Name, "dev.ferry.payload.part": strconv.Itoa(k)}
			layers = append(layers, d)
			parts = append(parts, part)
			p.CompressedSize += int64(len(part))
		}
	}
	mustJSON := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	config := mustJSON(&cfg)
	manifest := mustJSON(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"artifactType":  "application/vnd.ferry.bundle.v1",
		"config":        desc("application/vnd.ferry.bundle.config.v1+json", config),
		"layers":        layers,
	})
	md := desc("application/vnd.oci.image.manifest.v1+json", manifest)
	md.ArtifactType = "application/vnd.ferry.bundle.v1"
	md.Annotations = map[string]string{"org.opencontainers.image.ref.name": cfg.Tag()}
	index := map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []ocispec.Descriptor{md}}
	blobs := [][]byte{manifest, config}
	if len(sigs) > 0 {
		var sl []ocispec.Descriptor
		var diffIDs []digest.Digest
		var payloads [][]byte
		seen := map[digest.Digest]bool{}
		for _, s := range sigs {
			d := desc("application/vnd.dev.cosign.simplesigning.v1+json", s.Payload)
			d.Annotations = map[string]string{"dev.cosignproject.cosign/signature": base64.StdEncoding.EncodeToString(s.Sig)}
			sl = append(sl, d)
			diffIDs = append(diffIDs, d.Digest)
			if !seen[d.Digest] {
				seen[d.Digest] = true
				payloads = append(payloads, s.Payload)
			}
		}
		sc := mustJSON(map[string]any{"architecture": "", "os": "", "config": map[string]any{}, "rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}})
		sm := mustJSON(map[string]any{
			"schemaVersion": 2,
			"mediaType":     "application/vnd.oci.image.manifest.v1+json",
			"config":        desc("application/vnd.oci.image.config.v1+json", sc),
			"layers":        sl,
		})
		smd := desc("application/vnd.oci.image.manifest.v1+json", sm)
		smd.Annotations = map[string]string{"org.opencontainers.image.ref.name": "sha256-" + md.Digest.Encoded() + ".sig"}
		index["manifests"] = []ocispec.Descriptor{md, smd}
		blobs = append(blobs, sm, sc)
		blobs = append(blobs, payloads...)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, data []byte) {
		h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(data)), Mode: 0o644, ModTime: specCreated, Format: tar.FormatUSTAR}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	add("index.json", mustJSON(index))
	if dirs {
		for _, d := range []string{"blobs/", "blobs/sha256/"} {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: specCreated, Format: tar.FormatUSTAR}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, b := range append(blobs, parts...) {
		add("blobs/sha256/"+specDigestHex(b), b)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// specCompress returns content as a zstd stream made by an encoder other
// than ferry's writer, as several frames.
func specCompress(t testing.TB, content []byte, frames int) []byte {
	t.Helper()
	var out []byte
	step := (len(content) + frames - 1) / max(frames, 1)
	for i := 0; i < frames; i++ {
		chunk := content[min(i*step, len(content)):min((i+1)*step, len(content))]
		enc, err := kzstd.NewWriter(nil, kzstd.WithEncoderLevel(kzstd.SpeedFastest), kzstd.WithEncoderCRC(true))
		if err != nil {
			t.Fatal(err)
		}
		out = enc.EncodeAll(chunk, out)
	}
	return out
}

// specCut cuts b at the given offsets (clamped, in order).
func specCut(b []byte, at ...int) [][]byte {
	var parts [][]byte
	prev := 0
	for _, a := range at {
		a = min(max(a, prev), len(b))
		parts = append(parts, b[prev:a])
		prev = a
	}
	return append(parts, b[prev:])
}

// TestFormatIndependentWriter: a bundle assembled from FORMAT.md alone —
// another zstd encoder, several frames with checksums, parts of uneven
// sizes (one empty), directory entries — reads back with the reference
// reader.
func TestFormatIndependentWriter(t *testing.T) {
	rootfs, tree := specRandom(9000, 5), specTree(t, 6)
	cfg := bundle.Config{
		FormatVersion: 1, Name: "indie", Version: "3.0.0-rc.2", DeviceTypes: []string{"board"}, Created: specCreated,
		Payloads: []bundle.Payload{
			{Name: "rootfs", Type: bundle.Rootfs, Target: "rootfs", Size: int64(len(rootfs)), Digest: digest.FromBytes(rootfs), Compression: "zstd"},
			{Name: "app", Type: bundle.Files, Target: "opt/app", Size: int64(len(tree)), Digest: digest.FromBytes(tree), Compression: "zstd"},
		},
	}
	rs := specCompress(t, rootfs, 3)
	streams := map[string][][]byte{
		"rootfs": specCut(rs, 1000, 1001, 1001, 5000),
		"app":    specCut(specCompress(t, tree, 1)),
	}
	raw := specAssemble(t, cfg, streams, nil, true)
	r, got, err := specRead(raw, false)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got["rootfs"], rootfs) || !bytes.Equal(got["app"], tree) {
		t.Error("content differs")
	}
	if n := len(r.Manifest().Layers); n != 6 {
		t.Errorf("%d layers", n)
	}

	// Signed: the signature payload names the manifest digest, which the
	// assembly computes; assemble twice.
	p, _ := bundle.NewSimpleSigning(specRef, r.ManifestDigest(), nil)
	raw = specAssemble(t, cfg, streams, []bundle.Signature{{Payload: p, Sig: []byte{1}}, {Payload: p, Sig: []byte{2}}}, false)
	r, _, err = specRead(raw, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Signatures()) != 2 {
		t.Errorf("%d signatures", len(r.Signatures()))
	}
}
