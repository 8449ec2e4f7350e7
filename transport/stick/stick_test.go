package stick

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/depcheck"
	"github.com/ferry-update/ferry/internal/verifyio"
	"github.com/ferry-update/ferry/transport/wire"
	"github.com/ferry-update/ferry/verify"
)

// testStick lays out a stick directory by hand (as the OCI layout spec
// and a mirror store have it): two versions of one bundle for board-a and
// one for board-b, signed by key.
func testStick(t *testing.T) (root string, key *verify.Signer) {
	t.Helper()
	k, err := verify.GenerateKey(verify.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	key, err = verify.NewSigner(k, "release")
	if err != nil {
		t.Fatal(err)
	}
	root = t.TempDir()
	dir := t.TempDir()
	var entries []ocispec.Descriptor
	blobs := filepath.Join(root, Dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	put := func(b []byte) digest.Digest {
		d := digest.FromBytes(b)
		if err := os.WriteFile(filepath.Join(blobs, d.Encoded()), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	for i, bc := range []struct{ name, version, dt string }{{"gw", "1.0.0", "board-a"}, {"gw", "1.2.0", "board-a"}, {"sensor", "3.0.0", "board-b"}} {
		p := filepath.Join(dir, fmt.Sprintf("%d.ferry", i))
		content := make([]byte, 5000+i)
		rand.NewChaCha8([32]byte{byte(i)}).Read(content)
		_, err := bundle.Create(p, bundle.Options{Name: bc.name, Version: bc.version, DeviceTypes: []string{bc.dt}, PartSize: 2048,
			Created: time.Unix(1700000000, 0),
			Sign: func(d digest.Digest) ([]bundle.Signature, error) {
				s, err := key.Sign(d, bc.name, time.Unix(1700000000, 0))
				return []bundle.Signature{s}, err
			}}, bundle.Source{Name: "rootfs", Type: bundle.Rootfs, Content: bytes.NewReader(content)})
		if err != nil {
			t.Fatal(err)
		}
		a, err := bundle.OpenArchive(p)
		if err != nil {
			t.Fatal(err)
		}
		put(a.RawConfig())
		md := put(a.RawManifest())
		for _, l := range a.Manifest().Layers {
			r, _, _ := a.Blob(l.Digest)
			b, _ := io.ReadAll(r)
			put(b)
		}
		sa, err := bundle.NewSignatureArtifact(a.Signatures())
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range sa.Blobs {
			put(b)
		}
		sd := put(sa.Manifest)
		a.Close()
		entries = append(entries,
			ocispec.Descriptor{MediaType: bundle.ManifestMediaType, ArtifactType: bundle.ArtifactType, Digest: md, Size: int64(len(a.RawManifest())),
				Annotations: map[string]string{ocispec.AnnotationRefName: bc.name + ":" + bc.version, repositoryAnnotation: bc.name, bundleNameAnnotation: bc.name, bundleVersionAnnotation: bc.version}},
			ocispec.Descriptor{MediaType: bundle.ManifestMediaType, Digest: sd, Size: int64(len(sa.Manifest)),
				Annotations: map[string]string{ocispec.AnnotationRefName: bc.name + ":" + bundle.SignatureTag(md)}})
	}
	idx, _ := json.Marshal(ocispec.Index{Manifests: entries})
	os.WriteFile(filepath.Join(root, Dir, "index.json"), idx, 0o644)
	os.WriteFile(filepath.Join(root, Dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	return root, key
}

func policy(key *verify.Signer, deviceType string) verify.Policy {
	return verify.Policy{Keys: []*verify.PublicKey{key.PublicKey()}, Threshold: 1, DeviceType: deviceType, Deep: true}
}

func TestBundlesOpenVerify(t *testing.T) {
	root, key := testStick(t)
	s, err := OpenDir(root)
	if err != nil {
		t.Fatal(err)
	}
	bs, err := s.Bundles()
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 3 || bs[0].Version != "1.0.0" || bs[1].Version != "1.2.0" || bs[2].Name != "sensor" {
		t.Fatalf("bundles: %+v", bs)
	}
	best, ok := Best(bs, "board-a")
	if !ok || best.Version != "1.2.0" || len(best.Signatures) != 1 || best.Size == 0 {
		t.Fatalf("best for board-a: %+v", best)
	}
	if _, ok := Best(bs, "board-z"); ok {
		t.Error("a bundle for board-z")
	}
	rc, err := s.Open(best)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := verify.Bundle(rc, policy(key, "board-a"))
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	if rep.Manifest != best.Manifest || !rep.Payloads[0].Verified {
		t.Errorf("report %+v", rep)
	}
	// Closing early stops the stream and returns.
	rc, _ = s.Open(best)
	rc.Read(make([]byte, 10))
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
}

// faultFS serves a directory, but reading a file whose name contains
// match fails with err after n bytes (err io.EOF: the file is cut short).
type faultFS struct {
	fs.FS
	match string
	n     int
	err   error
}

func (f faultFS) Open(name string) (fs.File, error) {
	fl, err := f.FS.Open(name)
	if err != nil || !strings.Contains(name, f.match) {
		return fl, err
	}
	return &faultFile{File: fl, left: f.n, err: f.err}, nil
}

type faultFile struct {
	fs.File
	left int
	err  error
}

func (f *faultFile) Read(b []byte) (int, error) {
	if f.left <= 0 {
		return 0, f.err
	}
	if len(b) > f.left {
		b = b[:f.left]
	}
	n, err := f.File.Read(b)
	f.left -= n
	return n, err
}

// TestPulledOut: a stick that goes away mid-read (I/O errors, or files
// that end early) gives a stream that ends in an error, not a clean EOF.
func TestPulledOut(t *testing.T) {
	root, key := testStick(t)
	s, err := OpenDir(root)
	if err != nil {
		t.Fatal(err)
	}
	bs, _ := s.Bundles()
	b, _ := Best(bs, "board-a")
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"EIO", &fs.PathError{Op: "read", Path: "x", Err: syscall.EIO}, "was the stick removed?"},
		{"ENODEV", syscall.ENODEV, "was the stick removed?"},
		{"truncated", io.EOF, "data ends before the signed size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The second part of the payload fails after 100 bytes.
			m, err := readManifest(s.Layout, b)
			if err != nil {
				t.Fatal(err)
			}
			l := &Layout{fsys: faultFS{FS: os.DirFS(filepath.Join(root, Dir)), match: m.Layers[1].Digest.Encoded(), n: 100, err: tc.err}, name: root}
			bs, err := l.Bundles()
			if err != nil {
				t.Fatal(err)
			}
			b, _ := Best(bs, "board-a")
			rc, err := l.Open(b)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			_, err = io.Copy(io.Discard, rc)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "gw 1.2.0") {
				t.Errorf("stream error %v, want %q", err, tc.want)
			}
			// And the agent's verifier refuses it.
			rc2, _ := l.Open(b)
			defer rc2.Close()
			if _, err := verify.Bundle(rc2, policy(key, "board-a")); err == nil {
				t.Error("verified a stream from a stick that was pulled out")
			}
		})
	}
}

func readManifest(l *Layout, b Bundle) (*ocispec.Manifest, error) {
	var m ocispec.Manifest
	return &m, json.Unmarshal(b.manifest, &m)
}

// TestTampered: changed blobs on a stick are refused: a payload part by
// its digest while it streams, a manifest or config when listed, and a
// bundle signed by a key the device does not trust by the signature check.
func TestTampered(t *testing.T) {
	for _, what := range []string{"payload", "manifest", "config", "untrusted"} {
		t.Run(what, func(t *testing.T) {
			root, key := testStick(t)
			s, _ := OpenDir(root)
			bs, _ := s.Bundles()
			b, _ := Best(bs, "board-a")
			m, _ := readManifest(s.Layout, b)
			flip := func(d digest.Digest) {
				p := filepath.Join(root, Dir, "blobs", "sha256", d.Encoded())
				data, _ := os.ReadFile(p)
				data[len(data)/2] ^= 1
				os.WriteFile(p, data, 0o644)
			}
			switch what {
			case "payload":
				flip(m.Layers[1].Digest)
				rc, _ := s.Open(b)
				defer rc.Close()
				_, err := verify.Bundle(rc, policy(key, "board-a"))
				var de *verifyio.DigestError
				if !errors.As(err, &de) {
					t.Errorf("tampered payload: %v, want a digest error", err)
				}
				return
			case "untrusted":
				k, _ := verify.GenerateKey(verify.ECDSAP256)
				other, _ := verify.NewSigner(k, "other")
				rc, _ := s.Open(b)
				defer rc.Close()
				_, err := verify.Bundle(rc, policy(other, "board-a"))
				var te *verify.ThresholdError
				if !errors.As(err, &te) {
					t.Errorf("a bundle signed by an untrusted key: %v", err)
				}
				return
			case "manifest":
				flip(b.Manifest)
			case "config":
				flip(m.Config.Digest)
			}
			bs, err := s.Bundles()
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := Best(bs, "board-a"); b.Version == "1.2.0" {
				t.Fatalf("damaged %s not noticed: %+v", what, b)
			}
			for _, x := range bs {
				if x.Version == "1.2.0" && (x.Err == nil || !strings.Contains(x.Err.Error(), "digest mismatch")) {
					t.Errorf("listed with %v", x.Err)
				}
				if x.Err != nil {
					if _, err := s.Open(x); err == nil {
						t.Error("opened an unreadable bundle")
					}
				}
			}
		})
	}
}

func TestNotAStick(t *testing.T) {
	if _, err := OpenDir(t.TempDir()); !errors.Is(err, ErrNotLayout) {
		t.Errorf("empty dir: %v", err)
	}
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, Dir), 0o755)
	os.WriteFile(filepath.Join(root, Dir, "oci-layout"), []byte(`{"imageLayoutVersion":"9"}`), 0o644)
	if _, err := OpenDir(root); err == nil {
		t.Error("opened a layout of version 9")
	}
	os.WriteFile(filepath.Join(root, Dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	s, err := OpenDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Bundles(); err == nil {
		t.Error("listed a layout without index.json")
	}
}

func TestFind(t *testing.T) {
	root, _ := testStick(t)
	empty := t.TempDir()
	if s, err := Find([]string{empty, root}, ""); err != nil || s.Root != root {
		t.Fatalf("by mount point: %v", err)
	}
	if _, err := Find([]string{empty}, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("no stick: %v", err)
	}

	// By label: /dev/disk/by-label/FERRY -> a device, which mountinfo has
	// mounted at root.
	devDir := t.TempDir()
	dev := filepath.Join(devDir, "sdb1")
	os.WriteFile(dev, nil, 0o644)
	byLabel := t.TempDir()
	os.Symlink(dev, filepath.Join(byLabel, "FERRY"))
	os.Symlink(dev, filepath.Join(byLabel, `MY\x20STICK`))
	mi := filepath.Join(t.TempDir(), "mountinfo")
	esc := strings.ReplaceAll(root, " ", `\040`)
	os.WriteFile(mi, []byte("22 1 8:2 / / rw - ext4 /dev/sda2 rw\n40 22 8:17 / "+esc+" rw,nosuid - vfat "+dev+" rw\n"), 0o644)
	f := finder{byLabel: byLabel, mountinfo: mi}
	for _, label := range []string{"FERRY", "MY STICK"} {
		s, err := f.find(nil, label)
		if err != nil || s.Root != root {
			t.Errorf("by label %q: %v", label, err)
		}
	}
	if _, err := f.find([]string{empty}, "OTHER"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `no filesystem labelled "OTHER"`) {
		t.Errorf("unknown label: %v", err)
	}
	os.WriteFile(mi, []byte("22 1 8:2 / / rw - ext4 /dev/sda2 rw\n"), 0o644)
	if _, err := f.find(nil, "FERRY"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "plugged in but not mounted") {
		t.Errorf("not mounted: %v", err)
	}
}

func TestWriteReport(t *testing.T) {
	root, _ := testStick(t)
	s, _ := OpenDir(root)
	fin := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	r := Report{DeviceID: "gw/0042 (lab)", Bundle: "gw", BundleVersion: "1.2.0", VersionBefore: "1.0.0", VersionAfter: "1.2.0", Result: ResultSuccess, Started: fin.Add(-time.Minute), Finished: fin}
	p1, err := s.WriteReport(r)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := s.WriteReport(r)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(p1) != "gw_0042_lab-20250102T030405.000Z.json" || filepath.Base(p2) != "gw_0042_lab-20250102T030405.000Z-2.json" {
		t.Errorf("report files %s, %s", p1, p2)
	}
	rs, err := s.Reports()
	if err != nil || len(rs) != 2 || rs[0].Report == nil || rs[0].Report.DeviceID != r.DeviceID || !rs[0].Report.Finished.Equal(fin) {
		t.Fatalf("reports: %v %+v", err, rs)
	}
	ents, _ := os.ReadDir(filepath.Join(root, Dir, ReportsDir))
	if len(ents) != 2 {
		t.Errorf("%d files in reports/, want 2 (no temporary files)", len(ents))
	}
	if _, err := s.WriteReport(Report{Result: ResultSuccess}); err == nil {
		t.Error("wrote a report without a device id")
	}
}

// failFS is the OS, except that one operation fails.
type failFS struct {
	osFS
	failAt string // "write", "sync", "close", "rename", "syncdir", "create"
	err    error
	temps  []string
}

func (f *failFS) CreateTemp(dir, pattern string) (tempFile, error) {
	if f.failAt == "create" {
		return nil, f.err
	}
	t, err := f.osFS.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	f.temps = append(f.temps, t.Name())
	return &failFile{tempFile: t, fs: f}, nil
}

func (f *failFS) Rename(a, b string) error {
	if f.failAt == "rename" {
		return f.err
	}
	return f.osFS.Rename(a, b)
}

func (f *failFS) SyncDir(d string) error {
	if f.failAt == "syncdir" {
		return f.err
	}
	return f.osFS.SyncDir(d)
}

type failFile struct {
	tempFile
	fs *failFS
}

func (f *failFile) Write(b []byte) (int, error) {
	if f.fs.failAt == "write" {
		n, _ := f.tempFile.Write(b[:len(b)/2])
		return n, f.fs.err
	}
	return f.tempFile.Write(b)
}

func (f *failFile) Sync() error {
	if f.fs.failAt == "sync" {
		return f.fs.err
	}
	return f.tempFile.Sync()
}

func (f *failFile) Close() error {
	err := f.tempFile.Close()
	if f.fs.failAt == "close" {
		return f.fs.err
	}
	return err
}

// TestReportStickFull: a stick that is full (or fails) while the report is
// written gives an error that says so, and leaves no partial report.
func TestReportStickFull(t *testing.T) {
	for _, at := range []string{"create", "write", "sync", "close", "rename", "syncdir"} {
		t.Run(at, func(t *testing.T) {
			root, _ := testStick(t)
			s, _ := OpenDir(root)
			ff := &failFS{failAt: at, err: &fs.PathError{Op: at, Path: "report", Err: syscall.ENOSPC}}
			s.fs = ff
			_, err := s.WriteReport(Report{DeviceID: "gw-1", Result: ResultFailure, Error: "boom"})
			if err == nil || !strings.Contains(err.Error(), "the stick is full") || !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("error %v", err)
			}
			ents, _ := os.ReadDir(filepath.Join(root, Dir, ReportsDir))
			if at != "syncdir" && len(ents) != 0 {
				t.Errorf("left %v", ents)
			}
			for _, tmp := range ff.temps {
				if _, err := os.Stat(tmp); err == nil {
					t.Errorf("left temporary file %s", tmp)
				}
			}
		})
	}
}

func TestParseReport(t *testing.T) {
	good := `{"deviceId":"gw-1","bundle":"gw","versionBefore":"1.0.0","versionAfter":"1.2.0","result":"success","started":"2025-01-02T03:04:05Z","finished":"2025-01-02T03:05:05Z","future":1}`
	r, err := ParseReport([]byte(good))
	if err != nil || r.DeviceID != "gw-1" || r.Result != ResultSuccess || r.Finished.Sub(r.Started) != time.Minute {
		t.Fatalf("%v %+v", err, r)
	}
	for _, bad := range []string{
		``, `[]`, `{}`, `{"deviceId":"x"}`, `{"deviceId":"x","result":"Success"}`, good + `{}`, good + `x`,
		`{"deviceId":"a\u0000b","result":"success"}`, `{"deviceId":"x","result":"success","started":"yesterday"}`,
		`{"deviceId":"` + strings.Repeat("x", 300) + `","result":"success"}`, `{"deviceId":1,"result":"success"}`,
	} {
		if _, err := ParseReport([]byte(bad)); err == nil {
			t.Errorf("parsed %q", bad)
		}
	}
	if _, err := ParseReport(bytes.Repeat([]byte(" "), MaxReportSize+1)); err == nil {
		t.Error("parsed an oversized report")
	}
}

func FuzzParseReport(f *testing.F) {
	f.Add([]byte(`{"deviceId":"gw-1","bundle":"gw","result":"success","started":"2025-01-02T03:04:05Z","finished":"2025-01-02T03:05:05.5+02:00","error":"x\ny"}`))
	f.Add([]byte(`{"deviceId":"d","result":"rolled-back","versionBefore":"1","versionAfter":"1"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseReport(b)
		if err != nil {
			return
		}
		// What parses, writes and parses again to the same report.
		out, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("marshal %+v: %v", r, err)
		}
		r2, err := ParseReport(out)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", out, err)
		}
		if !r.Started.Equal(r2.Started) || !r.Finished.Equal(r2.Finished) {
			t.Fatalf("times changed: %+v %+v", r, r2)
		}
		r2.Started, r2.Finished = r.Started, r.Finished
		if len(r.Offered) == 0 {
			r.Offered = nil // [] is written as nothing
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("round trip: %+v != %+v", r, r2)
		}
		if name := r.fileName(time.Now()); strings.ContainsAny(name, `/\:*?"<>|`) || len(name) > 100 {
			t.Fatalf("file name %q", name)
		}
	})
}

