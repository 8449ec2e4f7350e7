package audit_test

import (
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-update/ferry/audit"
	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/layout"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/mirror/server"
	"github.com/ferry-update/ferry/verify"
)

// testMirror makes a mirror directory holding gateway 1.0.0 (signed by
// rel, with an SBOM) and sensor 2.0.0 (signed by a stranger).
func testMirror(t *testing.T, rel testutil.Key) (*mirror.Store, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mirror")
	st, err := mirror.Init(dir, testutil.MirrorKey(t))
	must(t, err)
	bdir := t.TempDir()
	for _, p := range []string{
		makeBundle(t, bdir, bundleSpec{name: "gateway", version: "1.0.0", signers: []testutil.Key{rel}, sbom: true}),
		makeBundle(t, bdir, bundleSpec{name: "sensor", version: "2.0.0", signers: []testutil.Key{testutil.NewKey(t, "mallory")}}),
	} {
		if _, err := st.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	return st, dir
}

func checkMirrorReport(t *testing.T, rep *audit.Report, pinned bool) {
	t.Helper()
	if rep.Kind != audit.KindMirror || len(rep.Bundles) != 2 || rep.Passed != 1 || rep.OK() {
		t.Fatalf("mirror audit: %+v", rep.Bundles)
	}
	m := rep.Mirror
	if m == nil || !m.Present || !m.Verified || m.Pinned != pinned || m.Error != "" || m.RootVersion != 1 || m.TimestampExpires.IsZero() || m.TargetsExpires.IsZero() {
		t.Errorf("mirror metadata %+v", m)
	}
	g, s := rep.Bundles[0], rep.Bundles[1]
	if g.Name != "gateway" || g.Verdict != audit.Pass || g.Listed == nil || !*g.Listed || len(g.Attachments) != 1 || !g.Payloads[0].Verified {
		t.Errorf("gateway: %+v", g)
	}
	if s.Name != "sensor" || s.Verdict != audit.Fail || s.Listed == nil || !*s.Listed || !containsAny(s.Reasons, "0 valid signature(s)") {
		t.Errorf("sensor: %+v", s)
	}
}

// TestAuditMirrorDir reads a mirror directory through the mirror's own
// server and the device's client, in process, and checks its TUF metadata.
func TestAuditMirrorDir(t *testing.T) {
	rel := testutil.NewKey(t, "release@example.com")
	_, dir := testMirror(t, rel)
	o := audit.Options{Keys: []*verify.PublicKey{rel.Pub}, Now: time.Now()}
	checkMirrorReport(t, run(t, dir, o, audit.SourceOptions{}), false)

	// Frozen metadata (the mirror stopped re-signing, or it is replayed
	// after it expired) fails every bundle, as devices would refuse them.
	rep := run(t, dir, o, audit.SourceOptions{Now: time.Now().Add(3 * 365 * 24 * time.Hour)})
	if rep.Mirror == nil || rep.Mirror.Verified || !strings.Contains(rep.Mirror.Error, "expired") || rep.Passed != 0 || len(rep.Bundles) != 2 {
		t.Errorf("expired metadata: %+v %+v", rep.Mirror, rep.Bundles)
	}
	if !containsAny(rep.Bundles[0].Reasons, "expired") {
		t.Errorf("gateway with expired metadata: %q", rep.Bundles[0].Reasons)
	}

	// A damaged blob in the mirror fails the bundle and names the part.
	ents, err := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	must(t, err)
	damaged := 0
	for _, e := range ents {
		p := filepath.Join(dir, "blobs", "sha256", e.Name())
		info, _ := e.Info()
		if info.Size() == 8<<10 { // a full payload part of gateway or sensor
			raw, err := os.ReadFile(p)
			must(t, err)
			raw[100] ^= 0xff
			must(t, os.WriteFile(p, raw, 0o644))
			damaged++
		}
	}
	if damaged == 0 {
		t.Fatal("no payload part found to damage")
	}
	rep = run(t, dir, o, audit.SourceOptions{})
	if rep.Bundles[0].Verdict != audit.Fail || !containsAny(rep.Bundles[0].Reasons, "digest") {
		t.Errorf("damaged part: %+v", rep.Bundles[0])
	}
	t.Log(rep.Bundles[0].Reasons)
}

// TestAuditMirrorURL reads a served mirror over HTTP: the bundles are what
// its signed TUF targets list.
func TestAuditMirrorURL(t *testing.T) {
	rel := testutil.NewKey(t, "release@example.com")
	st, _ := testMirror(t, rel)
	srv := httptest.NewServer(server.NewHandler(st, server.HandlerOptions{}))
	defer srv.Close()
	o := audit.Options{Keys: []*verify.PublicKey{rel.Pub}, Now: time.Now()}
	checkMirrorReport(t, run(t, srv.URL, o, audit.SourceOptions{}), false)
	rep := run(t, srv.URL, o, audit.SourceOptions{MirrorRoot: st.TUFRootPath()})
	checkMirrorReport(t, rep, true)
	if !strings.HasPrefix(rep.Bundles[0].Source, "oci://"+strings.TrimPrefix(srv.URL, "http://")+"/gateway@sha256:") {
		t.Errorf("source %s", rep.Bundles[0].Source)
	}

	// Pinned to another mirror's root, the metadata does not verify and
	// nothing passes.
	other, _ := testMirror(t, rel)
	rep = run(t, srv.URL, o, audit.SourceOptions{MirrorRoot: other.TUFRootPath()})
	if rep.Mirror.Verified || rep.Mirror.Error == "" || len(rep.Bundles) != 0 || rep.OK() {
		t.Errorf("foreign root: %+v", rep.Mirror)
	}
}

// TestAuditStickDir audits a mounted stick: a directory whose ferry/ is a
// mirror layout (layout.Files, as ferry media build writes it) without
// TUF metadata.
func TestAuditStickDir(t *testing.T) {
	rel := testutil.NewKey(t, "release@example.com")
	mount := t.TempDir()
	layoutDir := filepath.Join(mount, "ferry")
	path := makeBundle(t, t.TempDir(), bundleSpec{name: "gateway", version: "1.0.0", signers: []testutil.Key{rel}, sbom: true})
	a, err := bundle.OpenArchive(path)
	must(t, err)
	defer a.Close()
	files, err := layout.Files([]layout.Bundle{{Manifest: a.RawManifest(), Config: a.RawConfig(), Signatures: a.Signatures()}})
	must(t, err)
	for _, l := range a.Manifest().Layers {
		r, _, err := a.Blob(l.Digest)
		must(t, err)
		b, err := io.ReadAll(r)
		must(t, err)
		files["blobs/sha256/"+l.Digest.Encoded()] = b
	}
	for name, data := range files {
		p := filepath.Join(layoutDir, filepath.FromSlash(name))
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, data, 0o644))
	}
	rep := run(t, mount, audit.Options{Keys: []*verify.PublicKey{rel.Pub}}, audit.SourceOptions{})
	if rep.Kind != audit.KindStick || !rep.OK() || len(rep.Bundles) != 1 || rep.Mirror == nil || rep.Mirror.Present || rep.Bundles[0].Listed != nil {
		t.Fatalf("stick audit: %+v %+v", rep.Mirror, rep.Bundles)
	}
	if len(rep.Bundles[0].Attachments) != 1 {
		t.Errorf("the SBOM did not come along: %+v", rep.Bundles[0])
	}
}
