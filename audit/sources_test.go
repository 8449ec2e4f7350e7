package audit_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/audit"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/verify"
)

// TestAttachedRootIsNoSBOM: a trust root attached to a bundle (the root
// that introduces its keys) is reported as a trust root with its
// version, not counted as an SBOM (the summary counted it as one, and
// the text listed it as an "sbom" that is "not an SBOM").
func TestAttachedRootIsNoSBOM(t *testing.T) {
	rootKey, rel := testutil.NewKey(t, "root"), testutil.NewKey(t, "rel")
	root := makeRoot(t, rootKey, []testutil.Key{rel}, 1, nil, now.Add(year))
	dir := t.TempDir()
	for _, tc := range []struct {
		sbom          bool
		sboms, attach int
	}{{false, 0, 1}, {true, 1, 2}} {
		path := makeBundle(t, dir, bundleSpec{name: "os", version: map[bool]string{false: "1.0.0", true: "1.1.0"}[tc.sbom], signers: []testutil.Key{rel}, sbom: tc.sbom, roots: []*verify.Root{root}})
		rep := run(t, path, audit.Options{Root: root}, audit.SourceOptions{})
		b := rep.Bundles[0]
		if b.SBOMs != tc.sboms || len(b.Attachments) != tc.attach {
			t.Errorf("sbom %v: %d SBOM(s) in %d attachment(s), want %d in %d", tc.sbom, b.SBOMs, len(b.Attachments), tc.sboms, tc.attach)
		}
		at := b.Attachments[len(b.Attachments)-1]
		if at.Kind != audit.AttachmentTrustRoot || at.RootVersion != 1 || at.SBOM != nil {
			t.Errorf("the attached root: %+v", at)
		}
		var text strings.Builder
		must(t, rep.WriteText(&text))
		if !strings.Contains(text.String(), "  trust root  1.root.json application/vnd.ferry.trust.root.v1+json, version 1, ") || strings.Contains(text.String(), "sbom        1.root.json") {
			t.Errorf("text report:\n%s", text.String())
		}
		var html strings.Builder
		must(t, rep.WriteHTML(&html))
		if !strings.Contains(html.String(), "<td>"+map[bool]string{false: "0", true: "1"}[tc.sbom]+"</td>\n<td><code>") {
			t.Errorf("HTML summary does not count %d SBOM(s)", tc.sboms)
		}
	}
}

// TestAuditSourcesReproducible: the report names what it audited as a
// reviewer elsewhere can find it again: absolute paths (the target, each
// bundle, the mirror root it checked against) and references that carry
// the manifest digest (a tag can move). The registry case is in
// registry_test.go.
func TestAuditSourcesReproducible(t *testing.T) {
	rel := testutil.NewKey(t, "rel")
	dir := t.TempDir()
	path := makeBundle(t, dir, bundleSpec{name: "os", version: "1.0.0", signers: []testutil.Key{rel}})
	m, err := mirror.Init(filepath.Join(dir, "m"), testutil.MirrorKey(t))
	must(t, err)
	_, err = m.Add(path)
	must(t, err)
	t.Chdir(dir)
	o := audit.Options{Keys: []*verify.PublicKey{rel.Pub}, Threshold: 1}

	rep := run(t, "os-1.0.0.ferry", o, audit.SourceOptions{})
	if rep.Target != path || rep.Bundles[0].Source != path {
		t.Errorf("bundle file: target %q, source %q; want %q", rep.Target, rep.Bundles[0].Source, path)
	}
	rep = run(t, "m", o, audit.SourceOptions{MirrorRoot: "m/tuf/1.root.json"})
	want := filepath.Join(dir, "m", "os") + ":1.0.0@" + rep.Bundles[0].Manifest.String()
	if rep.Target != filepath.Join(dir, "m") || rep.Bundles[0].Source != want {
		t.Errorf("mirror: target %q, source %q; want %q", rep.Target, rep.Bundles[0].Source, want)
	}
	if rep.Mirror.Root != filepath.Join(dir, "m", "tuf", "1.root.json") {
		t.Errorf("mirror root %q is not absolute", rep.Mirror.Root)
	}
	rep = run(t, "m", o, audit.SourceOptions{})
	if !strings.HasPrefix(rep.Mirror.Root, filepath.Join(dir, "m", "tuf", "1.root.json")) {
		t.Errorf("mirror root (first use) %q is not absolute", rep.Mirror.Root)
	}
}
