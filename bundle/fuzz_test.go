package bundle_test

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/zstd"
)

// specSmallBundle returns a small valid bundle for fuzzing: two payloads in
// 512-byte parts, optionally one (fake) signature and an attachment, and without the writer's
// 64 KiB pad (readers skip it, and the fuzzer is faster on small inputs).
func specSmallBundle(f testing.TB, sign bool) []byte {
	f.Helper()
	var tree bytes.Buffer
	tw := tar.NewWriter(&tree)
	for _, e := range []struct {
		name string
		typ  byte
		data string
	}{{"etc/", tar.TypeDir, ""}, {"etc/motd", tar.TypeReg, "hello\n"}, {"etc/link", tar.TypeSymlink, ""}} {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.data)), ModTime: specCreated}
		if e.typ == tar.TypeSymlink {
			h.Linkname = "motd"
		}
		if err := tw.WriteHeader(h); err != nil {
			f.Fatal(err)
		}
		io.WriteString(tw, e.data)
	}
	tw.Close()
	opts := bundle.Options{Name: "fuzz", Version: "1.0.0", DeviceTypes: []string{"x"}, Created: specCreated, PartSize: 512, Workers: 1}
	if sign {
		opts.Sign = func(d digest.Digest) ([]bundle.Signature, error) {
			p, err := bundle.NewSimpleSigning("r", d, map[string]string{"dev.ferry.keyid": "ab"})
			return []bundle.Signature{{Payload: p, Sig: []byte{1}}}, err
		}
		// The signed seed also carries an attachment (FORMAT.md §6.1).
		opts.Attachments = []bundle.AttachmentData{{Attachment: bundle.Attachment{Name: "sbom.json", MediaType: bundle.SPDXMediaType}, Data: []byte(`{"spdxVersion":"SPDX-2.3"}`)}}
	}
	path := filepath.Join(f.TempDir(), "fuzz.bundle")
	if _, err := bundle.Create(path, opts,
		bundle.Source{Name: "rootfs", Type: bundle.Rootfs, Content: bytes.NewReader(specRandom(1200, 3))},
		bundle.Source{Name: "app", Type: bundle.Files, Content: &tree},
	); err != nil {
		f.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	for _, m := range specMembers(f, raw) {
		if m.typ == tar.TypeXGlobalHeader {
			return append(raw[:m.hdrOff:m.hdrOff], raw[m.paddedEnd():]...)
		}
	}
	return raw
}

