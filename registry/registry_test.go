package registry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcr "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/registry"
	"github.com/ferry-update/ferry/transport/oci"
	"github.com/ferry-update/ferry/verify"
)

var plain = registry.Options{PlainHTTP: true}

// countingProxy forwards to host and counts blob upload sessions.
func countingProxy(t *testing.T, host string) (string, *atomic.Int64) {
	t.Helper()
	var uploads atomic.Int64
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: host})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.Contains(r.URL.Path, "/blobs/uploads/") {
			uploads.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), &uploads
}

func pullFile(t *testing.T, ref string) (string, *registry.PullResult) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "pulled.ferry")
	res, err := registry.PullFile(context.Background(), ref, out, plain)
	if err != nil {
		t.Fatal(err)
	}
	return out, res
}

// TestPushPullRealRegistry runs push and pull against Docker's registry
// 2.8 (no referrers API) and checks what skopeo sees.
func TestPushPullRealRegistry(t *testing.T) {
	host := testutil.StartRegistry(t)
	proxy, uploads := countingProxy(t, host)
	ctx := context.Background()
	dir := t.TempDir()
	alice, bob := testutil.NewKey(t, "alice"), testutil.NewKey(t, "bob")
	path, d := testutil.MakeBundle(t, dir, "gateway", "1.4.2", 300<<10, 64<<10, alice)

	ref := "oci://" + proxy + "/factory/gateway:1.4.2"
	res, err := registry.Push(ctx, path, ref, plain)
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != d || res.BlobsUploaded < 6 || res.BlobsPresent != 0 || res.Signatures != 1 || res.SignatureTag != bundle.SignatureTag(d) {
		t.Errorf("first push: %+v", res)
	}
	if res.Referrers != registry.ReferrersUnsupported {
		t.Errorf("registry 2.8 has no referrers API, push says referrers %q", res.Referrers)
	}

	t.Run("skopeo inspect shows the manifest byte for byte", func(t *testing.T) {
		a, err := bundle.OpenArchive(path)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		raw := testutil.Skopeo(t, "inspect", "--raw", "--tls-verify=false", "docker://"+host+"/factory/gateway:1.4.2")
		if !bytes.Equal(raw, a.RawManifest()) {
			t.Errorf("registry holds another manifest:\n%s\nwant\n%s", raw, a.RawManifest())
		}
		sig := testutil.Skopeo(t, "inspect", "--raw", "--tls-verify=false", "docker://"+host+"/factory/gateway:"+bundle.SignatureTag(d))
		if !bytes.Contains(sig, []byte(bundle.SimpleSigningType)) {
			t.Errorf("signature tag holds %s", sig)
		}
	})

	t.Run("skopeo copies it to an oci-archive", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "copy.tar")
		testutil.Skopeo(t, "copy", "--src-tls-verify=false", "docker://"+host+"/factory/gateway:1.4.2", "oci-archive:"+out+":1.4.2")
		st, err := os.Stat(out)
		if err != nil || st.Size() < 300<<10 {
			t.Fatalf("skopeo wrote %v, %v", st, err)
		}
	})

	t.Run("pull gives a bundle that verifies, same digest", func(t *testing.T) {
		out, pr := pullFile(t, "oci://"+host+"/factory/gateway:1.4.2")
		if pr.Digest != d || pr.Signatures != 1 {
			t.Errorf("pull: %+v", pr)
		}
		rep, err := testutil.VerifyFile(t, out, 1, alice)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Manifest != d {
			t.Errorf("pulled manifest %s, pushed %s", rep.Manifest, d)
		}
		// By digest too.
		out2, _ := pullFile(t, "oci://"+host+"/factory/gateway@"+d.String())
		a, _ := os.ReadFile(out)
		b, _ := os.ReadFile(out2)
		if !bytes.Equal(a, b) {
			t.Error("pull by tag and by digest differ")
		}
	})

	t.Run("second push uploads no blob", func(t *testing.T) {
		before := uploads.Load()
		res, err := registry.Push(ctx, path, ref, plain)
		if err != nil {
			t.Fatal(err)
		}
		if n := uploads.Load() - before; n != 0 || res.BlobsUploaded != 0 || res.SignaturesAdded != 0 {
			t.Errorf("second push started %d uploads: %+v", n, res)
		}
	})

	t.Run("two signers pushing separately keep both signatures", func(t *testing.T) {
		// Bob signs his own copy of the same bundle (same content, same
		// manifest digest) and pushes it: it holds his signature only.
		unsigned, _ := testutil.MakeBundle(t, t.TempDir(), "gateway", "1.4.2", 300<<10, 64<<10)
		testutil.SignBundle(t, unsigned, bob)
		res, err := registry.Push(ctx, unsigned, ref, plain)
		if err != nil {
			t.Fatal(err)
		}
		if res.Digest != d {
			t.Fatalf("rebuilt bundle has digest %s, want %s", res.Digest, d)
		}
		if res.Signatures != 2 || res.SignaturesAdded != 1 {
			t.Errorf("bob's push: %+v", res)
		}
		out, pr := pullFile(t, ref)
		if pr.Signatures != 2 {
			t.Errorf("pulled %d signatures, want alice's and bob's", pr.Signatures)
		}
		if _, err := testutil.VerifyFile(t, out, 2, alice, bob); err != nil {
			t.Errorf("2-of-2 after both pushed: %v", err)
		}
	})

	t.Run("pulling a container image is refused clearly", func(t *testing.T) {
		img, err := random.Image(1024, 1)
		if err != nil {
			t.Fatal(err)
		}
		tag, _ := name.NewTag(host + "/factory/busybox:latest")
		if err := remote.Write(tag, img); err != nil {
			t.Fatal(err)
		}
		_, err = registry.Pull(ctx, "oci://"+host+"/factory/busybox:latest", &bytes.Buffer{}, plain)
		var nb *oci.NotBundleError
		if !errors.As(err, &nb) || !strings.Contains(err.Error(), "not a ferry bundle") {
			t.Errorf("pull of an image: %v", err)
		}
		_, err = registry.Pull(ctx, "oci://"+host+"/factory/gateway:9.9.9", &bytes.Buffer{}, plain)
		if !errors.Is(err, oci.ErrNotFound) {
			t.Errorf("pull of a missing tag: %v", err)
		}
		// PullFile leaves nothing behind when the pull fails: no file,
		// no temporary file.
		dir := t.TempDir()
		_, err = registry.PullFile(ctx, "oci://"+host+"/factory/busybox:latest", filepath.Join(dir, "out.ferry"), plain)
		if !errors.As(err, &nb) {
			t.Errorf("PullFile of an image: %v", err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("PullFile that failed left %v", ents)
		}
	})
}

