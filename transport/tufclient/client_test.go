package tufclient_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/transport/tufclient"
	"github.com/ferry-update/ferry/verify"
)

// repo is a mirror's /tuf/ directory held in memory, served by a
// RoundTripper so that a fuzz iteration costs no sockets.
type repo struct {
	mu    sync.Mutex
	files map[string][]byte
	root  string // path of the trusted root
}

func (r *repo) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	b, ok := r.files[strings.TrimPrefix(req.URL.Path, "/tuf/")]
	r.mu.Unlock()
	status := http.StatusOK
	if !ok {
		status, b = http.StatusNotFound, []byte("not found")
	}
	return &http.Response{StatusCode: status, Status: http.StatusText(status), Body: io.NopCloser(bytes.NewReader(b)), ContentLength: int64(len(b)), Request: req}, nil
}

func (r *repo) client() *tufclient.Client {
	return &tufclient.Client{HTTP: &http.Client{Transport: r}}
}

func (r *repo) clone() *repo {
	c := &repo{files: map[string][]byte{}, root: r.root}
	for k, v := range r.files {
		c.files[k] = v
	}
	return c
}

// newRepo makes a mirror with two bundles and reads its TUF files.
func newRepo(t testing.TB) *repo {
	t.Helper()
	dir := t.TempDir()
	s, err := mirror.Init(filepath.Join(dir, "mirror"), testutil.MirrorKey(t))
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range []string{"1.0.0", "1.1.0-rc.1"} {
		p := filepath.Join(dir, fmt.Sprintf("b%d.ferry", i))
		content := make([]byte, 1000)
		rng := rand.New(rand.NewPCG(uint64(i), 1))
		for j := range content {
			content[j] = byte(rng.Uint32())
		}
		_, err := bundle.Create(p, bundle.Options{Name: "gateway", Version: v, DeviceTypes: []string{"board-a"}, Created: time.Unix(1700000000, 0),
			Sign: func(digest.Digest) ([]bundle.Signature, error) { return nil, nil }},
			bundle.Source{Name: "rootfs", Type: bundle.Rootfs, Content: bytes.NewReader(content)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	r := &repo{files: map[string][]byte{}}
	ents, err := os.ReadDir(filepath.Join(s.Dir(), "tuf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(s.Dir(), "tuf", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		r.files[e.Name()] = b
	}
	r.root = filepath.Join(dir, "root.json")
	if err := os.WriteFile(r.root, r.files["1.root.json"], 0o644); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCheckInMemory(t *testing.T) {
	r := newRepo(t)
	tg, err := r.client().Check(context.Background(), "http://mirror.test:5000", r.root, t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	all := tg.All()
	if len(all) != 2 || all[0].Version != "1.0.0" || all[1].Version != "1.1.0-rc.1" {
		t.Errorf("targets in order: %+v", all)
	}
	// Semantic version order: 1.1.0-rc.1 is above 1.0.0, below 1.1.0.
	if n, ok := tg.Newest("board-a", "", "1.0.0"); !ok || n.Version != "1.1.0-rc.1" {
		t.Errorf("Newest above 1.0.0: %+v", n)
	}
	if n, ok := tg.Newest("board-a", "gateway", "1.1.0"); ok {
		t.Errorf("Newest above 1.1.0: %+v", n)
	}
	if n, ok := tg.Newest("board-a", "sensor", ""); ok {
		t.Errorf("Newest of another bundle name: %+v", n)
	}
	// Per component: another component's higher version (the OS at 9.0.0)
	// does not hide a newer gateway.
	installed := func(name string) string { return map[string]string{"gw-os": "9.0.0", "gateway": "1.0.0"}[name] }
	if n, ok := tg.NewestFor("board-a", "", installed); !ok || n.Version != "1.1.0-rc.1" {
		t.Errorf("NewestFor with gateway 1.0.0 and gw-os 9.0.0 installed: %+v, %t", n, ok)
	}
	if n, ok := tg.NewestFor("board-a", "", func(string) string { return "1.1.0-rc.1" }); ok {
		t.Errorf("NewestFor with everything at 1.1.0-rc.1: %+v", n)
	}
	if tg.Host != "mirror.test:5000" {
		t.Errorf("Host %q", tg.Host)
	}
}

func TestCheckErrors(t *testing.T) {
	r := newRepo(t)
	ctx := context.Background()
	t.Run("mirror down", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		_, err := tufclient.Check(ctx, srv.URL, r.root, t.TempDir(), time.Now())
		if !tufclient.IsKind(err, tufclient.Unavailable) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("not a mirror with metadata", func(t *testing.T) {
		c := &repo{files: map[string][]byte{}, root: r.root}
		_, err := c.client().Check(ctx, "http://m", r.root, t.TempDir(), time.Now())
		if !tufclient.IsKind(err, tufclient.Unavailable) || !strings.Contains(err.Error(), "404") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("endless timestamp", func(t *testing.T) {
		c := r.clone()
		c.files["timestamp.json"] = bytes.Repeat([]byte(" "), tufclient.MaxTimestampSize+1)
		_, err := c.client().Check(ctx, "http://m", r.root, t.TempDir(), time.Now())
		if !tufclient.IsKind(err, tufclient.Mismatch) || !strings.Contains(err.Error(), "limit") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("bad URL", func(t *testing.T) {
		if _, err := tufclient.Check(ctx, "oci://m/x", r.root, t.TempDir(), time.Now()); err == nil || !strings.Contains(err.Error(), "want http") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("no trusted root", func(t *testing.T) {
		_, err := r.client().Check(ctx, "http://m", filepath.Join(t.TempDir(), "nothing.json"), t.TempDir(), time.Now())
		if err == nil || !strings.Contains(err.Error(), "trusted mirror root") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("trusted root not self-signed", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "root.json")
		os.WriteFile(bad, bytes.Replace(r.files["1.root.json"], []byte(`"version": 1`), []byte(`"version": 7`), 1), 0o644)
		_, err := r.client().Check(ctx, "http://m", bad, t.TempDir(), time.Now())
		if !tufclient.IsKind(err, tufclient.BadSignature) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("expired root", func(t *testing.T) {
		_, err := r.client().Check(ctx, "http://m", r.root, t.TempDir(), time.Now().Add(400*24*time.Hour))
		var te *tufclient.Error
		if !errors.As(err, &te) || te.Kind != tufclient.Expired || te.Role != "root" {
			t.Errorf("got %v", err)
		}
	})
}

// roleFiles are the files a fuzz iteration may replace.
var roleFiles = []string{"timestamp.json", "3.snapshot.json", "3.targets.json", "2.root.json", "1.root.json"}

// FuzzCheckMetadata feeds arbitrary bytes in place of one of the
// mirror's metadata files. Check must never panic; it must refuse any
// change to a snapshot or targets file (their hashes are signed); and
// whatever it accepts must list exactly the mirror's bundles.
func FuzzCheckMetadata(f *testing.F) {
	r := newRepo(f)
	for i, name := range roleFiles {
		if b, ok := r.files[name]; ok {
			f.Add(uint8(i), b)
			f.Add(uint8(i), bytes.Replace(b, []byte(`"version": `), []byte(`"version": 1`), 1))
		}
	}
	f.Add(uint8(0), []byte(`{"signed":{"_type":"timestamp"},"signatures":[]}`))
	f.Add(uint8(2), []byte(`{}`))
	f.Add(uint8(3), []byte(`null`))
	good, err := r.client().Check(context.Background(), "http://m", r.root, f.TempDir(), time.Now())
	if err != nil {
		f.Fatal(err)
	}
	want := fmt.Sprint(good.All())
	now := time.Now()
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		name := roleFiles[int(which)%len(roleFiles)]
		c := r.clone()
		orig, had := c.files[name]
		c.files[name] = data
		state, err := os.MkdirTemp("", "tufstate")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(state)
		tg, err := c.client().Check(context.Background(), "http://m", r.root, state, now)
		if err != nil {
			var te *tufclient.Error
			if !errors.As(err, &te) {
				t.Fatalf("not a *tufclient.Error: %v", err)
			}
			return
		}
		if (name == "3.snapshot.json" || name == "3.targets.json") && !bytes.Equal(orig, data) {
			t.Fatalf("accepted a changed %s", name)
		}
		if name == "2.root.json" && !had {
			// A root that does not exist yet cannot be forged.
			t.Fatalf("accepted a forged 2.root.json")
		}
		if got := fmt.Sprint(tg.All()); got != want {
			t.Fatalf("accepted targets %s, want %s", got, want)
		}
	})
}

func TestRootKeys(t *testing.T) {
	r := newRepo(t)
	keys, err := tufclient.RootKeys(r.files["root.json"])
	if err != nil || len(keys) != 1 {
		t.Fatalf("RootKeys = %v, %v", keys, err)
	}
	if _, err := verify.NewPublicKey(keys[0]); err != nil {
		t.Errorf("not a key verify knows: %v", err)
	}
	forged := bytes.Replace(r.files["root.json"], []byte(`"version": 1`), []byte(`"version": 2`), 1)
	if _, err := tufclient.RootKeys(forged); !tufclient.IsKind(err, tufclient.BadSignature) {
		t.Errorf("forged root: %v", err)
	}
}
