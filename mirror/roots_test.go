package mirror_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/mirror/server"
	"github.com/ferry-update/ferry/verify"
)

func rootSigner(t *testing.T) *verify.Signer {
	t.Helper()
	k, err := verify.GenerateKey(verify.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	s, err := verify.NewSigner(k, "test")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func signRoot(t *testing.T, s verify.RootSigned, by ...*verify.Signer) *verify.Root {
	t.Helper()
	r, err := verify.SignRoot(s, by...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestAddRootAndServe(t *testing.T) {
	k, err := verify.GenerateKey(verify.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := verify.MarshalPrivateKey(k, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := mirror.Init(filepath.Join(t.TempDir(), "m"), pem)
	if err != nil {
		t.Fatal(err)
	}
	rootKey, rel1, rel2, forger := rootSigner(t), rootSigner(t), rootSigner(t), rootSigner(t)
	s1 := verify.NewRootSigned(time.Now().Add(time.Hour))
	s1.AddKey(verify.RoleRoot, rootKey.PublicKey())
	s1.AddKey(verify.RoleRelease, rel1.PublicKey())
	r1 := signRoot(t, s1, rootKey)
	s2 := r1.Signed()
	s2.Version = 2
	s2.AddKey(verify.RoleRelease, rel2.PublicKey())
	r2 := signRoot(t, s2, rootKey)
	sf := r1.Signed()
	sf.Version = 2
	sf.AddKey(verify.RoleRelease, forger.PublicKey())
	forged := signRoot(t, sf, forger) // not by v1's root keys, nor its own
	s3 := r2.Signed()
	s3.Version = 3
	r3 := signRoot(t, s3, rootKey)

	if _, err := st.AddRoot([]byte("{}")); err == nil {
		t.Error("a document that is not a trust root was stored")
	}
	if _, err := st.AddRoot(forged.Bytes()); err == nil || !strings.Contains(err.Error(), "its own root role") {
		t.Errorf("first root not signed by its own root keys: %v", err)
	}
	if res, err := st.AddRoot(r1.Bytes()); err != nil || res.Version != 1 || res.Unchanged {
		t.Fatalf("add v1: %+v %v", res, err)
	}
	if _, err := st.AddRoot(r3.Bytes()); err == nil || !strings.Contains(err.Error(), "version-skip") && !strings.Contains(err.Error(), "apply version 2 first") {
		t.Errorf("v3 after v1: %v, want refused", err)
	}
	if _, err := st.AddRoot(forged.Bytes()); err == nil || !strings.Contains(err.Error(), "does not follow the mirror's v1") {
		t.Errorf("v2 not signed by v1's root keys: %v, want refused", err)
	}
	for _, r := range []*verify.Root{r2, r3} {
		if _, err := st.AddRoot(r.Bytes()); err != nil {
			t.Fatalf("add v%d: %v", r.Version(), err)
		}
	}
	if res, err := st.AddRoot(r2.Bytes()); err != nil || !res.Unchanged {
		t.Errorf("v2 again: %+v %v, want unchanged", res, err)
	}
	if _, err := st.AddRoot(forged.Bytes()); err == nil {
		t.Error("a different v2 was accepted")
	}

	srv := httptest.NewServer(server.NewHandler(st, server.HandlerOptions{}))
	defer srv.Close()
	for _, c := range []struct {
		method, path string
		status       int
		body         []byte
	}{
		{"GET", "/ferry/v1/roots/1.root.json", 200, r1.Bytes()},
		{"GET", "/ferry/v1/roots/3.root.json", 200, r3.Bytes()},
		{"GET", "/ferry/v1/roots/4.root.json", 404, nil},
		{"GET", "/ferry/v1/roots/0.root.json", 404, nil},
		{"GET", "/ferry/v1/roots/..%2Fkeys%2Fmirror.key", 404, nil},
		{"GET", "/ferry/v1/roots/root.json", 404, nil},
		{"POST", "/ferry/v1/roots/1.root.json", 405, nil},
	} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || c.body != nil && string(b) != string(c.body) {
			t.Errorf("%s %s: %d %q, want %d", c.method, c.path, resp.StatusCode, b, c.status)
		}
	}
}

// TestSyncRootsFromMirror syncs from another mirror directory: its trust
// roots come along by the chain rule; a mirror without roots is no error.
func TestSyncRootsFromMirror(t *testing.T) {
	ctx := context.Background()
	src, dst := newStore(t), newStore(t)
	if res, err := dst.Sync(ctx, src.Dir(), mirror.SyncOptions{}); err != nil || len(res.Roots) != 0 || len(res.Failed) != 0 {
		t.Fatalf("sync from a mirror without roots: %+v %v", res, err)
	}
	rootKey, rel := rootSigner(t), rootSigner(t)
	s1 := verify.NewRootSigned(time.Now().Add(time.Hour))
	s1.AddKey(verify.RoleRoot, rootKey.PublicKey())
	s1.AddKey(verify.RoleRelease, rel.PublicKey())
	r1 := signRoot(t, s1, rootKey)
	s2 := r1.Signed()
	s2.Version = 2
	r2 := signRoot(t, s2, rootKey)
	for _, r := range []*verify.Root{r1, r2} {
		if _, err := src.AddRoot(r.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	res, err := dst.Sync(ctx, src.Dir(), mirror.SyncOptions{})
	if err != nil || len(res.Roots) != 2 || res.Roots[0].Version != 1 || res.Roots[1].Version != 2 || res.Roots[1].Unchanged {
		t.Fatalf("sync roots: %+v %v", res, err)
	}
	for _, sk := range res.Skipped {
		if strings.Contains(sk.Source, string(filepath.Separator)+"roots"+string(filepath.Separator)) {
			t.Errorf("a root was listed as skipped: %+v", sk)
		}
	}
	b, err := os.ReadFile(filepath.Join(dst.Dir(), "roots", "2.root.json"))
	if err != nil || !bytes.Equal(b, r2.Bytes()) {
		t.Errorf("synced v2: %v", err)
	}
	if res, err := dst.Sync(ctx, src.Dir(), mirror.SyncOptions{}); err != nil || len(res.Roots) != 2 || !res.Roots[1].Unchanged {
		t.Errorf("second sync: %+v %v", res, err)
	}

	// A mirror whose chain is another one's: refused, listed as failed.
	other := newStore(t)
	so := verify.NewRootSigned(time.Now().Add(time.Hour))
	ok := rootSigner(t)
	so.AddKey(verify.RoleRoot, ok.PublicKey())
	so.AddKey(verify.RoleRelease, rel.PublicKey())
	if _, err := other.AddRoot(signRoot(t, so, ok).Bytes()); err != nil {
		t.Fatal(err)
	}
	res, err = dst.Sync(ctx, other.Dir(), mirror.SyncOptions{})
	var se *mirror.SyncError
	if !errors.As(err, &se) || len(res.Failed) != 1 || len(res.Roots) != 0 {
		t.Errorf("sync of a foreign chain: %+v %v", res, err)
	}
}
