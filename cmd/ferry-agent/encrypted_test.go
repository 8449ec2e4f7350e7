package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/audit"
	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/cliexit"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/mirror/server"
	"github.com/ferry-update/ferry/registry"
	"github.com/ferry-update/ferry/verify"
)

// TestEncryptedTravels: a bundle encrypted to three devices goes through
// Debian's docker-registry (ferry push), a mirror synced from it (served
// as 'ferry mirror serve' does) and a stick made from the mirror, and is
// the same bundle at every stop: manifest digest, ciphertext and age
// header unchanged. Each device installs it from one of them and gets the
// plaintext; a fourth device, not a recipient, refuses it from the stick.
func TestEncryptedTravels(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a registry")
	}
	devs, _ := ociDevices(t, "", 4)
	release := devs[0]
	var fleet []byte
	for i, dir := range devs {
		code, stdout, stderr := agentRun(dir, "identity", "--json")
		if code != cliexit.OK {
			t.Fatalf("identity: %s", stderr)
		}
		if i < 3 {
			fleet = append(fleet, stdout...)
		}
	}
	p := func(name string) string { return filepath.Join(release, name) }
	os.WriteFile(p("fleet.jsonl"), fleet, 0o644)
	if err := mkbundle([]string{"-o", p("enc.bundle"), "-version", "1.0.0", "-key", p("release.key"), "-rootfs", p("new.img"), "-encrypt-to-file", p("fleet.jsonl")}); err != nil {
		t.Fatal(err)
	}
	orig := head(t, p("enc.bundle"))
	if orig.Encryption().Recipients != 3 {
		t.Fatalf("encrypted to %d recipients", orig.Encryption().Recipients)
	}
	plain, _ := os.ReadFile(p("new.img"))
	if raw, _ := os.ReadFile(p("enc.bundle")); bytes.Contains(raw, plain[:200]) {
		t.Fatal("the bundle holds plaintext")
	}

	// Registry: push, and what comes back is the same bundle.
	addr := testutil.StartRegistry(t)
	ref := "oci://" + addr + "/factory/sim-os"
	if _, err := registry.Push(context.Background(), p("enc.bundle"), ref+":1.0.0", registry.Options{PlainHTTP: true}); err != nil {
		t.Fatal(err)
	}
	pulled := filepath.Join(t.TempDir(), "pulled.bundle")
	if _, err := registry.PullFile(context.Background(), ref+":1.0.0", pulled, registry.Options{PlainHTTP: true}); err != nil {
		t.Fatal(err)
	}
	sameBundle(t, "pulled from the registry", orig, head(t, pulled))
	if code, stdout, stderr := agentRun(devs[0], "install", ref+":1.0.0", "--plain-http"); code != cliexit.OK {
		t.Fatalf("install from the registry: exit %d\n%s%s", code, stdout, stderr)
	}
	checkInstalled(t, devs[0])

	// Mirror, synced from the registry, served over the OCI API.
	key, _ := os.ReadFile(p("release.key"))
	st, err := mirror.Init(filepath.Join(t.TempDir(), "mirror"), key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Sync(context.Background(), ref, mirror.SyncOptions{Registry: registry.Options{PlainHTTP: true}}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.NewOCI(st))
	defer srv.Close()
	mref := "oci://" + strings.TrimPrefix(srv.URL, "http://") + "/sim-os:1.0.0"
	if code, stdout, stderr := agentRun(devs[1], "install", mref, "--plain-http"); code != cliexit.OK {
		t.Fatalf("install from the mirror: exit %d\n%s%s", code, stdout, stderr)
	}
	checkInstalled(t, devs[1])

	// Stick: a ferry/ layout synced from the mirror.
	stickDir := t.TempDir()
	sst, err := mirror.Init(filepath.Join(stickDir, "ferry"), key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sst.Sync(context.Background(), st.Dir(), mirror.SyncOptions{}); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(stickDir, "ferry", "keys"))
	if code, stdout, stderr := agentRun(devs[2], "install", stickDir); code != cliexit.OK {
		t.Fatalf("install from the stick: exit %d\n%s%s", code, stdout, stderr)
	}
	checkInstalled(t, devs[2])

	// An audit of the registry and of the stick shows the encryption and
	// its recipients, with no key, and passes.
	pem, _ := os.ReadFile(p("release.pub"))
	pub, err := verify.ParsePublicKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{ref, stickDir} {
		src, err := audit.Open(target, audit.SourceOptions{Registry: registry.Options{PlainHTTP: true}})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := audit.Run(context.Background(), src, audit.Options{Keys: []*verify.PublicKey{pub}, Threshold: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Bundles) != 1 || !rep.OK() || rep.Bundles[0].Encryption == nil || rep.Bundles[0].Encryption.Recipients != 3 || len(rep.Bundles[0].Attachments) != 0 {
			t.Errorf("audit of %s: %+v", target, rep.Bundles)
		}
	}

	// Not a recipient: refused from the stick, nothing written.
	code, _, stderr := agentRun(devs[3], "install", stickDir)
	if code != cliexit.Refused || !strings.Contains(stderr, "not a recipient: the payloads are encrypted to 3 recipient(s)") {
		t.Fatalf("install by a stranger: exit %d\n%s", code, stderr)
	}
	if got, _ := os.ReadFile(filepath.Join(devs[3], "slot-b.img")); len(got) != 0 {
		t.Errorf("the stranger's slot b was written: %d bytes", len(got))
	}
}

// head reads a bundle file's head.
func head(t *testing.T, path string) *bundle.Reader {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	r, err := bundle.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// sameBundle checks that got is want: the manifest (so the config, the
// ciphertext's layer digests and the age header) and its signatures.
func sameBundle(t *testing.T, where string, want, got *bundle.Reader) {
	t.Helper()
	if got.ManifestDigest() != want.ManifestDigest() || len(got.Signatures()) != len(want.Signatures()) {
		t.Fatalf("%s: manifest %s with %d signature(s), want %s with %d", where, got.ManifestDigest(), len(got.Signatures()), want.ManifestDigest(), len(want.Signatures()))
	}
	if e := got.Encryption(); e == nil || e.Header != want.Encryption().Header || e.Recipients != 3 {
		t.Fatalf("%s: encryption %+v", where, e)
	}
}