// FuzzReader feeds arbitrary archives to NewReader and drains every payload,
// alternately decompressing (Read) and checking layer digests only
// (Discard). It must not panic or hang; every error must be a *bundle.Error;
// what one input allocates is bounded by the format's limits and the zstd
// window limit, not by what the input claims; and whatever reads without
// error must match the digests the config states.
func FuzzReader(f *testing.F) {
	for _, sign := range []bool{true, false} {
		raw := specSmallBundle(f, sign)
		if _, _, err := specRead(raw, false); err != nil {
			f.Fatalf("seed bundle: %v", err)
		}
		f.Add(raw)
		for _, n := range []int{0, 511, 512, 1024, 1536, len(raw) / 3, len(raw) / 2, len(raw) - 1024, len(raw) - 1} {
			f.Add(raw[:n])
		}
		// Bytes the signed manifest does not account for (FORMAT.md
		// §3.5): a member after the last part, one shadowing
		// index.json, non-zero data after the end marker.
		body := raw[:len(raw)-1024]
		f.Add(bytes.Join([][]byte{body, specMemberBytes(f, "blobs/sha256/"+strings.Repeat("0", 64), []byte("x")), make([]byte, 1024)}, nil))
		f.Add(bytes.Join([][]byte{body, specMemberBytes(f, "./index.json", []byte("{}")), make([]byte, 1024)}, nil))
		f.Add(bytes.Join([][]byte{raw, make([]byte, 512), {1}}, nil))
	}
	// Decompressed output read per payload: enough for many blocks.
	const maxOut = 16 << 20
	const maxAlloc = zstd.MaxWindow + bundle.MaxManifestSize + bundle.MaxIndexSize + bundle.MaxConfigSize + bundle.MaxSigManifestSize + bundle.MaxAttachmentSize + 2*maxOut
	f.Fuzz(func(t *testing.T, data []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		defer func() {
			runtime.ReadMemStats(&after)
			if got := after.TotalAlloc - before.TotalAlloc; got > maxAlloc {
				t.Fatalf("reading %d input bytes allocated %d MiB", len(data), got>>20)
			}
		}()
		wantBundleError := func(err error) {
			t.Helper()
			var be *bundle.Error
			if !errors.As(err, &be) {
				t.Fatalf("error %q (%T) is not a *bundle.Error", err, err)
			}
		}
		r, err := bundle.NewReader(bytes.NewReader(data))
		if err != nil {
			wantBundleError(err)
			return
		}
		defer r.Close()
		if len(r.RawManifest()) > bundle.MaxManifestSize || len(r.RawConfig()) > bundle.MaxConfigSize || len(r.Signatures()) > bundle.MaxSignatures {
			t.Fatal("head exceeds the limits")
		}
		if err := r.Config().Validate(); err != nil {
			t.Fatalf("NewReader accepted an invalid config: %v", err)
		}
		for i := 0; ; i++ {
			p, err := r.Next()
			if err == io.EOF {
				specOnlySigned(t, data)
				return
			}
			if err != nil {
				wantBundleError(err)
				return
			}
			if i%2 == 1 {
				if err := p.Discard(); err != nil {
					wantBundleError(err)
					return
				}
				continue
			}
			h := sha256.New()
			n, err := io.Copy(h, io.LimitReader(p, maxOut))
			if err != nil {
				wantBundleError(err)
				return
			}
			if n < maxOut && (n != p.Size || digest.NewDigest(digest.SHA256, h) != p.Digest) {
				t.Fatalf("payload %s read without error: %d bytes %s, config says %d %s", p.Name, n, digest.NewDigest(digest.SHA256, h), p.Size, p.Digest)
			}
		}
	})
}

// specOnlySigned checks an archive the reader accepted whole: archive/tar,
// as another consumer (skopeo, a registry) reads it, must find only the
// layout, the index and blobs whose content matches their names.
func specOnlySigned(t *testing.T, data []byte) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("ferry accepted an archive archive/tar cannot read: %v", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		name := strings.TrimPrefix(h.Name, "./")
		hex, isBlob := strings.CutPrefix(name, "blobs/sha256/")
		if !isBlob {
			if name != "oci-layout" && name != "index.json" {
				t.Fatalf("ferry accepted an archive with the member %q", h.Name)
			}
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if got := specDigestHex(b); got != hex {
			t.Fatalf("ferry accepted an archive whose member %s holds sha256:%s", h.Name, got)
		}
	}
}

// ociTag is the OCI distribution spec's tag grammar.
var ociTag = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)

