package mirror_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/bundle/dstream"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/mirror/server"
	"github.com/ferry-update/ferry/transport/wire"
)

// chunkIndexOf returns the raw chunk index of a bundle's rootfs payload.
func chunkIndexOf(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := bundle.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range r.Attachments() {
		if a.Name == bundle.ChunkIndexName("rootfs") {
			return a.Data
		}
	}
	t.Fatal("no chunk index")
	return nil
}

// TestDeltaStreamServe: ferry mirror serve's handler makes the delta
// stream of 2.0.0 from 1.0.0 once for many devices asking at once,
// caches it, serves it with Range, and answers 404 for a base or target
// it does not hold and for malformed paths. The stream reads back against
// the base's index and the signed target index digest.
func TestDeltaStreamServe(t *testing.T) {
	c1 := make([]byte, 2<<20)
	_, _ = rand.NewChaCha8([32]byte{3}).Read(c1)
	c2 := bytes.Clone(c1)
	copy(c2[1<<20:], bytes.Repeat([]byte("2.0.0"), 2000))
	key := testutil.NewKey(t, "release")
	paths := chunkedBundles(t, key, c1, c2)
	st := newStore(t)
	for _, p := range paths {
		if _, err := st.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	base, target := chunkIndexOf(t, paths[0]), chunkIndexOf(t, paths[1])
	bd, td := digest.FromBytes(base), digest.FromBytes(target)
	var made atomic.Int32
	h := server.NewHandler(st, server.HandlerOptions{Logf: func(format string, a ...any) {
		if strings.Contains(format, "made in") {
			made.Add(1)
		}
	}})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	url := func(name string, target, base digest.Digest) string {
		return srv.URL + wire.DeltaPath + name + "/" + target.String() + "/" + base.String()
	}
	get := func(u, rng string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0, nil
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Error(err)
		}
		return resp.StatusCode, b
	}

	bodies := make([][]byte, 4)
	var wg sync.WaitGroup
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, b := get(url("gateway", td, bd), "")
			if code != http.StatusOK {
				t.Errorf("status %d: %s", code, b)
			}
			bodies[i] = b
		}()
	}
	wg.Wait()
	if made.Load() != 1 {
		t.Errorf("%d streams made for 4 requests of one: want 1", made.Load())
	}
	cached, err := os.ReadFile(st.DeltaStreamPath(td, bd))
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range bodies {
		if !bytes.Equal(b, cached) {
			t.Errorf("request %d got %d bytes, the cached stream is %d", i, len(b), len(cached))
		}
	}
	r, err := dstream.NewReader(bytes.NewReader(cached), base, td)
	if err != nil || !bytes.Equal(r.Index(), target) {
		t.Fatalf("the stream does not read back: %v", err)
	}
	if int64(len(cached)) >= int64(len(target))+bundle.Diff(mustIndex(t, base), mustIndex(t, target)).NewCompressedBytes {
		t.Errorf("stream of %d bytes is no smaller than the index and the new frames", len(cached))
	}
	if code, b := get(url("gateway", td, bd), "bytes=100-"); code != http.StatusPartialContent || !bytes.Equal(b, cached[100:]) {
		t.Errorf("range request: status %d, %d bytes", code, len(b))
	}
	if made.Load() != 1 {
		t.Errorf("the cached stream was made again")
	}
	for name, u := range map[string]string{
		"unknown base":      url("gateway", td, digest.FromString("other")),
		"unknown target":    url("gateway", digest.FromString("other"), bd),
		"other repository":  url("other", td, bd),
		"not a digest":      srv.URL + wire.DeltaPath + "gateway/sha256:abc/" + bd.String(),
		"no base":           srv.URL + wire.DeltaPath + "gateway/" + td.String(),
		"unchunked payload": url("gateway", bd, td) + "x",
	} {
		if code, b := get(u, ""); code != http.StatusNotFound {
			t.Errorf("%s: status %d: %s", name, code, b)
		}
	}
}

func mustIndex(t *testing.T, raw []byte) *bundle.ChunkIndex {
	t.Helper()
	ix, err := bundle.ParseChunkIndex(raw)
	if err != nil {
		t.Fatal(err)
	}
	return ix
}
