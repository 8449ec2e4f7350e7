package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/mirror/server"
	"github.com/ferry-update/ferry/transport/oci"
	"github.com/ferry-update/ferry/verify"
	"github.com/opencontainers/go-digest"
)

func newStore(t testing.TB) *mirror.Store {
	t.Helper()
	s, err := mirror.Init(filepath.Join(t.TempDir(), "mirror"), testutil.MirrorKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// servedStore is a store with two bundles behind a Server.
func servedStore(t *testing.T) (*mirror.Store, string, testutil.Key) {
	t.Helper()
	s := newStore(t)
	alice := testutil.NewKey(t, "alice")
	dir := t.TempDir()
	for _, v := range []string{"1.0.0", "1.1.0", "2.0.0"} {
		p, _ := testutil.MakeBundle(t, dir, "gateway", v, 100<<10, 32<<10, alice)
		if _, err := s.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(server.NewOCI(s))
	t.Cleanup(srv.Close)
	return s, strings.TrimPrefix(srv.URL, "http://"), alice
}

func TestServe(t *testing.T) {
	_, host, alice := servedStore(t)
	ctx := context.Background()
	repo := oci.NewRepository(host, "gateway", oci.Options{PlainHTTP: true})

	t.Run("oci.Open streams a bundle that verifies", func(t *testing.T) {
		rc, err := oci.Open(ctx, "oci://"+host+"/gateway:1.1.0", oci.Options{PlainHTTP: true})
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		rep, err := verify.Bundle(rc, verify.Policy{Keys: []*verify.PublicKey{alice.Pub}, Threshold: 1, Deep: true})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Config.Version != "1.1.0" {
			t.Errorf("got version %s", rep.Config.Version)
		}
	})
	t.Run("skopeo reads the mirror", func(t *testing.T) {
		raw := testutil.Skopeo(t, "inspect", "--raw", "--tls-verify=false", "docker://"+host+"/gateway:2.0.0")
		if !strings.Contains(string(raw), bundle.ArtifactType) {
			t.Errorf("skopeo inspect: %s", raw)
		}
		out := filepath.Join(t.TempDir(), "copy.tar")
		testutil.Skopeo(t, "copy", "--src-tls-verify=false", "docker://"+host+"/gateway:2.0.0", "oci-archive:"+out+":2.0.0")
		// skopeo's oci-archive of a bundle is close to a bundle, but its
		// member order is skopeo's: ferry reads it back through skopeo and
		// a registry, which TestSkopeoCopiedBundle covers.
	})
	t.Run("tags paginate", func(t *testing.T) {
		tags, err := repo.Tags(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(tags) != 6 { // three versions and three signature tags
			t.Errorf("tags: %v", tags)
		}
		resp := get(t, "http://"+host+"/v2/gateway/tags/list?n=2")
		var tl oci.TagList
		json.NewDecoder(resp.Body).Decode(&tl)
		link := resp.Header.Get("Link")
		if len(tl.Tags) != 2 || tl.Tags[0] != "1.0.0" || !strings.Contains(link, "last=1.1.0") {
			t.Errorf("page 1: %v, Link %q", tl.Tags, link)
		}
	})
	t.Run("referrers list the signatures", func(t *testing.T) {
		raw, _, err := repo.Manifest(ctx, "1.0.0")
		if err != nil {
			t.Fatal(err)
		}
		d := digest.FromBytes(raw)
		refs, err := repo.Referrers(ctx, d, oci.CosignSignatureArtifactType)
		if err != nil || len(refs) != 1 {
			t.Fatalf("referrers: %v %v", refs, err)
		}
		if refs, _ := repo.Referrers(ctx, d, "application/other"); len(refs) != 0 {
			t.Errorf("filtered referrers: %v", refs)
		}
	})
	t.Run("errors", func(t *testing.T) {
		tests := []struct {
			method, path string
			status       int
			code         string
		}{
			{"GET", "/v2/nope/tags/list", 404, "NAME_UNKNOWN"},
			{"GET", "/v2/gateway/manifests/9.9.9", 404, "MANIFEST_UNKNOWN"},
			{"GET", "/v2/gateway/manifests/sha256:" + strings.Repeat("0", 64), 404, "MANIFEST_UNKNOWN"},
			{"HEAD", "/v2/gateway/blobs/sha256:" + strings.Repeat("0", 64), 404, ""},
			{"GET", "/v2/gateway/blobs/sha256:" + strings.Repeat("0", 64), 404, "BLOB_UNKNOWN"},
			{"GET", "/v2/gateway/blobs/sha256:xyz", 400, "DIGEST_INVALID"},
			{"PUT", "/v2/gateway/manifests/3.0.0", 405, "UNSUPPORTED"},
			{"POST", "/v2/gateway/blobs/uploads/", 405, "UNSUPPORTED"},
			{"DELETE", "/v2/gateway/manifests/1.0.0", 405, "UNSUPPORTED"},
			{"GET", "/v2/gateway/tags/list?n=x", 400, "PAGINATION_NUMBER_INVALID"},
			{"GET", "/v2/", 200, ""},
		}
		for _, tt := range tests {
			req, _ := http.NewRequest(tt.method, "http://"+host+tt.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.code) {
				t.Errorf("%s %s: %d %s, want %d %s", tt.method, tt.path, resp.StatusCode, body, tt.status, tt.code)
			}
		}
	})
	t.Run("manifest headers and blob ranges", func(t *testing.T) {
		req, _ := http.NewRequest("HEAD", "http://"+host+"/v2/gateway/manifests/1.0.0", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("Content-Type") != bundle.ManifestMediaType || !strings.HasPrefix(resp.Header.Get("Docker-Content-Digest"), "sha256:") || resp.ContentLength <= 0 {
			t.Errorf("HEAD manifest: %v", resp.Header)
		}
		raw, _, _ := repo.Manifest(ctx, "1.0.0")
		m, _ := oci.ParseManifest(raw, "")
		l := m.Layers[0]
		req, _ = http.NewRequest("GET", "http://"+host+"/v2/gateway/blobs/"+l.Digest.String(), nil)
		req.Header.Set("Range", "bytes=10-19")
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusPartialContent || len(b) != 10 {
			t.Errorf("range: %d, %d bytes", resp.StatusCode, len(b))
		}
	})
}

func get(t *testing.T, u string) *http.Response {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}
