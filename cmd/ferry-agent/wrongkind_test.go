package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/internal/cliexit"
)

// TestInstallWrongKind: what is not a bundle is named as what it is, with
// what to pass instead, and nothing is installed: a stick image (install
// takes the mounted stick's directory), a mirror's address given as an
// http:// URL (oci:// it is), a public key. An http:// URL that serves a
// bundle still installs.
func TestInstallWrongKind(t *testing.T) {
	dir, bundlePath := ociDevice(t, "")
	stickImg := filepath.Join(dir, "stick.img")
	gpt := make([]byte, 1<<20)
	gpt[510], gpt[511] = 0x55, 0xAA
	copy(gpt[512:], "EFI PART")
	if err := os.WriteFile(stickImg, gpt, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/new.bundle" {
			http.ServeFile(w, r, bundlePath)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<!doctype html>\n<html><body>ferry mirror</body></html>\n"))
	}))
	defer srv.Close()

	for _, tc := range []struct {
		source, err, hint string
	}{
		{stickImg, "this is a GPT disk image (such as a ferry stick image), not a ferry bundle", "mount the stick and give ferry-agent install the mount directory"},
		{srv.URL + "/", "the URL served an HTML page, not a ferry bundle", "use oci://HOST[:PORT]/REPO:TAG"},
		{filepath.Join(dir, "release.pub"), "this is a PEM public key, not a ferry bundle", "trust material goes with --trust or --key"},
	} {
		code, _, stderr := agentRun(dir, "install", tc.source)
		if code == cliexit.OK || !strings.Contains(stderr, "ferry-agent: error: ") || !strings.Contains(stderr, tc.err) || !strings.Contains(stderr, "ferry-agent: hint: ") || !strings.Contains(stderr, tc.hint) {
			t.Errorf("install %s: exit %d, stderr:\n%s", tc.source, code, stderr)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "slot-b.img")); len(b) != 0 {
			t.Fatalf("install %s wrote slot b", tc.source)
		}
	}
	code, stdout, stderr := agentRun(dir, "install", srv.URL+"/new.bundle")
	if code != cliexit.OK {
		t.Fatalf("install from an http URL of a bundle: exit %d\n%s%s", code, stdout, stderr)
	}
	checkInstalled(t, dir)
}
