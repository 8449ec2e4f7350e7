package testutil

import (
	"bytes"
	"fmt"
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
	"github.com/ferry-update/ferry/verify"
)

// MakeBundle writes a bundle of one payload of size bytes, signed by
// signers, and returns its path and manifest digest.
func MakeBundle(t testing.TB, dir, name, version string, size int, partSize int64, signers ...Key) (string, digest.Digest) {
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
		Sign: SignWith(name, time.Unix(1700000000, 0), signers...),
	}, bundle.Source{Name: "rootfs", Type: bundle.Rootfs, Content: bytes.NewReader(content)})
	if err != nil {
		t.Fatal(err)
	}
	return path, res.ManifestDigest
}

// MakeChunkedBundle writes a chunked bundle (bundle/FORMAT.md §15, the
// smallest chunks) of content as its rootfs payload, signed by signers,
// and returns its path and manifest digest.
func MakeChunkedBundle(t testing.TB, dir, name, version string, content []byte, signers ...Key) (string, digest.Digest) {
	t.Helper()
	path := filepath.Join(dir, fmt.Sprintf("%s-%s.ferry", name, version))
	res, err := bundle.Create(path, bundle.Options{
		Name: name, Version: version, DeviceTypes: []string{"board-a"}, Created: time.Unix(1700000000, 0),
		Sign: SignWith(name, time.Unix(1700000000, 0), signers...), ChunkAvgBits: bundle.MinChunkAvgBits,
	}, bundle.Source{Name: "rootfs", Type: bundle.Rootfs, Content: bytes.NewReader(content), Size: int64(len(content))})
	if err != nil {
		t.Fatal(err)
	}
	return path, res.ManifestDigest
}

// SignBundle adds a signature by s to the bundle at path.
func SignBundle(t testing.TB, path string, s Key) {
	t.Helper()
	_, err := bundle.AddSignatures(path, func(h *bundle.Reader) ([]bundle.Signature, error) {
		sig, err := s.Signer.Sign(h.ManifestDigest(), h.Config().Name, time.Unix(1700000001, 0))
		return []bundle.Signature{sig}, err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// VerifyFile checks a bundle file against keys and threshold.
func VerifyFile(t testing.TB, path string, threshold int, keys ...Key) (*verify.Report, error) {
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

// Skopeo runs skopeo (which must be installed) and returns its stdout.
func Skopeo(t testing.TB, args ...string) []byte {
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

// PushImage pushes a small random container image to ref (HOST/REPO:TAG).
func PushImage(t testing.TB, ref string) {
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

// Forward passes a request on to host.
func Forward(w http.ResponseWriter, r *http.Request, host string) {
	httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: host}).ServeHTTP(w, r)
}
