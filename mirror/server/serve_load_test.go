package server_test

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/mirror/server"
)

// TestServeConcurrentMemoryFlat has 100 clients download an 8 MiB blob
// from the server at once: every one gets the right bytes, and the heap
// does not grow with the bytes served (blobs go out with sendfile through
// http.ServeContent, not through buffers).
func TestServeConcurrentMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	s := newStore(t)
	p, _ := testutil.MakeBundle(t, t.TempDir(), "gateway", "1.0.0", 8<<20, 0)
	if _, err := s.Add(p); err != nil {
		t.Fatal(err)
	}
	a, err := bundle.OpenArchive(p)
	if err != nil {
		t.Fatal(err)
	}
	layer := a.Manifest().Layers[0]
	a.Close()
	srv := httptest.NewServer(server.NewOCI(s))
	defer srv.Close()
	u := srv.URL + "/v2/gateway/blobs/" + layer.Digest.String()

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	const clients = 100
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, DisableCompression: true}}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Get(u)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			h := sha256.New()
			n, err := io.Copy(h, resp.Body)
			if err == nil && (n != layer.Size || digest.NewDigest(digest.SHA256, h) != layer.Digest) {
				err = fmt.Errorf("got %d bytes hashing to %x", n, h.Sum(nil))
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stop)
	<-sampled
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	total := float64(clients*layer.Size) / (1 << 20)
	growth := int64(peak.Load()) - int64(base.HeapInuse)
	t.Logf("%d clients, %.0f MiB in %v (%.0f MiB/s), heap in use grew by at most %.1f MiB", clients, total, elapsed.Round(time.Millisecond), total/elapsed.Seconds(), float64(growth)/(1<<20))
	// Each connection holds a few small buffers (client and server side
	// both live in this process); 800 MiB served must not show up here.
	if growth > 64<<20 {
		t.Errorf("heap grew by %d MiB while serving", growth>>20)
	}
}