// FuzzParseConfig: whatever ParseConfig accepts is valid, survives a
// marshal/parse round trip unchanged, and names a usable OCI tag.
func FuzzParseConfig(f *testing.F) {
	c := bundle.Config{
		FormatVersion: 1, Name: "demo", Version: "1.2.3-rc.1+build.7", DeviceTypes: []string{"rpi4", "qemu-x86_64"},
		Created: specCreated, Description: "d", Annotations: map[string]string{"k": "v"},
		Payloads: []bundle.Payload{
			{Name: "rootfs", Type: bundle.Rootfs, Target: "rootfs", Size: 10, Digest: digest.FromString("a"), Compression: "zstd", CompressedSize: 9, Parts: 1},
			{Name: "app", Type: bundle.Files, Target: "opt/app", Size: 0, Digest: digest.FromString(""), Compression: "zstd", CompressedSize: 13, Parts: 2},
		},
	}
	b, _ := json.Marshal(&c)
	f.Add(b)
	f.Add([]byte(strings.Replace(string(b), `"formatVersion":1`, `"formatVersion":2`, 1)))
	f.Add([]byte(strings.Replace(string(b), `"created":"2025-01-02T03:04:05Z"`, `"created":"2025-01-02T03:04:05.123+02:00"`, 1)))
	c.FormatVersion, c.Provides, c.Depends = 2, map[string]string{"app-conf": "1.2.0"}, []string{"gw-os >= 1.4, < 2", "demo == 1.2.0-rc.1"}
	b, _ = json.Marshal(&c)
	f.Add(b)
	c.FormatVersion, c.Provides, c.Depends = 1, nil, nil
	c.Attachments = []bundle.Attachment{{Name: "sbom.spdx.json", MediaType: bundle.SPDXMediaType, Digest: digest.FromString("s"), Size: 1}}
	b, _ = json.Marshal(&c)
	f.Add(b)
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := bundle.ParseConfig(data)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("ParseConfig accepted an invalid config: %v", err)
		}
		if !ociTag.MatchString(c.Tag()) {
			t.Fatalf("version %q gives tag %q, which is not a valid OCI tag", c.Version, c.Tag())
		}
		if bundle.CompareVersions(c.Version, c.Version) != 0 {
			t.Fatalf("version %q does not equal itself", c.Version)
		}
		b1, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("accepted config cannot be encoded again: %v", err)
		}
		c2, err := bundle.ParseConfig(b1)
		if err != nil {
			t.Fatalf("re-encoded config is refused: %v\n%s", err, b1)
		}
		b2, _ := json.Marshal(c2)
		if !bytes.Equal(b1, b2) || !c.Created.Equal(c2.Created) {
			t.Fatalf("round trip changed the config:\n%s\n%s", b1, b2)
		}
	})
}

