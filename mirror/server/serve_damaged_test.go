package server_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/mirror/server"
)

// TestServeDamagedManifest: one manifest blob rotting on the mirror's disk
// must not take the whole mirror down. That bundle answers with the reason;
// every other bundle is still served.
func TestServeDamagedManifest(t *testing.T) {
	s := newStore(t)
	dir := t.TempDir()
	key := testutil.NewKey(t, "release")
	good, _ := testutil.MakeBundle(t, dir, "gateway", "1.0.0", 4096, 0, key)
	bad, badDigest := testutil.MakeBundle(t, dir, "sensor", "2.0.0", 4096, 0, key)
	for _, p := range []string{good, bad} {
		if _, err := s.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	blob := filepath.Join(s.Dir(), "blobs", "sha256", badDigest.Encoded())
	raw, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0x01
	if err := os.WriteFile(blob, raw, 0o644); err != nil {
		t.Fatal(err)
	}

	srv := httptest.NewServer(server.NewOCI(s))
	defer srv.Close()
	get := func(path string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tests := []struct {
		path     string
		wantCode int
		wantBody string
	}{
		{"/v2/gateway/manifests/1.0.0", http.StatusOK, `"artifactType":"application/vnd.ferry.bundle.v1"`},
		{"/v2/sensor/manifests/2.0.0", http.StatusInternalServerError, "damaged on the mirror's disk"},
		{"/v2/sensor/manifests/" + badDigest.String(), http.StatusInternalServerError, "damaged on the mirror's disk"},
		{"/v2/gateway/tags/list", http.StatusOK, `"1.0.0"`},
	}
	for _, tt := range tests {
		code, body := get(tt.path)
		if code != tt.wantCode || !strings.Contains(body, tt.wantBody) {
			t.Errorf("GET %s: %d %q, want %d containing %q", tt.path, code, body, tt.wantCode, tt.wantBody)
		}
	}
}
