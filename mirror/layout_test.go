package mirror_test

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/layout"
	"github.com/ferry-update/ferry/mirror"
)

// TestLayoutFilesMatchesStore: the files LayoutFiles returns, with the
// payload layers beside them, are exactly what Store.Add writes for the
// same bundles, so a layout written elsewhere (a USB stick) is a store.
func TestLayoutFilesMatchesStore(t *testing.T) {
	dir := t.TempDir()
	rel, qa := testutil.NewKey(t, "release"), testutil.NewKey(t, "qa")
	b1, _ := testutil.MakeBundle(t, dir, "gateway", "1.0.0", 3000, 1024, rel)
	b2, _ := testutil.MakeBundle(t, dir, "gateway", "1.1.0+build.2", 2000, 0, rel, qa)
	b3, _ := testutil.MakeBundle(t, dir, "sensor", "2.0.0", 1000, 0)

	st := newStore(t)
	var lbs []layout.Bundle
	for _, p := range []string{b1, b2, b3} {
		if _, err := st.Add(p); err != nil {
			t.Fatal(err)
		}
		a, err := bundle.OpenArchive(p)
		if err != nil {
			t.Fatal(err)
		}
		lbs = append(lbs, layout.Bundle{Manifest: a.RawManifest(), Config: a.RawConfig(), Signatures: a.Signatures()})
		out := filepath.Join(dir, "layout")
		for _, l := range a.Manifest().Layers {
			r, _, err := a.Blob(l.Digest)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(out, "blobs", "sha256", l.Digest.Encoded()), r)
		}
		a.Close()
	}
	files, err := layout.Files(lbs)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "layout")
	for name, data := range files {
		writeFile(t, filepath.Join(out, filepath.FromSlash(name)), bytes.NewReader(data))
	}

	want := treeOf(t, st.Dir())
	got := treeOf(t, out)
	for name, data := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("%s: missing from the layout", name)
		} else if !bytes.Equal(g, data) {
			t.Errorf("%s differs:\n got %s\nwant %s", name, g, data)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: in the layout, not in the store", name)
		}
	}

	lst, err := mirror.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := lst.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 || entries[1].Version != "1.1.0+build.2" || entries[1].Signatures != 2 {
		t.Errorf("List of the layout: %+v", entries)
	}

	// The same bundle twice is one entry; another bundle under a name and
	// version already used is a conflict.
	if _, err := layout.Files(append(lbs, lbs[0])); err != nil {
		t.Errorf("same bundle twice: %v", err)
	}
	clash, _ := testutil.MakeBundle(t, t.TempDir(), "gateway", "1.0.0", 10, 0)
	a, err := bundle.OpenArchive(clash)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	_, err = layout.Files(append(lbs, layout.Bundle{Manifest: a.RawManifest(), Config: a.RawConfig()}))
	var ce *layout.ConflictError
	if !errors.As(err, &ce) {
		t.Errorf("conflicting versions: %v, want a *ConflictError", err)
	}
}

func writeFile(t *testing.T, path string, r io.Reader) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, r); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// treeOf reads the layout files of dir: everything but the store's keys,
// lock, scratch space and TUF metadata (a stick has none: offline installs
// cannot prove freshness).
func treeOf(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if rel == ".lock" || filepath.Dir(rel) == "keys" || filepath.Dir(rel) == "tmp" || filepath.Dir(rel) == "tuf" {
			return nil
		}
		b, err := os.ReadFile(p)
		out[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
