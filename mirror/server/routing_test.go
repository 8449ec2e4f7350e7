package server_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/mirror/server"
	"github.com/ferry-update/ferry/transport/wire"
)

// routingSeeds are paths a client may send to any of the mirror's
// handlers: empty names, traversal, encoded slashes, very long names.
var routingSeeds = []string{
	"/", "/tuf/", "/tuf", "/tuf//", "/tuf/..", "/tuf/../keys/mirror.key", "/tuf/%2e%2e/keys/mirror.key",
	"/tuf/..%2fkeys%2fmirror.key", "/tuf/1.", "/tuf/0.root.json", "/tuf/timestamp.json/", "/tuf/\x00",
	"/ferry/v1/roots/", "/ferry/v1/roots/..", "/ferry/v1/roots/%2f", "/ferry/v1/roots/1.root.json/x",
	"/ferry/v1/checkin/", "/ferry/v1/checkin/..",
	"/v2", "/v2/", "/v2//", "/v2/..", "/v2/../tuf/root.json", "/v2/a/manifests/", "/v2/a/blobs/", "/v2/a/referrers/",
	"/v2/a/tags/list", "/v2//tags/list", "/v2/a%2fb/manifests/x", "/v2/a/manifests/..", "/v2/a/blobs/sha256:",
	"/v2/a/blobs/sha256:..%2f..", "/v2/" + strings.Repeat("a", 70000) + "/manifests/x",
	"/tuf/" + strings.Repeat("1", 70000) + ".root.json", "/ferry/v1/roots/" + strings.Repeat("9", 5000) + ".root.json",
}

// FuzzRouting: no path, method or query makes a handler panic, nothing
// outside the served files is ever answered (the mirror's keys are never
// sent), and every answer is a well-formed HTTP status.
func FuzzRouting(f *testing.F) {
	for _, p := range routingSeeds {
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodDelete} {
			f.Add(m, p)
		}
	}
	s := newStore(f)
	d, err := devices.OpenDir(s.Dir())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { d.Close() })
	h := server.NewHandler(s, server.HandlerOptions{Devices: d, AcceptLegacy: true})
	f.Fuzz(func(t *testing.T, method, path string) {
		if method == "" || strings.ContainsAny(method, " \t\r\n()<>@,;:\\\"/[]?={}") {
			method = http.MethodGet
		}
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Method = method
		req.URL.Path = path
		req.URL.RawPath = ""
		req.RequestURI = path
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code < 200 || w.Code > 599 {
			t.Fatalf("%s %q: status %d", method, path, w.Code)
		}
		if strings.Contains(w.Body.String(), "PRIVATE KEY") {
			t.Fatalf("%s %q: sent a private key", method, path)
		}
		if w.Code == http.StatusOK && !strings.HasPrefix(path, "/tuf/") && !strings.HasPrefix(path, "/v2") && !strings.HasPrefix(path, wire.RootsPath) {
			t.Fatalf("%s %q: 200 outside the served trees", method, path)
		}
	})
}

// TestRoutingOddNames: every handler answers an empty, traversing,
// encoded or very long name with a client error, never a panic or a file
// from outside its tree.
func TestRoutingOddNames(t *testing.T) {
	s := newStore(t)
	d, err := devices.OpenDir(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	srv := httptest.NewServer(server.NewHandler(s, server.HandlerOptions{Devices: d, AcceptLegacy: true}))
	t.Cleanup(srv.Close)
	for _, p := range routingSeeds {
		if strings.ContainsRune(p, 0) {
			continue // not sendable on the wire
		}
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			req, err := http.NewRequest(m, srv.URL+p, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Errorf("%s %.80s: %v", m, p, err)
				continue
			}
			resp.Body.Close()
			if p == "/v2" || p == "/v2/" {
				if resp.StatusCode != http.StatusOK {
					t.Errorf("%s %s: %s", m, p, resp.Status)
				}
				continue
			}
			if resp.StatusCode < 300 || resp.StatusCode >= 500 {
				t.Errorf("%s %.80s: %s, want a 3xx or 4xx", m, p, resp.Status)
			}
		}
	}
}
