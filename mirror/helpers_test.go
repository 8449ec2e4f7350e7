package mirror_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
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
	"github.com/ferry-update/ferry/verify"
)

// testSigner is a key that signs test bundles.
type testSigner struct {
	signer *verify.Signer
	pub    *verify.PublicKey
}

func newSigner(t testing.TB, name string) testSigner {
	t.Helper()
	k, err := verify.GenerateKey(verify.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	s, err := verify.NewSigner(k, name)
	if err != nil {
		t.Fatal(err)
	}
	return testSigner{signer: s, pub: s.PublicKey()}
}

// makeBundle writes a bundle of one payload of size bytes, signed by
// signers, and returns its path and manifest digest.
func makeBundle(t testing.TB, dir, name, version string, size int, partSize int64, signers ...testSigner) (string, digest.Digest) {
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
		Sign: func(d digest.Digest) ([]bundle.Signature, error) {
			var sigs []bundle.Signature
			for _, s := range signers {
				sig, err := s.signer.Sign(d, name, time.Unix(1700000000, 0))
				if err != nil {
					return nil, err
				}
				sigs = append(sigs, sig)
			}
			return sigs, nil
		},
	}, bundle.Source{Name: "rootfs", Type: bundle.Rootfs, Content: bytes.NewReader(content)})
	if err != nil {
		t.Fatal(err)
	}
	return path, res.ManifestDigest
}

// signBundle adds a signature by s to the bundle at path.
func signBundle(t testing.TB, path string, s testSigner) {
	t.Helper()
	_, err := bundle.AddSignatures(path, func(h *bundle.Reader) ([]bundle.Signature, error) {
		sig, err := s.signer.Sign(h.ManifestDigest(), h.Config().Name, time.Unix(1700000001, 0))
		return []bundle.Signature{sig}, err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// verifyFile checks a bundle file against keys and threshold.
func verifyFile(t testing.TB, path string, threshold int, keys ...testSigner) (*verify.Report, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var pubs []*verify.PublicKey
	for _, k := range keys {
		pubs = append(pubs, k.pub)
	}
	return verify.Bundle(f, verify.Policy{Keys: pubs, Threshold: threshold})
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startRegistry runs Debian's docker-registry (distribution 2.8) on a
// loopback port with its storage in a temporary directory, and returns its
// host:port. The test is skipped if the binary is not installed.
func startRegistry(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		if _, err := os.Stat("/usr/bin/docker-registry"); err != nil {
			t.Skip("docker-registry not installed (Debian package docker-registry): skipping the real-registry test")
		}
		bin = "/usr/bin/docker-registry"
	}
	dir := t.TempDir()
	addr := freePort(t)
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(dir, "data"), addr)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "serve", cfgPath)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("docker-registry log:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker-registry did not answer /v2/ on %s: %v\n%s", addr, err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func skopeo(t testing.TB, args ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Skip("skopeo not installed")
	}
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

// testMirrorKey is a fresh unencrypted mirror key (PEM), as 'ferry mirror
// init --key' takes.
func testMirrorKey(t testing.TB) []byte {
	t.Helper()
	k, err := verify.GenerateKey(verify.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	b, err := verify.MarshalPrivateKey(k, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
