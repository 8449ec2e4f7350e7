package mirror_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/layout"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/registry"
)

func newStore(t testing.TB) *mirror.Store {
	t.Helper()
	s, err := mirror.Init(filepath.Join(t.TempDir(), "mirror"), testutil.MirrorKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStoreAddList(t *testing.T) {
	s := newStore(t)
	dir := t.TempDir()
	alice, bob := testutil.NewKey(t, "alice"), testutil.NewKey(t, "bob")
	gw, d := testutil.MakeBundle(t, dir, "gateway", "1.4.2", 200<<10, 64<<10, alice)
	gw2, _ := testutil.MakeBundle(t, dir, "gateway", "1.10.0", 10<<10, 0, alice)
	sensor, _ := testutil.MakeBundle(t, dir, "sensor", "1.4.2", 10<<10, 0)

	res, err := s.Add(gw)
	if err != nil {
		t.Fatal(err)
	}
	if !res.New || res.BlobsAdded == 0 || res.SignaturesAdded != 1 || res.Digest != d || res.Repository != "gateway" || res.Tag != "1.4.2" {
		t.Errorf("add: %+v", res)
	}
	for _, p := range []string{gw2, sensor} {
		if _, err := s.Add(p); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("adding again moves nothing", func(t *testing.T) {
		res, err := s.Add(gw)
		if err != nil {
			t.Fatal(err)
		}
		if res.New || res.BlobsAdded != 0 || res.SignaturesAdded != 0 {
			t.Errorf("second add: %+v", res)
		}
	})
	t.Run("a second signer's copy merges", func(t *testing.T) {
		unsigned, _ := testutil.MakeBundle(t, t.TempDir(), "gateway", "1.4.2", 200<<10, 64<<10)
		testutil.SignBundle(t, unsigned, bob)
		res, err := s.Add(unsigned)
		if err != nil {
			t.Fatal(err)
		}
		if res.SignaturesAdded != 1 || res.Signatures != 2 {
			t.Errorf("merge: %+v", res)
		}
	})
	t.Run("a version is immutable", func(t *testing.T) {
		other, _ := testutil.MakeBundle(t, t.TempDir(), "gateway", "1.4.2", 1000, 0)
		_, err := s.Add(other)
		var ce *layout.ConflictError
		if !errors.As(err, &ce) {
			t.Errorf("add of another bundle under the same version: %v", err)
		}
	})
	t.Run("list", func(t *testing.T) {
		es, err := s.List()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range es {
			got = append(got, e.Repository+":"+e.Tag)
		}
		if want := "gateway:1.4.2 gateway:1.10.0 sensor:1.4.2"; strings.Join(got, " ") != want {
			t.Errorf("list = %v, want %s (versions in semver order)", got, want)
		}
		if es[0].Signatures != 2 || es[0].Size == 0 || es[0].DeviceTypes[0] != "board-a" {
			t.Errorf("entry: %+v", es[0])
		}
	})
	t.Run("the store is an OCI layout skopeo reads", func(t *testing.T) {
		raw := testutil.Skopeo(t, "inspect", "--raw", "oci:"+s.Dir()+":gateway:1.4.2")
		a, _ := bundle.OpenArchive(gw)
		defer a.Close()
		if string(raw) != string(a.RawManifest()) {
			t.Errorf("skopeo reads %s", raw)
		}
	})
	t.Run("open refuses a directory that is not a mirror", func(t *testing.T) {
		if _, err := mirror.Open(t.TempDir()); !errors.Is(err, mirror.ErrNotStore) {
			t.Errorf("open: %v", err)
		}
		if _, err := mirror.Init(s.Dir(), []byte("k")); err == nil {
			t.Error("init over a mirror")
		}
	})
}

var plain = registry.Options{PlainHTTP: true}

// TestSyncFromRegistry syncs a registry repository holding two bundles and
// a container image into a store: the image is skipped, a second sync
// moves nothing, and a sync cut off mid-blob leaves no blob visible and is
// resumed from where it stopped.
func TestSyncFromRegistry(t *testing.T) {
	host := testutil.StartRegistry(t)
	ctx := context.Background()
	alice := testutil.NewKey(t, "alice")
	dir := t.TempDir()
	p1, _ := testutil.MakeBundle(t, dir, "gateway", "1.0.0", 50<<10, 0, alice)
	p2, d2 := testutil.MakeBundle(t, dir, "gateway", "1.1.0", 400<<10, 0, alice)
	for _, p := range []string{p1} {
		if _, err := registry.Push(ctx, p, "oci://"+host+"/fleet/gateway", plain); err != nil {
			t.Fatal(err)
		}
	}
	testutil.PushImage(t, host+"/fleet/gateway:not-a-bundle")

	s := newStore(t)
	res, err := s.Sync(ctx, "oci://"+host+"/fleet/gateway", mirror.SyncOptions{Registry: plain})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Bundles) != 1 || len(res.Skipped) != 1 || res.Bundles[0].Signatures != 1 {
		t.Fatalf("first sync: %+v", res)
	}

	// The second bundle's download is cut off halfway, once.
	if _, err := registry.Push(ctx, p2, "oci://"+host+"/fleet/gateway", plain); err != nil {
		t.Fatal(err)
	}
	a, _ := bundle.OpenArchive(p2)
	layer := a.Manifest().Layers[0]
	a.Close()
	// The mirror's link dies mid-blob: the first request gets half the
	// blob, then every request fails until the link comes back.
	var down atomic.Bool
	var (
		mu     sync.Mutex
		ranges []string
	)
	var served atomic.Int32
	down.Store(true)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/blobs/"+layer.Digest.String()) {
			if rg := r.Header.Get("Range"); rg != "" && !down.Load() {
				mu.Lock()
				ranges = append(ranges, rg)
				mu.Unlock()
			}
			if down.Load() {
				if served.Add(1) > 1 {
					http.Error(w, "link down", http.StatusServiceUnavailable)
					return
				}
				resp, err := http.Get("http://" + host + r.URL.Path)
				if err != nil {
					t.Error(err)
					return
				}
				defer resp.Body.Close()
				w.Header().Set("Content-Length", resp.Header.Get("Content-Length"))
				w.WriteHeader(200)
				io.CopyN(w, resp.Body, layer.Size/2)
				w.(http.Flusher).Flush()
				panic(http.ErrAbortHandler)
			}
		}
		testutil.Forward(w, r, host)
	}))
	defer proxy.Close()
	from := "oci://" + strings.TrimPrefix(proxy.URL, "http://") + "/fleet/gateway:1.1.0"
	if _, err := s.Sync(ctx, from, mirror.SyncOptions{Registry: plain}); err == nil {
		t.Fatal("sync succeeded over a dead link")
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "blobs", "sha256", layer.Digest.Encoded())); err == nil {
		t.Fatal("a half-written blob is visible")
	}
	if es, _ := s.List(); len(es) != 1 {
		t.Fatalf("a half-synced bundle is listed: %+v", es)
	}
	down.Store(false)
	res, err = s.Sync(ctx, from, mirror.SyncOptions{Registry: plain})
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("bytes=%d-", layer.Size/2); len(ranges) != 1 || ranges[0] != want || len(res.Bundles) != 1 {
		t.Errorf("resumed sync: %+v, Range requests %q, want one %q", res, ranges, want)
	}
	es, _ := s.List()
	if len(es) != 2 || es[1].Digest != d2 {
		t.Fatalf("after sync: %+v", es)
	}

	again, err := s.Sync(ctx, "oci://"+host+"/fleet/gateway", mirror.SyncOptions{Registry: plain})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range again.Bundles {
		if b.BlobsAdded != 0 || b.New {
			t.Errorf("second sync moved %d blobs for %s", b.BlobsAdded, b.Version)
		}
	}
}