// TestSkopeoCopiedBundle: what skopeo pushes from the bundle file itself
// (an oci-archive) ferry pulls; the cosign tag does not travel with it, so
// the pulled bundle has no signatures and verify refuses it for want of them.
func TestSkopeoCopiedBundle(t *testing.T) {
	host := testutil.StartRegistry(t)
	alice := testutil.NewKey(t, "alice")
	path, d := testutil.MakeBundle(t, t.TempDir(), "sensor", "2.0.0", 100<<10, 0, alice)
	testutil.Skopeo(t, "copy", "--dest-tls-verify=false", "oci-archive:"+path+":2.0.0", "docker://"+host+"/sensor:2.0.0")

	out, pr := pullFile(t, "oci://"+host+"/sensor:2.0.0")
	if pr.Digest != d {
		t.Errorf("skopeo changed the manifest digest: %s, want %s", pr.Digest, d)
	}
	if pr.Signatures != 0 {
		t.Errorf("pulled %d signatures; skopeo does not copy the .sig tag", pr.Signatures)
	}
	_, err := testutil.VerifyFile(t, out, 1, alice)
	var te *verify.ThresholdError
	if !errors.As(err, &te) {
		t.Fatalf("verify of an unsigned pull: %v, want a threshold error", err)
	}
	// Pushing the signatures with ferry completes it.
	if _, err := registry.Push(context.Background(), path, "oci://"+host+"/sensor:2.0.0", plain); err != nil {
		t.Fatal(err)
	}
	out, _ = pullFile(t, "oci://"+host+"/sensor:2.0.0")
	if _, err := testutil.VerifyFile(t, out, 1, alice); err != nil {
		t.Fatal(err)
	}
}

