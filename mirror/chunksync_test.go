package mirror_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/mirror/server"
	"github.com/ferry-update/ferry/registry"
)

// counting counts the bytes of blob responses.
type counting struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c counting) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n.Add(int64(n))
	return n, err
}

// chunkedPair makes two chunked bundles of gateway whose content differs
// in a few scattered places, so that most packs of 2.0.0 hold one new
// chunk and many old ones.
func chunkedPair(t *testing.T) (v1, v2 string) {
	t.Helper()
	key := testutil.NewKey(t, "release")
	c1 := make([]byte, 24<<20)
	_, _ = rand.NewChaCha8([32]byte{7}).Read(c1)
	c2 := bytes.Clone(c1)
	for off := 1 << 20; off < len(c2); off += 3 << 20 {
		copy(c2[off:], bytes.Repeat([]byte("2.0.0"), 1000))
	}
	paths := chunkedBundles(t, key, c1, c2)
	return paths[0], paths[1]
}

// chunkedBundles makes chunked bundles of gateway, versions 1.0.0, 2.0.0
// ... in the order of contents, signed with key.
func chunkedBundles(t *testing.T, key testutil.Key, contents ...[]byte) []string {
	t.Helper()
	var paths []string
	for i, content := range contents {
		p, _ := testutil.MakeChunkedBundle(t, t.TempDir(), "gateway", fmt.Sprintf("%d.0.0", i+1), content, key)
		paths = append(paths, p)
	}
	return paths
}

// TestSyncChunkLevel syncs 2.0.0 into a mirror that holds 1.0.0, from
// ferry mirror serve and from a real docker-registry (bundle/FORMAT.md
// §15.8): the new packs are rebuilt from the chunks the mirror holds and
// the new chunks' frames fetched by range, byte-identical to the signed
// packs (every blob is checked against its digest, and the store
// verifies), moving a fraction of the packs' bytes. A held pack that no
// longer matches makes its rebuilt pack fail its digest: that pack is
// then fetched whole, and the sync still succeeds.
func TestSyncChunkLevel(t *testing.T) {
	v1, v2 := chunkedPair(t)
	old, err := bundle.OpenArchive(v1)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	nw, err := bundle.OpenArchive(v2)
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	diffs, err := bundle.DiffBundles(old, nw)
	if err != nil {
		t.Fatal(err)
	}
	d := diffs[0]
	if d.SharedParts*2 > d.Parts {
		t.Fatalf("the pair shares %d of %d packs: want scattered changes", d.SharedParts, d.Parts)
	}
	for _, source := range []string{"mirror", "registry", "damaged"} {
		t.Run(source, func(t *testing.T) {
			var served atomic.Int64
			var upstream http.Handler
			switch source {
			case "registry":
				host := testutil.StartRegistry(t)
				for _, p := range []string{v1, v2} {
					if _, err := registry.Push(t.Context(), p, "oci://"+host+"/gateway", registry.Options{PlainHTTP: true}); err != nil {
						t.Fatal(err)
					}
				}
				upstream = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { testutil.Forward(w, r, host) })
			default:
				up := newStore(t)
				for _, p := range []string{v1, v2} {
					if _, err := up.Add(p); err != nil {
						t.Fatal(err)
					}
				}
				upstream = server.NewHandler(up, server.HandlerOptions{})
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.Contains(r.URL.Path, "/blobs/") {
					w = counting{w, &served}
				}
				upstream.ServeHTTP(w, r)
			}))
			t.Cleanup(srv.Close)

			dst := newStore(t)
			if _, err := dst.Add(v1); err != nil {
				t.Fatal(err)
			}
			damaged := ""
			if source == "damaged" {
				// Flip a byte of a held pack that a new pack reuses
				// chunks of: the first shared chunk's pack.
				damaged = heldPack(t, old, nw, dst)
			}
			from := "oci://" + strings.TrimPrefix(srv.URL, "http://") + "/gateway:2.0.0"
			res, err := dst.Sync(t.Context(), from, mirror.SyncOptions{Registry: registry.Options{PlainHTTP: true}})
			if err != nil || len(res.Bundles) != 1 {
				t.Fatalf("sync: %v %+v", err, res)
			}
			r := res.Bundles[0]
			t.Logf("%s: %d bytes fetched (%d served), %d reused; whole new packs: %d bytes", source, r.BytesFetched, served.Load(), r.BytesReused, d.NewPartBytes)
			if source == "damaged" && r.BytesReused >= d.NewPartBytes-d.NewCompressedBytes {
				t.Errorf("%d bytes reused: the pack rebuilt from the damaged one counts too", r.BytesReused)
			}
			if r.BytesReused == 0 || r.BytesFetched == 0 {
				t.Fatalf("nothing rebuilt from chunks: %+v", r)
			}
			if source != "damaged" && (r.BytesFetched > d.NewPartBytes/3 || r.BytesFetched < d.NewCompressedBytes) {
				t.Errorf("fetched %d bytes: want the new chunks' %d, far below the new packs' %d", r.BytesFetched, d.NewCompressedBytes, d.NewPartBytes)
			}
			if source == "damaged" && r.BytesFetched <= d.NewCompressedBytes {
				t.Errorf("fetched %d bytes: the pack rebuilt from the damaged one was not fetched whole", r.BytesFetched)
			}
			// Every blob of 2.0.0 is there, as signed.
			for _, l := range nw.Manifest().Layers {
				got, err := os.ReadFile(dst.BlobPath(l.Digest))
				if err != nil || digest.FromBytes(got) != l.Digest {
					t.Fatalf("blob %s: %v", l.Digest, err)
				}
			}
			if damaged != "" {
				if _, err := os.Stat(filepath.Join(dst.Dir(), "tmp")); err == nil {
					if left, _ := os.ReadDir(filepath.Join(dst.Dir(), "tmp")); len(left) > 0 {
						t.Errorf("partial files left: %v", left)
					}
				}
			}
		})
	}
}

// heldPack damages, in dst, the pack of 1.0.0 that holds the first chunk
// 2.0.0 shares with it in a pack that 1.0.0 does not have, and returns
// its digest.
func heldPack(t *testing.T, old, nw *bundle.Archive, dst *mirror.Store) string {
	t.Helper()
	oix, olocs, err := bundle.ChunkIndexOf(old, "rootfs")
	if err != nil {
		t.Fatal(err)
	}
	nix, nlocs, err := bundle.ChunkIndexOf(nw, "rootfs")
	if err != nil {
		t.Fatal(err)
	}
	oparts := bundle.PayloadLayers(old.Config(), old.Manifest(), 0)
	nparts := bundle.PayloadLayers(nw.Config(), nw.Manifest(), 0)
	have := map[digest.Digest]bool{}
	for _, l := range oparts {
		have[l.Digest] = true
	}
	where := map[bundle.ChunkID]int{}
	for i, c := range oix.Chunks {
		where[c.ID] = i
	}
	for i, c := range nix.Chunks {
		j, ok := where[c.ID]
		if !ok || have[nparts[nlocs[i].Part].Digest] {
			continue
		}
		part := oparts[olocs[j].Part]
		p := dst.BlobPath(part.Digest)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[olocs[j].PartOffset] ^= 0xff
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return part.Digest.String()
	}
	t.Fatal("no chunk of 1.0.0 is reused in a new pack")
	return ""
}