func TestSyncFromFiles(t *testing.T) {
	s := newStore(t)
	dir := t.TempDir()
	testutil.MakeBundle(t, dir, "gateway", "1.0.0", 1000, 0)
	testutil.MakeBundle(t, filepath.Join(dir), "sensor", "3.0.0", 1000, 0)
	os.WriteFile(filepath.Join(dir, "README.txt"), []byte("hello"), 0o644)
	res, err := s.Sync(context.Background(), dir, mirror.SyncOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Bundles) != 2 || len(res.Skipped) != 1 {
		t.Errorf("sync from a directory: %+v", res)
	}
	// A damaged bundle is a failure, not a skip; the others still sync.
	dir2 := t.TempDir()
	bad, _ := testutil.MakeBundle(t, dir2, "gateway", "1.2.0", 5000, 0)
	b, _ := os.ReadFile(bad)
	b[len(b)-2000] ^= 0xff
	os.WriteFile(bad, b, 0o644)
	testutil.MakeBundle(t, dir2, "gateway", "1.3.0", 5000, 0)
	if _, err := s.Sync(context.Background(), bad, mirror.SyncOptions{}); err == nil {
		t.Error("synced a damaged bundle")
	}
	res, err = s.Sync(context.Background(), dir2, mirror.SyncOptions{})
	var se *mirror.SyncError
	if !errors.As(err, &se) || se.Failed != 1 || len(res.Bundles) != 1 || len(res.Failed) != 1 || !strings.Contains(res.Failed[0].Source, "1.2.0") {
		t.Errorf("sync of a directory with a damaged bundle: %v, %+v", err, res)
	}
	if es, _ := s.List(); len(es) != 3 {
		t.Errorf("the mirror lists %d bundles, want 3 (the damaged one left out)", len(es))
	}
}