// FuzzParseSimpleSigning: whatever ParseSimpleSigning accepts is a cosign
// payload cosign would accept too (one JSON object, nothing after it), of
// the cosign type, with a parseable digest, and it round-trips through
// NewSimpleSigning.
func FuzzParseSimpleSigning(f *testing.F) {
	d := digest.FromString("manifest")
	p, _ := bundle.NewSimpleSigning("registry.example.com/demo", d, map[string]string{"dev.ferry.keyid": "ab", "dev.ferry.signer": "me", "dev.ferry.signed-at": "2025-01-02T03:04:06Z"})
	f.Add(p)
	p, _ = bundle.NewSimpleSigning("", d, nil)
	f.Add(p)
	f.Add([]byte(`{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"sha512:` + strings.Repeat("0", 128) + `"},"type":"cosign container image signature"},"optional":{"n":1}}`))
	f.Add([]byte(`{"critical":{"type":"atomic container signature"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := bundle.ParseSimpleSigning(data)
		if err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted a payload that is not one JSON value (cosign refuses it): %q", data)
		}
		if s.Critical.Type != bundle.CosignSignatureType {
			t.Fatalf("type %q", s.Critical.Type)
		}
		md, err := digest.Parse(s.Critical.Image.DockerManifestDigest)
		if err != nil {
			t.Fatalf("accepted digest %q: %v", s.Critical.Image.DockerManifestDigest, err)
		}
		opt := map[string]string{}
		for k, v := range s.Optional {
			if str, ok := v.(string); ok {
				opt[k] = str
			}
		}
		again, err := bundle.NewSimpleSigning(s.Critical.Identity.DockerReference, md, opt)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := bundle.ParseSimpleSigning(again)
		if err != nil {
			t.Fatalf("re-encoded payload refused: %v", err)
		}
		if s2.Critical != s.Critical {
			t.Fatalf("round trip changed the critical section: %+v %+v", s.Critical, s2.Critical)
		}
		for k, v := range opt {
			if s2.OptionalString(k) != v {
				t.Fatalf("round trip changed claim %q", k)
			}
		}
	})
}

// specExtractSentinel is an absolute path outside every test directory that
// the seeds of FuzzExtractTree aim symbolic links at.
const specExtractSentinel = "/tmp/ferry-fuzz-extract-sentinel"

func specTar(f testing.TB, entries ...*tar.Header) []byte {
	f.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		data := []byte(h.Linkname)
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(data))
		} else {
			data = nil
		}
		if h.ModTime.IsZero() {
			h.ModTime = specCreated
		}
		if h.Mode == 0 {
			h.Mode = 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			f.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			h.Linkname = ""
			tw.Write(data)
		}
	}
	tw.Close()
	return buf.Bytes()
}

// FuzzExtractTree unpacks arbitrary tar streams into a directory: nothing
// may appear outside it, whatever the names and links say.
func FuzzExtractTree(f *testing.F) {
	reg := func(name, content string) *tar.Header {
		return &tar.Header{Typeflag: tar.TypeReg, Name: name, Linkname: content} // specTar writes Linkname as the data
	}
	dir := func(name string) *tar.Header { return &tar.Header{Typeflag: tar.TypeDir, Name: name} }
	sym := func(name, target string) *tar.Header {
		return &tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target}
	}
	src := f.TempDir()
	os.MkdirAll(filepath.Join(src, "etc", "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "etc", "motd"), []byte("hello\n"), 0o644)
	os.Symlink("motd", filepath.Join(src, "etc", "link"))
	var tree bytes.Buffer
	rc := bundle.TarTree(src, time.Time{})
	io.Copy(&tree, rc)
	rc.Close()
	f.Add(tree.Bytes())
	f.Add(specTar(f, dir("a/"), reg("a/f", "x"), sym("a/l", "f")))
	f.Add(specTar(f, reg("../evil", "x")))
	f.Add(specTar(f, reg("/evil", "x")))
	f.Add(specTar(f, reg("a/../../evil", "x")))
	f.Add(specTar(f, sym("up", ".."), reg("up/evil", "x")))
	f.Add(specTar(f, sym("up", ".."), dir("up/evil/")))
	f.Add(specTar(f, sym("up", ".."), dir("up")))
	f.Add(specTar(f, sym("abs", specExtractSentinel), reg("abs", "x")))
	f.Add(specTar(f, sym("abs", filepath.Dir(specExtractSentinel)), reg("abs/"+filepath.Base(specExtractSentinel), "x")))
	f.Add(specTar(f, sym("abs", filepath.Dir(specExtractSentinel)), dir("abs/"+filepath.Base(specExtractSentinel))))
	f.Add(specTar(f, sym("a", "b"), sym("b", "../x"), reg("a/f", "x")))
	f.Add(specTar(f, &tar.Header{Typeflag: tar.TypeLink, Name: "h", Linkname: "../evil"}))
	f.Add(specTar(f, reg("f", "x"), reg("f", "y")))
	f.Add(specTar(f, reg(`a\..\..\evil`, "x")))
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		root := filepath.Join(parent, "root")
		if err := os.Mkdir(root, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Remove(specExtractSentinel)
		before, err := os.Lstat(parent)
		if err != nil {
			t.Fatal(err)
		}
		_ = bundle.ExtractTree(bytes.NewReader(data), root)
		ents, err := os.ReadDir(parent)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 1 || ents[0].Name() != "root" || !ents[0].IsDir() {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Fatalf("extract wrote outside its directory: %v", names)
		}
		if _, err := os.Lstat(specExtractSentinel); err == nil {
			os.RemoveAll(specExtractSentinel)
			t.Fatalf("extract wrote %s through a link", specExtractSentinel)
		}
		if after, err := os.Lstat(parent); err != nil || after.Mode() != before.Mode() || !after.ModTime().Equal(before.ModTime()) {
			t.Fatalf("extract changed the mode or times of the directory above its own: %v", err)
		}
	})
}

// FuzzReaderPayload reaches past the digests FuzzReader cannot forge: the
// fuzzer supplies a payload's compressed stream and where to cut it, and the
// harness assembles a well-formed bundle around it (specAssemble), as a
// hostile or buggy signer could. Reading must not panic or hang, every error
// must be a *bundle.Error, and a stream that decodes to the stated content
// must read back exactly.
func FuzzReaderPayload(f *testing.F) {
	content := specRandom(3000, 7)
	f.Add(specCompress(f, content, 2), uint16(100), uint16(2000), true)
	f.Add(specCompress(f, bytes.Repeat([]byte("ferry "), 5000), 1), uint16(0), uint16(10), true)
	f.Add(specCompress(f, nil, 1), uint16(0), uint16(0), true)
	f.Add(specCompress(f, content, 1), uint16(5), uint16(6), false)
	// Skippable frame, then an RLE block of 128 KiB.
	f.Add([]byte{0x50, 0x2a, 0x4d, 0x18, 1, 0, 0, 0, 0, 0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38, 0x03, 0x00, 0x10, 'z'}, uint16(3), uint16(12), true)
	const maxContent = 1 << 20
	f.Fuzz(func(t *testing.T, stream []byte, cut1, cut2 uint16, exact bool) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		size, want := int64(cut1)*int64(cut2), digest.FromBytes(stream)
		var decoded []byte
		if exact {
			dec, err := zstd.NewReader(bytes.NewReader(stream))
			if err != nil {
				t.Fatal(err)
			}
			decoded, err = io.ReadAll(io.LimitReader(dec, maxContent+1))
			dec.Close()
			if err != nil || len(decoded) > maxContent {
				decoded, exact = nil, false
			} else {
				size, want = int64(len(decoded)), digest.FromBytes(decoded)
			}
		}
		cfg := bundle.Config{
			FormatVersion: 1, Name: "fuzz", Version: "1.0.0", DeviceTypes: []string{"x"}, Created: specCreated,
			Payloads: []bundle.Payload{{Name: "p", Type: bundle.Module, Target: "m", Size: size, Digest: want, Compression: "zstd"}},
		}
		raw := specAssemble(t, cfg, map[string][][]byte{"p": specCut(stream, int(cut1), int(cut2))}, nil, false)
		_, got, err := specRead(raw, false)
		runtime.ReadMemStats(&after)
		if d := after.TotalAlloc - before.TotalAlloc; d > zstd.MaxWindow+16<<20+uint64(len(stream))*8 {
			t.Fatalf("reading a %d-byte stream allocated %d MiB", len(stream), d>>20)
		}
		if err != nil {
			var be *bundle.Error
			if !errors.As(err, &be) {
				t.Fatalf("error %q (%T) is not a *bundle.Error", err, err)
			}
			if exact {
				t.Fatalf("stream that decodes to its stated content refused: %v", err)
			}
			return
		}
		if int64(len(got["p"])) != size || digest.FromBytes(got["p"]) != want {
			t.Fatalf("read %d bytes without error, config says %d %s", len(got["p"]), size, want)
		}
	})
}

// FuzzParseAgeHeader: a header ferry parses is one age parses the same
// way (re-marshalled byte for byte), and one age parses whole (within its
// limits) ferry parses too; neither ever panics.
func FuzzParseAgeHeader(f *testing.F) {
	id, _ := age.GenerateX25519Identity()
	h, _, _ := bundle.NewAgeHeader([]age.Recipient{id.Recipient(), id.Recipient()})
	f.Add(h)
	f.Add([]byte("age-encryption.org/v1\n-> X25519 abc\n\n--- " + strings.Repeat("A", 43) + "\n"))
	f.Add([]byte("age-encryption.org/v1\n-> a\n" + strings.Repeat("A", 64) + "\n\n--- x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ours, err := bundle.ParseAgeHeader(b)
		theirs, aerr := age.ExtractHeader(bytes.NewReader(b))
		agesWhole := aerr == nil && len(theirs) == len(b)
		if err == nil {
			if aerr != nil || !bytes.Equal(theirs, b) {
				t.Fatalf("ferry parses a header (%d stanzas) that age reads otherwise: %v", ours.Recipients(), aerr)
			}
		} else if agesWhole {
			t.Fatalf("age parses a header that ferry refuses: %v", err)
		}
	})
}
