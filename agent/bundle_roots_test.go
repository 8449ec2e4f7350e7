package agent

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/mirror/server"
	"github.com/ferry-update/ferry/transport/wire"
	"github.com/ferry-update/ferry/verify"
)

// rotateRelease returns the root after r, its release role moved to key
// only, signed by signers.
func (e *trustEnv) rotateRelease(r *verify.Root, key *verify.Signer, signers ...*verify.Signer) *verify.Root {
	e.t.Helper()
	s := e.next(r, func(s *verify.RootSigned) {
		if err := s.AddKey(verify.RoleRelease, key.PublicKey()); err != nil {
			e.t.Fatal(err)
		}
		for _, id := range s.Roles[verify.RoleRelease].KeyIDs {
			if id != key.PublicKey().ID {
				if err := s.RemoveKey(verify.RoleRelease, id); err != nil {
					e.t.Fatal(err)
				}
			}
		}
	})
	return e.sign(s, signers...)
}

// rootsBundle makes a rootfs bundle signed by signer that carries roots
// as trust-root attachments (bundle/FORMAT.md §6.1).
func rootsBundle(t *testing.T, version string, signer *verify.Signer, roots ...*verify.Root) []byte {
	t.Helper()
	opts := bundle.Options{Name: "sim-os", Version: version, DeviceTypes: []string{deviceType}, Created: time.Unix(1700000000, 0)}
	for _, r := range roots {
		opts.Attachments = append(opts.Attachments, bundle.AttachmentData{
			Attachment: bundle.Attachment{Name: strconv.FormatInt(r.Version(), 10) + ".root.json", MediaType: bundle.TrustRootMediaType},
			Data:       r.Bytes(),
		})
	}
	opts.Sign = func(m digest.Digest) ([]bundle.Signature, error) {
		sig, err := signer.Sign(m, "example.com/sim-os", time.Unix(1700000000, 0))
		return []bundle.Signature{sig}, err
	}
	path := filepath.Join(t.TempDir(), "b.bundle")
	if _, err := bundle.Create(path, opts, bundle.Source{Name: "rootfs", Type: bundle.Rootfs, Content: strings.NewReader("system " + version)}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *trustEnv) heldRoot() int64 {
	e.t.Helper()
	var v int64
	if err := e.do(func(a *Agent) error { v = a.Root().Version(); return nil }); err != nil {
		e.t.Fatal(err)
	}
	return v
}

func TestBundleCarriesRoot(t *testing.T) {
	keyB := newSigner(t)

	t.Run("without the root", func(t *testing.T) {
		e := newTrustEnv(t)
		err := e.install(rootsBundle(t, "1.0.0", keyB))
		var re *RefusedError
		if !errors.As(err, &re) {
			t.Fatalf("bundle signed by a key root v1 does not know: %v, want refused", err)
		}
		if v := e.heldRoot(); v != 1 {
			t.Errorf("device holds root v%d, want v1", v)
		}
	})

	t.Run("forged root", func(t *testing.T) {
		e := newTrustEnv(t)
		forger := newSigner(t)
		forged := e.rotateRelease(e.root1, keyB, forger) // not signed by v1's root keys
		before := e.deviceHash()
		err := e.install(rootsBundle(t, "1.0.0", keyB, forged))
		var re *RefusedError
		if !errors.As(err, &re) {
			t.Fatalf("bundle carrying a forged root: %v, want refused", err)
		}
		if !strings.Contains(err.Error(), "newer trust root was offered but not accepted") || !strings.Contains(err.Error(), "required key(s) of the trusted v1's root role") {
			t.Errorf("refusal does not say why the root was not taken: %v", err)
		}
		if v := e.heldRoot(); v != 1 {
			t.Errorf("device holds root v%d, want v1", v)
		}
		if e.deviceHash() != before {
			t.Error("a refused install changed the device")
		}
	})

	t.Run("with the root", func(t *testing.T) {
		e := newTrustEnv(t)
		r2 := e.rotateRelease(e.root1, keyB, e.rootKey)
		if err := e.install(rootsBundle(t, "1.0.0", keyB, r2)); err != nil {
			t.Fatalf("bundle signed by key B carrying root v2: %v", err)
		}
		if got := e.read("slot-b.img"); got != "system 1.0.0" {
			t.Errorf("slot b holds %q", got)
		}
		if v := e.heldRoot(); v != 2 {
			t.Errorf("device holds root v%d, want v2", v)
		}
	})
}

// TestMirrorRoots: the run loop fetches held+1, held+2, … from the mirror
// until 404 and applies them before it looks for bundles.
func TestMirrorRoots(t *testing.T) {
	e := newTrustEnv(t)
	keyB, keyC := newSigner(t), newSigner(t)
	r2 := e.rotateRelease(e.root1, keyB, e.rootKey)
	r3 := e.rotateRelease(r2, keyC, e.rootKey)
	st, mc := mirrorFor(t, rootsBundle(t, "1.0.0", keyC))
	var asked []string
	h := server.NewHandler(st, server.HandlerOptions{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, wire.RootsPath) {
			asked = append(asked, r.URL.Path)
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	mc.URL = srv.URL
	e.cfg.Mirror = mc
	for _, r := range []*verify.Root{r2, r3} {
		if _, err := st.AddRoot(r.Bytes()); err != nil {
			t.Fatal(err)
		}
	}

	out, err := (&Runner{Config: e.cfg}).Once(context.Background())
	if err != nil {
		t.Fatalf("bundle signed by key C, whose root v3 is on the mirror: %v", err)
	}
	if out.Result == nil || out.Result.Version != "1.0.0" {
		t.Fatalf("outcome %+v", out)
	}
	if v := e.heldRoot(); v != 3 {
		t.Errorf("device holds root v%d, want v3", v)
	}
	want := "/ferry/v1/roots/2.root.json /ferry/v1/roots/3.root.json /ferry/v1/roots/4.root.json"
	if got := strings.Join(asked, " "); got != want {
		t.Errorf("asked for %s, want %s", got, want)
	}
}

// TestMirrorRootsForged: a root on the mirror that fails the chain rule
// leaves the held root in place, and the bundle is judged by it.
func TestMirrorRootsForged(t *testing.T) {
	e := newTrustEnv(t)
	keyB := newSigner(t)
	forged := e.rotateRelease(e.root1, keyB, newSigner(t))
	st, mc := mirrorFor(t, rootsBundle(t, "1.0.0", keyB))
	// The store refuses a forged root; put it where it serves from, as
	// a compromised mirror would.
	if err := os.MkdirAll(filepath.Join(st.Dir(), "roots"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(st.Dir(), "roots", "2.root.json"), forged.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	e.cfg.Mirror = mc
	var log bytes.Buffer
	e.cfg.Log = &log
	_, err := (&Runner{Config: e.cfg}).Once(context.Background())
	var re *RefusedError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "newer trust root was offered but not accepted") {
		t.Fatalf("bundle signed by an unknown key with a forged root on the mirror: %v, want refused with the reason", err)
	}
	if v := e.heldRoot(); v != 1 {
		t.Errorf("device holds root v%d, want v1", v)
	}
	if !strings.Contains(log.String(), "keeping trust root v1") {
		t.Errorf("log does not tell the forged root:\n%s", log.String())
	}
}

// TestRefusedRootReasonKept: roots offered later that are not newer than
// the one held do not erase why an earlier root was refused.
func TestRefusedRootReasonKept(t *testing.T) {
	e := newTrustEnv(t)
	keyB, forger := newSigner(t), newSigner(t)
	forged := e.rotateRelease(e.root1, keyB, forger) // not signed by v1's root keys
	a := e.open()
	if _, err := a.ApplyRoots([][]byte{forged.Bytes()}); err == nil {
		t.Fatal("a forged root was accepted")
	}
	if _, err := a.ApplyRoots([][]byte{e.root1.Bytes()}); err != nil {
		t.Errorf("the held root offered again: %v (want it ignored)", err)
	}
	_, err := a.Install(context.Background(), bytes.NewReader(rootsBundle(t, "1.0.0", keyB)), "test")
	var re *RefusedError
	if !errors.As(err, &re) {
		t.Fatalf("bundle signed by a key root v1 does not know: %v, want refused", err)
	}
	if !strings.Contains(err.Error(), "newer trust root was offered but not accepted") || !strings.Contains(err.Error(), "required key(s) of the trusted v1's root role") {
		t.Errorf("the refusal lost why the root was not taken: %v", err)
	}
}
