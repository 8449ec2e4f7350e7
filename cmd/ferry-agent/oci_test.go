package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/cliexit"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/mirror/server"
	"github.com/ferry-update/ferry/registry"
)

const ociConfig = `device_type = "sim-board"
state_dir = "state"
reboot_command = "touch %s/rebooted"
[trust]
keys = ["release.pub"]
[slots.rootfs]
a = "slot-a.img"
b = "slot-b.img"
[boot]
backend = "file"
path = "bootenv"
cmdline = "none"
`

// ociDevice makes a simulated device and a signed bundle sim-os 1.0.0,
// and returns the directory and the bundle's path.
func ociDevice(t *testing.T, extraConfig string) (dir, bundlePath string) {
	dir = t.TempDir()
	for name, content := range map[string]string{
		"agent.toml": fmt.Sprintf(ociConfig, dir) + extraConfig,
		"bootenv":    "ferry_slot=a\n",
		"slot-a.img": "factory\n",
		"slot-b.img": "",
		"new.img":    "system 1.0.0\n" + strings.Repeat("a block of the root filesystem\n", 50000),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	if err := mkkey([]string{p("release")}); err != nil {
		t.Fatal(err)
	}
	if err := mkbundle([]string{"-o", p("new.bundle"), "-version", "1.0.0", "-key", p("release.key"), "-rootfs", p("new.img")}); err != nil {
		t.Fatal(err)
	}
	return dir, filepath.Join(dir, "new.bundle")
}

// ociDevices makes n simulated devices (ociDevice) that all trust the
// first one's release key, and returns their directories and the first
// one's bundle.
func ociDevices(t *testing.T, extraConfig string, n int) (dirs []string, bundlePath string) {
	t.Helper()
	first, bundlePath := ociDevice(t, extraConfig)
	dirs = []string{first}
	for range n - 1 {
		d, _ := ociDevice(t, extraConfig)
		for _, f := range []string{"release.pub", "release.key"} {
			b, err := os.ReadFile(filepath.Join(first, f))
			if err == nil {
				err = os.WriteFile(filepath.Join(d, f), b, 0o600)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		dirs = append(dirs, d)
	}
	return dirs, bundlePath
}

// agentRun runs ferry-agent in-process with dir's configuration.
func agentRun(dir string, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(append([]string{"-c", filepath.Join(dir, "agent.toml")}, args...), nil, &out, &errb, nil)
	return code, out.String(), errb.String()
}

func checkInstalled(t *testing.T, dir string) {
	t.Helper()
	want, _ := os.ReadFile(filepath.Join(dir, "new.img"))
	if got, _ := os.ReadFile(filepath.Join(dir, "slot-b.img")); !bytes.Equal(got, want) {
		t.Errorf("slot b holds %d bytes, want the %d of new.img", len(got), len(want))
	}
	if _, err := os.Stat(filepath.Join(dir, "rebooted")); err != nil {
		t.Error("the reboot command did not run")
	}
}

// TestInstallFromMirror installs from a ferry mirror (the code of
// `ferry mirror serve`) by tag, and by digest with plain_http set in the
// configuration.
func TestInstallFromMirror(t *testing.T) {
	dir, bundlePath := ociDevice(t, "")
	key, err := os.ReadFile(filepath.Join(dir, "release.key"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := mirror.Init(filepath.Join(t.TempDir(), "mirror"), key)
	if err != nil {
		t.Fatal(err)
	}
	added, err := st.Add(bundlePath)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.NewOCI(st))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	ref := "oci://" + host + "/sim-os:1.0.0"
	code, _, stderr := agentRun(dir, "install", ref)
	if code != cliexit.Failure || !strings.Contains(stderr, "hint: the registry speaks plain http: add --plain-http") {
		t.Fatalf("install over https from an http mirror: exit %d\n%s", code, stderr)
	}
	code, stdout, stderr := agentRun(dir, "install", ref, "--plain-http")
	if code != cliexit.OK || !strings.Contains(stdout, "installed sim-os 1.0.0 into slot b") {
		t.Fatalf("install %s: exit %d\n%s%s", ref, code, stdout, stderr)
	}
	checkInstalled(t, dir)
	_, status, _ := agentRun(dir, "status")
	if !strings.Contains(status, "from "+ref) {
		t.Errorf("status does not name the source:\n%s", status)
	}

	// Again, by digest, from a fresh device configured for plain http.
	dir2, _ := ociDevice(t, "[source]\nplain_http = true\n")
	pub, err := os.ReadFile(filepath.Join(dir, "release.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir2, "release.pub"), pub, 0o644); err != nil {
		t.Fatal(err)
	}
	ref = fmt.Sprintf("oci://%s/sim-os@%s", host, added.Digest)
	if code, stdout, stderr := agentRun(dir2, "install", ref); code != cliexit.OK {
		t.Fatalf("install %s: exit %d\n%s%s", ref, code, stdout, stderr)
	}
	// An unknown tag is Open's error, before anything is journaled.
	if code, _, stderr := agentRun(dir2, "install", "oci://"+host+"/sim-os:9.9.9"); code != cliexit.Failure || !strings.Contains(stderr, "no such tag") {
		t.Errorf("unknown tag: exit %d\n%s", code, stderr)
	}
}

// TestInstallFromRegistry installs what `ferry push` put into Debian's
// docker-registry (skipped when it is not installed).
func TestInstallFromRegistry(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a registry")
	}
	dir, bundlePath := ociDevice(t, "")
	addr := testutil.StartRegistry(t)
	ref := "oci://" + addr + "/factory/sim-os:1.0.0"
	if _, err := registry.Push(context.Background(), bundlePath, ref, registry.Options{PlainHTTP: true}); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := agentRun(dir, "install", ref, "--plain-http"); code != cliexit.OK {
		t.Fatalf("install %s: exit %d\n%s%s", ref, code, stdout, stderr)
	}
	checkInstalled(t, dir)
}

// TestInstallCorruptMirrorBlob: a payload blob that rotted on the mirror's
// disk (a flipped byte, same size) reaches the device through an honest
// server; the agent refuses it and nothing is activated.
func TestInstallCorruptMirrorBlob(t *testing.T) {
	dir, bundlePath := ociDevice(t, "")
	key, err := os.ReadFile(filepath.Join(dir, "release.key"))
	if err != nil {
		t.Fatal(err)
	}
	mdir := filepath.Join(t.TempDir(), "mirror")
	st, err := mirror.Init(mdir, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Add(bundlePath); err != nil {
		t.Fatal(err)
	}
	a, err := bundle.OpenArchive(bundlePath)
	if err != nil {
		t.Fatal(err)
	}
	part := a.Manifest().Layers[0].Digest
	a.Close()
	biggest := filepath.Join(mdir, "blobs", "sha256", part.Encoded())
	data, err := os.ReadFile(biggest)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x20
	if err := os.WriteFile(biggest, data, 0o644); err != nil {
		t.Fatal(err)
	}
	envBefore, _ := os.ReadFile(filepath.Join(dir, "bootenv"))
	srv := httptest.NewServer(server.NewOCI(st))
	defer srv.Close()
	ref := "oci://" + strings.TrimPrefix(srv.URL, "http://") + "/sim-os:1.0.0"
	code, stdout, stderr := agentRun(dir, "install", ref, "--plain-http")
	if code != cliexit.Refused || !strings.Contains(stderr, "digest mismatch") {
		t.Fatalf("install of a rotted blob: exit %d, want %d\n%s%s", code, cliexit.Refused, stdout, stderr)
	}
	if envAfter, _ := os.ReadFile(filepath.Join(dir, "bootenv")); !bytes.Equal(envBefore, envAfter) {
		t.Errorf("boot env changed:\n%s\nwas\n%s", envAfter, envBefore)
	}
	if _, err := os.Stat(filepath.Join(dir, "rebooted")); err == nil {
		t.Error("the agent rebooted after a refused install")
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "slot-a.img")); string(got) != "factory\n" {
		t.Errorf("the running slot changed: %q", got)
	}
}
