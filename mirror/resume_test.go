package mirror_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/testutil"
)

// TestAddResumesPartialBlobs: an add killed while it wrote a blob leaves
// DIR/tmp/<alg>-<hex>.partial; the next add continues it, whatever the
// offset and whether the blob is a payload layer or a small one (config,
// manifest) written from memory.
func TestAddResumesPartialBlobs(t *testing.T) {
	alice := testutil.NewKey(t, "alice")
	path, _ := testutil.MakeBundle(t, t.TempDir(), "gateway", "1.0.0", 40<<10, 0, alice)
	a, err := bundle.OpenArchive(path)
	if err != nil {
		t.Fatal(err)
	}
	blobs := map[string][]byte{"config": a.RawConfig(), "manifest": a.RawManifest()}
	r, _, err := a.Blob(a.Manifest().Layers[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if blobs["layer"], err = io.ReadAll(r); err != nil {
		t.Fatal(err)
	}
	a.Close()

	for what, b := range blobs {
		for _, off := range []int{1, len(b) / 2, len(b) - 1, len(b)} {
			t.Run(fmt.Sprintf("%s cut at %d of %d", what, off, len(b)), func(t *testing.T) {
				s := newStore(t)
				d := digest.FromBytes(b)
				partial := filepath.Join(s.Dir(), "tmp", "sha256-"+d.Encoded()+".partial")
				if err := os.WriteFile(partial, b[:off], 0o644); err != nil {
					t.Fatal(err)
				}
				if _, err := s.Add(path); err != nil {
					t.Fatalf("add after an interrupted write: %v", err)
				}
				got, err := os.ReadFile(filepath.Join(s.Dir(), "blobs", "sha256", d.Encoded()))
				if err != nil || !bytes.Equal(got, b) {
					t.Errorf("stored blob: %d bytes, %v; want the %d of the original", len(got), err, len(b))
				}
				if _, err := os.Stat(partial); !os.IsNotExist(err) {
					t.Errorf("partial file left behind: %v", err)
				}
			})
		}
	}
}
