package mirror_test

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/testtool"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/verify"
)

// makeBundle writes a bundle of one payload of size bytes, signed by
// signers, and returns its path and manifest digest.
func makeBundle(t testing.TB, dir, name, version string, size int, partSize int64, signers ...testutil.Key) (string, digest.Digest) {
	t.Helper()
	content := make([]byte, size)
	r := rand.New(rand.NewPCG(uint64(size), 7))
	for i := range content {
		content[i] = byte(r.Uint32())
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%s.ferry", name, version))
	res, err := bundle.Create(path, bundle.Options{
		Name: name, Version: version, DeviceTypes: []string{"board-a"},
		Created: time.Unix(1700000000, 0), PartSize: partSize,
		Sign: testutil.SignWith(name, time.Unix(1700000000, 0), signers...),
	}, bundle.Source{Name: "rootfs", Type: bundle.Rootfs, Content: bytes.NewReader(content)})
	if err != nil {
		t.Fatal(err)
	}
	return path, res.ManifestDigest
}

// signBundle adds a signature by s to the bundle at path.
func signBundle(t testing.TB, path string, s testutil.Key) {
	t.Helper()
	_, err := bundle.AddSignatures(path, func(h *bundle.Reader) ([]bundle.Signature, error) {
		sig, err := s.Signer.Sign(h.ManifestDigest(), h.Config().Name, time.Unix(1700000001, 0))
		return []bundle.Signature{sig}, err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// verifyFile checks a bundle file against keys and threshold.
func verifyFile(t testing.TB, path string, threshold int, keys ...testutil.Key) (*verify.Report, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var pubs []*verify.PublicKey
	for _, k := range keys {
		pubs = append(pubs, k.Pub)
	}
	return verify.Bundle(f, verify.Policy{Keys: pubs, Threshold: threshold})
}

func skopeo(t testing.TB, args ...string) []byte {
	t.Helper()
	testtool.Require(t, "skopeo", "skopeo")
	cmd := exec.Command("skopeo", append([]string{"--insecure-policy"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("skopeo %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

func nopLogger() *log.Logger { return log.New(io.Discard, "", 0) }

func digestOf(b []byte) digest.Digest { return digest.FromBytes(b) }

// pushImage pushes a small random container image to ref (HOST/REPO:TAG).
func pushImage(t testing.TB, ref string) {
	t.Helper()
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
}

// forward passes a request on to host.
func forward(t testing.TB, w http.ResponseWriter, r *http.Request, host string) {
	httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: host}).ServeHTTP(w, r)
}