// TestPushReferrers uses go-containerregistry's in-memory registry with
// the referrers API on: signatures go there as OCI 1.1 referrers too.
func TestPushReferrers(t *testing.T) {
	srv := httptest.NewServer(ggcr.New(ggcr.WithReferrersSupport(true), ggcr.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	alice, bob := testutil.NewKey(t, "alice"), testutil.NewKey(t, "bob")
	path, d := testutil.MakeBundle(t, t.TempDir(), "gateway", "1.0.0", 10<<10, 0, alice, bob)
	res, err := registry.Push(context.Background(), path, "oci://"+host+"/gw", plain)
	if err != nil {
		t.Fatal(err)
	}
	if res.Referrers != registry.ReferrersPushed || res.Reference != "oci://"+host+"/gw:1.0.0" {
		t.Errorf("push: %+v", res)
	}
	repo := oci.NewRepository(host, "gw", oci.Options{PlainHTTP: true})
	// Unfiltered: the in-memory registry reports the config media type
	// as artifactType, not the manifest's artifactType.
	refs, err := repo.Referrers(context.Background(), d, "")
	if err != nil || len(refs) != 2 {
		t.Fatalf("referrers: %v %v", refs, err)
	}
	raw, _, err := repo.Manifest(context.Background(), refs[0].Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Subject struct{ Digest string } `json:"subject"`
	}
	if json.Unmarshal(raw, &m); m.Subject.Digest != d.String() {
		t.Errorf("referrer subject %s, want %s", m.Subject.Digest, d)
	}
	// Pushing again adds no referrer.
	if _, err := registry.Push(context.Background(), path, "oci://"+host+"/gw", plain); err != nil {
		t.Fatal(err)
	}
	if refs, _ := repo.Referrers(context.Background(), d, ""); len(refs) != 2 {
		t.Errorf("after a second push: %d referrers", len(refs))
	}
	out, pr := pullFile(t, "oci://"+host+"/gw:1.0.0")
	if pr.Signatures != 2 {
		t.Errorf("pulled %d signatures", pr.Signatures)
	}
	if _, err := testutil.VerifyFile(t, out, 2, alice, bob); err != nil {
		t.Error(err)
	}
}

// TestPullReferrerSignatures pulls a bundle whose signatures exist only as
// OCI 1.1 referrers (its cosign tag is gone), and one from a registry
// without the referrers API.
func TestPullReferrerSignatures(t *testing.T) {
	ctx := context.Background()
	srv := httptest.NewServer(ggcr.New(ggcr.WithReferrersSupport(true), ggcr.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	alice, bob := testutil.NewKey(t, "alice"), testutil.NewKey(t, "bob")
	path, d := testutil.MakeBundle(t, t.TempDir(), "gateway", "1.0.0", 10<<10, 0, alice, bob)
	if _, err := registry.Push(ctx, path, "oci://"+host+"/gw", plain); err != nil {
		t.Fatal(err)
	}
	// Tag and referrers hold the same two signatures: merged, not doubled.
	if _, pr := pullFile(t, "oci://"+host+"/gw:1.0.0"); pr.Signatures != 2 {
		t.Errorf("pulled %d signatures from tag and referrers, want 2", pr.Signatures)
	}
	sigTag, err := name.ParseReference(host+"/gw:"+bundle.SignatureTag(d), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Delete(sigTag); err != nil {
		t.Fatal(err)
	}
	repo := oci.NewRepository(host, "gw", oci.Options{PlainHTTP: true})
	if sigs, err := oci.FetchSignatures(ctx, repo, d); err != nil || len(sigs) != 0 {
		t.Fatalf("the cosign tag still answers: %d signatures, %v", len(sigs), err)
	}
	out, pr := pullFile(t, "oci://"+host+"/gw:1.0.0")
	if pr.Signatures != 2 {
		t.Errorf("pulled %d signatures from referrers alone, want 2", pr.Signatures)
	}
	if _, err := testutil.VerifyFile(t, out, 2, alice, bob); err != nil {
		t.Error(err)
	}

	// Without the referrers API (404), the tag alone serves.
	old := httptest.NewServer(ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0))))
	defer old.Close()
	oldHost := strings.TrimPrefix(old.URL, "http://")
	if _, err := oci.NewRepository(oldHost, "gw", oci.Options{PlainHTTP: true}).Referrers(ctx, d, ""); !errors.Is(err, oci.ErrReferrersUnsupported) {
		t.Fatalf("referrers on a registry without the API: %v", err)
	}
	if _, err := registry.Push(ctx, path, "oci://"+oldHost+"/gw", plain); err != nil {
		t.Fatal(err)
	}
	out, pr = pullFile(t, "oci://"+oldHost+"/gw:1.0.0")
	if pr.Signatures != 2 {
		t.Errorf("pulled %d signatures without referrers, want 2", pr.Signatures)
	}
	if _, err := testutil.VerifyFile(t, out, 2, alice, bob); err != nil {
		t.Error(err)
	}
}

// TestPushChunked: a chunked bundle (FORMAT.md §15) pushes its chunk index
// as a layer, not as a referrer (it is part of the payload, not a document
// about it), and the next version's push skips the packs the registry
// already holds.
func TestPushChunked(t *testing.T) {
	srv := httptest.NewServer(ggcr.New(ggcr.WithReferrersSupport(true), ggcr.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	alice := testutil.NewKey(t, "alice")
	v1 := make([]byte, 4<<20)
	_, _ = rand.NewChaCha8([32]byte{5}).Read(v1)
	v2 := bytes.Clone(v1)
	copy(v2[3<<20:], bytes.Repeat([]byte("v2"), 5000))
	var digests []digest.Digest
	for i, content := range [][]byte{v1, v2} {
		path, d := testutil.MakeChunkedBundle(t, t.TempDir(), "gw", fmt.Sprintf("%d.0.0", i+1), content, alice)
		digests = append(digests, d)
		pr, err := registry.Push(context.Background(), path, "oci://"+host+"/gw", plain)
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 && (pr.BlobsPresent == 0 || pr.BlobsUploaded == 0) {
			t.Errorf("push of 2.0.0: %d blobs uploaded, %d present: want the unchanged packs skipped", pr.BlobsUploaded, pr.BlobsPresent)
		}
	}
	repo := oci.NewRepository(host, "gw", oci.Options{PlainHTTP: true})
	refs, err := repo.Referrers(context.Background(), digests[1], "")
	if err != nil || len(refs) != 1 {
		t.Fatalf("referrers %v, %v: want the signature only", refs, err)
	}
}