// TestDepcheck keeps transport/stick fit for the device agent: none of the
// host-side dependencies, built as on devices (no cgo).
func TestDepcheck(t *testing.T) {
	depcheck.Device(t, depcheck.Module+"/transport/stick")
}

// TestDeltaOnly reads the delta annotations of a bundle entry (FORMAT.md
// §15.7): the bases, whether parts are missing, Has, and an Open that
// names the missing part and the bases.
func TestDeltaOnly(t *testing.T) {
	root, _ := testStick(t)
	p := filepath.Join(root, Dir, "index.json")
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatal(err)
	}
	idx.Manifests[2].Annotations[wire.DeltaBasesAnnotation] = " 1.0.0, ,1.1.0"
	idx.Manifests[2].Annotations[wire.DeltaOnlyAnnotation] = "true"
	idx.Manifests[0].Annotations[wire.DeltaBasesAnnotation] = strings.Repeat("1,", 100)
	raw, _ = json.Marshal(idx)
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := OpenDir(root)
	if err != nil {
		t.Fatal(err)
	}
	bs, err := s.Bundles()
	if err != nil {
		t.Fatal(err)
	}
	gw, newer := bs[0], bs[1]
	if gw.DeltaOnly || len(gw.DeltaBases) != maxDeltaBases {
		t.Errorf("gw 1.0.0: bases %d, only %t", len(gw.DeltaBases), gw.DeltaOnly)
	}
	if !newer.DeltaOnly || strings.Join(newer.DeltaBases, "|") != "1.0.0|1.1.0" {
		t.Fatalf("gw 1.2.0: %q, only %t", newer.DeltaBases, newer.DeltaOnly)
	}
	if bs[2].DeltaBases != nil || bs[2].DeltaOnly {
		t.Errorf("sensor: %+v", bs[2])
	}
	part := newer.Layers()[len(newer.Layers())-1]
	if !s.Has(part) {
		t.Fatal("Has: the part is there")
	}
	if err := os.Remove(filepath.Join(root, Dir, "blobs", "sha256", part.Digest.Encoded())); err != nil {
		t.Fatal(err)
	}
	if s.Has(part) {
		t.Fatal("Has: the part was removed")
	}
	rc, err := s.Open(newer)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(io.Discard, rc)
	rc.Close()
	if err == nil || !strings.Contains(err.Error(), "is not on the stick: it carries this bundle as a delta for bases 1.0.0, 1.1.0 only") || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("open: %v", err)
	}
}

// FuzzDeltaAnnotations: whatever a stick's index says, the bases are at
// most maxDeltaBases trimmed, non-empty versions without commas.
func FuzzDeltaAnnotations(f *testing.F) {
	f.Add("1.0.0,1.1.0", "true")
	f.Add(" , ,", "")
	f.Add(strings.Repeat("x,", 200), "false")
	f.Fuzz(func(t *testing.T, bases, only string) {
		got, deltaOnly := deltaAnnotations(map[string]string{wire.DeltaBasesAnnotation: bases, wire.DeltaOnlyAnnotation: only})
		if len(got) > maxDeltaBases || deltaOnly != (only == "true") {
			t.Fatalf("%d bases, only %t", len(got), deltaOnly)
		}
		for _, b := range got {
			if b == "" || strings.Contains(b, ",") || strings.TrimSpace(b) != b {
				t.Fatalf("base %q", b)
			}
		}
	})
}
