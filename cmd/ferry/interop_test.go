package main

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/testtool"
)

// TestSkopeoInterop checks the promise that a bundle is an ordinary
// oci-archive: the real skopeo reads our manifest byte for byte and copies
// every blob (manifest, config, payload parts, signatures) intact.
func TestSkopeoInterop(t *testing.T) {
	skopeo := testtool.Require(t, "skopeo", "skopeo")
	dir := t.TempDir()
	ferry := func(args ...string) {
		t.Helper()
		var stderr strings.Builder
		if code := run(args, strings.NewReader(""), new(strings.Builder), &stderr); code != 0 {
			t.Fatalf("ferry %s: exit %d\n%s", strings.Join(args, " "), code, &stderr)
		}
	}
	img := filepath.Join(dir, "rootfs.img")
	data := make([]byte, 300<<10)
	_, _ = rand.NewChaCha8([32]byte{42}).Read(data)
	if err := os.WriteFile(img, data, 0o644); err != nil {
		t.Fatal(err)
	}
	ferry("key", "generate", "-o", filepath.Join(dir, "release"))
	ferry("key", "generate", "-o", filepath.Join(dir, "qa"))
	file := filepath.Join(dir, "b.ferry")
	ferry("bundle", "create", img, "-d", "board-a", "-V", "1.0.0+build.3", "-o", file,
		"--part-size", "128KiB", "--key", filepath.Join(dir, "release.key"))
	ferry("bundle", "sign", file, "--key", filepath.Join(dir, "qa.key"))

	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	r, err := bundle.NewReader(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	tag := r.Config().Tag()
	if tag != "1.0.0_build.3" {
		t.Fatalf("tag %q, want the version with '+' as '_'", tag)
	}
	if n := len(r.Manifest().Layers); n != 3 {
		t.Fatalf("%d payload parts, want 3", n)
	}
	members, err := parseBundleFile(file)
	if err != nil {
		t.Fatal(err)
	}

	skopeoOut := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(skopeo, append([]string{"--insecure-policy"}, args...)...)
		cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, &stderr)
		}
		return out
	}

	t.Run("inspect", func(t *testing.T) {
		raw := skopeoOut("inspect", "--raw", "oci-archive:"+file+":"+tag)
		if !bytes.Equal(raw, r.RawManifest()) {
			t.Errorf("skopeo inspect --raw returned\n%s\nwant our manifest\n%s", raw, r.RawManifest())
		}
		if got := digest.FromBytes(raw); got != r.ManifestDigest() {
			t.Errorf("manifest digest via skopeo %s, want %s", got, r.ManifestDigest())
		}
	})

	// checkCopied compares what skopeo wrote into an OCI layout directory
	// with the bundle's own members: the manifest under refName and every
	// blob it names, byte for byte.
	checkCopied := func(t *testing.T, layout, refName string, want digest.Digest) {
		t.Helper()
		var idx ocispec.Index
		b, err := os.ReadFile(filepath.Join(layout, "index.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &idx); err != nil {
			t.Fatal(err)
		}
		var got digest.Digest
		for _, d := range idx.Manifests {
			if d.Annotations[ocispec.AnnotationRefName] == refName {
				got = d.Digest
			}
		}
		if got != want {
			t.Fatalf("%s in the copy is %q, want %s", refName, got, want)
		}
		var m ocispec.Manifest
		if err := members.decode(want, &m); err != nil {
			t.Fatal(err)
		}
		blobs := append([]ocispec.Descriptor{{Digest: want}, m.Config}, m.Layers...)
		for _, d := range blobs {
			copied, err := os.ReadFile(filepath.Join(layout, "blobs", "sha256", d.Digest.Encoded()))
			if err != nil {
				t.Errorf("blob %s was not copied: %v", d.Digest, err)
				continue
			}
			if digest.FromBytes(copied) != d.Digest {
				t.Errorf("copied blob %s hashes to %s", d.Digest, digest.FromBytes(copied))
			}
			if !bytes.Equal(copied, members.member(blobPath(d.Digest)).data) {
				t.Errorf("copied blob %s differs from the bundle's member", d.Digest)
			}
		}
	}

	layout := filepath.Join(t.TempDir(), "layout")
	t.Run("copy", func(t *testing.T) {
		skopeoOut("copy", "--quiet", "oci-archive:"+file+":"+tag, "oci:"+layout+":copied")
		checkCopied(t, layout, "copied", r.ManifestDigest())
	})

	// The signatures travel the same way, under cosign's tag.
	t.Run("copy signatures", func(t *testing.T) {
		sigTag := bundle.SignatureTag(r.ManifestDigest())
		skopeoOut("copy", "--quiet", "oci-archive:"+file+":"+sigTag, "oci:"+layout+":"+sigTag)
		checkCopied(t, layout, sigTag, r.Index().Manifests[1].Digest)
		var m ocispec.Manifest
		if err := members.decode(r.Index().Manifests[1].Digest, &m); err != nil {
			t.Fatal(err)
		}
		if len(m.Layers) != 2 {
			t.Errorf("signature manifest has %d layers, want one per signature (2)", len(m.Layers))
		}
	})
}
