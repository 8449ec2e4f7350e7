package oci_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/transport/oci"
)

func TestParseReference(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	tests := []struct {
		in                    string
		host, repo, tag, dgst string
		wantErr               string
	}{
		{in: "oci://127.0.0.1:5000/gw:1.0.0", host: "127.0.0.1:5000", repo: "gw", tag: "1.0.0"},
		{in: "oci://reg.example.com/factory/line-2/gw", host: "reg.example.com", repo: "factory/line-2/gw"},
		{in: "oci://localhost:5000/gw@" + d, host: "localhost:5000", repo: "gw", dgst: d},
		{in: "oci://localhost:5000/gw:1.0.0@" + d, host: "localhost:5000", repo: "gw", tag: "1.0.0", dgst: d},
		{in: "oci://[::1]:5000/gw:1.0.0_build.7", host: "[::1]:5000", repo: "gw", tag: "1.0.0_build.7"},
		{in: "docker://h/gw", wantErr: "want oci://"},
		{in: "oci://h", wantErr: "repository after the host"},
		{in: "oci://h/", wantErr: "repository after the host"},
		{in: "oci://h/Gw:1", wantErr: "invalid repository name"},
		{in: "oci://h/gw:1+2", wantErr: "invalid tag"},
		{in: "oci://h/gw@sha256:12", wantErr: "digest"},
		{in: "oci://h!/gw", wantErr: "invalid registry host"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, err := oci.ParseReference(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Host != tt.host || r.Repository != tt.repo || r.Tag != tt.tag || string(r.Digest) != tt.dgst {
				t.Errorf("got %+v", r)
			}
			if r.String() != tt.in {
				t.Errorf("String() = %s", r.String())
			}
		})
	}
}

// fakeRegistry serves one blob and one manifest, behind an auth scheme.
type fakeRegistry struct {
	blob     []byte
	manifest []byte
	auth     string // "", "bearer", "basic"
	tokens   atomic.Int32
	breakAt  int64 // cut the first blob response after this many bytes
	cuts     atomic.Int32
	ranges   []string
}

func (f *fakeRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/token":
		f.tokens.Add(1)
		if u, p, ok := r.BasicAuth(); f.auth == "bearer-cred" && (!ok || u != "alice" || p != "pw") {
			http.Error(w, "bad credentials", http.StatusUnauthorized)
			return
		}
		if r.URL.Query().Get("scope") != "repository:fleet/gw:pull" || r.URL.Query().Get("service") != "fake" {
			http.Error(w, "bad scope "+r.URL.RawQuery, http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, `{"token":"tok123"}`)
		return
	}
	switch f.auth {
	case "bearer", "bearer-cred":
		if r.Header.Get("Authorization") != "Bearer tok123" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="http://`+r.Host+`/token",service="fake",scope="repository:fleet/gw:pull"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
	case "basic":
		if u, p, ok := r.BasicAuth(); !ok || u != "alice" || p != "pw" {
			w.Header().Set("WWW-Authenticate", `Basic realm="fake"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
	}
	switch {
	case strings.HasSuffix(r.URL.Path, "/manifests/1.0.0"):
		w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
		w.Write(f.manifest)
	case strings.Contains(r.URL.Path, "/blobs/"):
		if rg := r.Header.Get("Range"); rg != "" {
			f.ranges = append(f.ranges, rg)
		}
		if f.breakAt > 0 && f.cuts.Add(1) == 1 {
			w.Header().Set("Content-Length", fmt.Sprint(len(f.blob)))
			w.Write(f.blob[:f.breakAt])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		http.ServeContent(w, r, "", zeroTime, bytes.NewReader(f.blob))
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"nope"}]}`)
	}
}

func TestAuthAndResume(t *testing.T) {
	blob := bytes.Repeat([]byte("ferry!"), 50000)
	sum := sha256.Sum256(blob)
	d := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.Digest("sha256:" + hex.EncodeToString(sum[:])), Size: int64(len(blob))}
	creds := func(host string) (oci.Credential, bool) {
		return oci.Credential{Username: "alice", Password: "pw"}, true
	}
	tests := []struct {
		name    string
		auth    string
		creds   bool
		breakAt int64
		wantErr string
	}{
		{name: "anonymous", auth: ""},
		{name: "anonymous bearer token", auth: "bearer"},
		{name: "bearer token with credentials", auth: "bearer-cred", creds: true},
		{name: "bearer token, credentials missing", auth: "bearer-cred", wantErr: "Unauthorized"},
		{name: "basic", auth: "basic", creds: true},
		{name: "basic without credentials", auth: "basic", wantErr: "wants a user name and password"},
		{name: "resume a cut download", breakAt: 100000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeRegistry{blob: blob, manifest: []byte(`{"schemaVersion":2}`), auth: tt.auth, breakAt: tt.breakAt}
			srv := httptest.NewServer(f)
			defer srv.Close()
			opts := oci.Options{PlainHTTP: true}
			if tt.creds {
				opts.Credentials = creds
			}
			repo := oci.NewRepository(strings.TrimPrefix(srv.URL, "http://"), "fleet/gw", opts)
			rc, err := repo.Blob(context.Background(), d)
			var got []byte
			if err == nil {
				got, err = io.ReadAll(rc)
				rc.Close()
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, blob) {
				t.Fatalf("got %d bytes, want %d", len(got), len(blob))
			}
			if tt.breakAt > 0 && (len(f.ranges) != 1 || f.ranges[0] != fmt.Sprintf("bytes=%d-", tt.breakAt)) {
				t.Errorf("range requests %q", f.ranges)
			}
			// The token is reused: a second request asks for none.
			before := f.tokens.Load()
			if _, _, err := repo.Manifest(context.Background(), "1.0.0"); err != nil {
				t.Fatal(err)
			}
			if f.tokens.Load() != before {
				t.Error("a second request fetched another token")
			}
			_, _, err = repo.Manifest(context.Background(), "2.0.0")
			var oe *oci.Error
			if !errors.Is(err, oci.ErrNotFound) || !errors.As(err, &oe) || oe.Code != "MANIFEST_UNKNOWN" {
				t.Errorf("missing manifest: %v", err)
			}
		})
	}
}

func TestManifestDigestChecked(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"schemaVersion":2}`))
	}))
	defer srv.Close()
	repo := oci.NewRepository(strings.TrimPrefix(srv.URL, "http://"), "gw", oci.Options{PlainHTTP: true})
	_, _, err := repo.Manifest(context.Background(), "sha256:"+strings.Repeat("0", 64))
	if err == nil || !strings.Contains(err.Error(), "content digest") {
		t.Fatalf("a manifest that does not match its digest: %v", err)
	}
}

var zeroTime time.Time
