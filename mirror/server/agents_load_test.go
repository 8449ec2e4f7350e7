package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/mirror/server"
	"github.com/ferry-update/ferry/transport/checkin"
	"github.com/ferry-update/ferry/transport/oci"
	"github.com/ferry-update/ferry/transport/tufclient"
)

// TestAgentsUpdateAtOnce: 200 simulated agents (20 with -short), each
// with its own connections and TUF state, poll a mirror served on a real
// loopback listener, as 'ferry mirror serve' serves it, and at once
// download a 16 MiB bundle: every one checks the metadata, picks the
// bundle, pulls it by digest through transport/oci, gets exactly the bytes of
// the bundle file, checks it against the targets, and reports back.
func TestAgentsUpdateAtOnce(t *testing.T) {
	agents := 200
	if testing.Short() {
		agents = 20
	}
	s := newStore(t)
	src, manifest := testutil.MakeBundle(t, t.TempDir(), "gateway", "2.0.0", 16<<20, 0, testutil.NewKey(t, "release"))
	if _, err := s.Add(src); err != nil {
		t.Fatal(err)
	}
	// The right bytes: the bundle file as a canonical archive (the member
	// order a pull writes; bundle.Create leaves room for the head).
	wantSum, wantSize := canonicalSum(t, src)
	db, err := devices.OpenDir(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: server.NewHandler(s, server.HandlerOptions{Devices: db, AcceptLegacy: true}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()
	root := filepath.Join(t.TempDir(), "mirror-root.json")
	rootJSON, err := os.ReadFile(s.TUFRootPath())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(root, rootJSON, 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stateDir := t.TempDir()
	start := make(chan struct{})
	errs := make(chan error, agents)
	var wg sync.WaitGroup
	for i := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := simulatedAgent(ctx, i, base, root, filepath.Join(stateDir, fmt.Sprint(i)), start, manifest.String(), wantSum); err != nil {
				errs <- fmt.Errorf("agent %d: %w", i, err)
			}
		}()
	}
	began := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(began)
	close(errs)
	failed := 0
	for err := range errs {
		failed++
		if failed <= 10 {
			t.Error(err)
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d agents failed", failed, agents)
	}
	mib := float64(agents) * float64(wantSize) / (1 << 20)
	t.Logf("%d agents: %.0f MiB in %v (%.0f MiB/s)", agents, mib, elapsed.Round(time.Millisecond), mib/elapsed.Seconds())
	ds, err := db.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != agents {
		t.Errorf("%d devices checked in, want %d", len(ds), agents)
	}
	for _, d := range ds {
		if d.Version != "2.0.0" || d.Result != "committed" || d.Checkins != 2 {
			t.Errorf("device %s: %+v", d.ID, d)
			break
		}
	}
}

// simulatedAgent does what the device agent's run loop does once.
func simulatedAgent(ctx context.Context, i int, base, root, state string, start <-chan struct{}, wantDigest string, wantSum [32]byte) error {
	hc := &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 2}}
	defer hc.CloseIdleConnections()
	id := fmt.Sprintf("dev-%03d", i)
	<-start
	if err := checkin.Post(ctx, hc, base, &checkin.Report{DeviceID: id, DeviceType: "board-a", Bundle: "gateway", Version: "1.0.0", Result: "idle", Time: time.Now()}); err != nil {
		return err
	}
	tc := &tufclient.Client{HTTP: hc}
	tg, err := tc.Check(ctx, base, root, state, time.Now())
	if err != nil {
		return err
	}
	target, ok := tg.Newest("board-a", "gateway", "1.0.0")
	if !ok {
		return fmt.Errorf("no update found in %+v", tg.All())
	}
	if target.ManifestDigest != wantDigest {
		return fmt.Errorf("targets list %s, want %s", target.ManifestDigest, wantDigest)
	}
	ref, err := oci.ParseReference(target.Reference(tg.Host))
	if err != nil {
		return err
	}
	repo := oci.NewRepository(ref.Host, ref.Repository, oci.Options{Client: hc, PlainHTTP: true})
	h := sha256.New()
	var n countWriter
	head, err := oci.Pull(ctx, repo, ref.Identifier(), io.MultiWriter(h, &n))
	if err != nil {
		return err
	}
	if err := tg.Verify(target.Name, target.Version, head.Digest.String()); err != nil {
		return err
	}
	if got := h.Sum(nil); !bytes.Equal(got, wantSum[:]) {
		return fmt.Errorf("got %d bytes hashing to %x, want %x", n, got, wantSum)
	}
	// Poll again: nothing new, only the timestamp moves.
	if _, err := tc.Check(ctx, base, root, state, time.Now()); err != nil {
		return fmt.Errorf("second poll: %w", err)
	}
	return checkin.Post(ctx, hc, base, &checkin.Report{DeviceID: id, DeviceType: "board-a", Bundle: "gateway", Version: target.Version, Result: "committed", Time: time.Now()})
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}

// canonicalSum is the SHA-256 and size of the canonical archive of the
// bundle file at path.
func canonicalSum(t *testing.T, path string) ([32]byte, int64) {
	t.Helper()
	a, err := bundle.OpenArchive(path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	h := sha256.New()
	var n countWriter
	err = bundle.Assemble(io.MultiWriter(h, &n), bundle.Parts{
		Manifest: a.RawManifest(), Config: a.RawConfig(), Signatures: a.Signatures(),
		Layer: func(l ocispec.Descriptor) (io.ReadCloser, error) {
			r, _, err := a.Blob(l.Digest)
			return io.NopCloser(r), err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, int64(n)
}
