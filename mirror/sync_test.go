package mirror_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/transport"
)

// TestSyncFromLayout: Sync reads a layout through transport.Open, so
// another mirror directory and a mounted stick (a directory holding
// ferry/, a copy of a mirror layout without keys and TUF) give their
// bundles, moving only the blobs the store lacks; a damaged bundle fails
// while the others sync. (Before transport.Source, a directory was only
// walked for bundle files, and a layout's blobs were each skipped as
// "not a ferry bundle".)
func TestSyncFromLayout(t *testing.T) {
	ctx := t.Context()
	src := newStore(t)
	dir := t.TempDir()
	for i, v := range []string{"1.0.0", "1.1.0"} {
		p, _ := testutil.MakeBundle(t, dir, "gateway", v, 4000+1000*i, 0, testutil.NewKey(t, "release"))
		if _, err := src.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	dst := newStore(t)
	res, err := dst.Sync(ctx, src.Dir(), mirror.SyncOptions{})
	if err != nil || len(res.Bundles) != 2 || !res.Bundles[0].New || res.Bundles[0].Entry.Signatures != 1 || len(res.Skipped) != 0 {
		t.Fatalf("sync from a mirror directory: %v %+v", err, res)
	}
	again, err := dst.Sync(ctx, src.Dir(), mirror.SyncOptions{})
	if err != nil || len(again.Bundles) != 2 || again.Bundles[1].New || again.Bundles[1].BlobsAdded != 0 {
		t.Fatalf("second sync: %v %+v", err, again)
	}

	stick := t.TempDir()
	copyLayout(t, src.Dir(), filepath.Join(stick, "ferry"))
	// Damage a payload blob of 1.1.0 on the stick.
	es, err := src.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.Version != "1.1.0" {
			continue
		}
		m, err := src.ReadBlob(e.Digest, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		i := strings.Index(string(m), `"layers"`)
		layer := string(m[i:])
		i = strings.Index(layer, "sha256:")
		blob := filepath.Join(stick, "ferry", "blobs", "sha256", layer[i+7:i+7+64])
		b, _ := os.ReadFile(blob)
		b[len(b)/2] ^= 0xff
		os.WriteFile(blob, b, 0o644)
	}
	fresh := newStore(t)
	res, err = fresh.Sync(ctx, stick, mirror.SyncOptions{})
	var se *mirror.SyncError
	if !errors.As(err, &se) || len(res.Bundles) != 1 || res.Bundles[0].Entry.Version != "1.0.0" || len(res.Failed) != 1 || !strings.Contains(res.Failed[0].Source, "gateway:1.1.0") {
		t.Fatalf("sync from a mounted stick with a damaged bundle: %v %+v", err, res)
	}
	if k, _ := transport.Classify(stick, transport.Options{}); k != transport.KindStick {
		t.Errorf("a mounted stick is a %s", k)
	}
}

// copyLayout copies what a stick holds of a mirror layout: oci-layout,
// index.json, the marker and the blobs.
func copyLayout(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			if rel == "keys" || rel == "tuf" || rel == "tmp" || rel == "roots" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		if !d.Type().IsRegular() || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSyncChunkedMovesNewPacks: a mirror holding 1.0.0 of a chunked
// bundle (FORMAT.md §15) syncs 2.0.0 by moving only the packs (parts)
// that changed, not the whole payload.
func TestSyncChunkedMovesNewPacks(t *testing.T) {
	ctx := t.Context()
	key := testutil.NewKey(t, "release")
	v1 := make([]byte, 32<<20)
	_, _ = rand.NewChaCha8([32]byte{9}).Read(v1)
	v2 := bytes.Clone(v1)
	copy(v2[20<<20:], bytes.Repeat([]byte("2.0.0"), 4000))
	src, dst := newStore(t), newStore(t)
	paths := chunkedBundles(t, key, v1, v2)
	for _, p := range paths {
		if _, err := src.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := dst.Add(paths[0]); err != nil {
		t.Fatal(err)
	}
	res, err := dst.Sync(ctx, src.Dir(), mirror.SyncOptions{})
	if err != nil || len(res.Bundles) != 2 || !res.Bundles[1].New {
		t.Fatalf("sync: %v %+v", err, res)
	}
	a, err := bundle.OpenArchive(paths[1])
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	// Six blobs of the head are new (manifest, config, the signature
	// manifest, config and payload, the chunk index); of the five parts
	// only the packs around the change are.
	parts := len(a.Manifest().Layers) - 1
	if moved := res.Bundles[1].BlobsAdded; parts < 4 || moved < 6+1 || moved > 6+2 {
		t.Errorf("2.0.0 moved %d blobs for %d parts: want the head's 6 and the one or two changed packs", moved, parts)
	}
}
