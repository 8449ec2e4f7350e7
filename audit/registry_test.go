package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/audit"
	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/mirror/ociclient"
	"github.com/ferry-update/ferry/verify"
)

var plain = mirror.RegistryOptions{PlainHTTP: true}

// registryAudit pushes two bundles and a container image to one repository
// of the registry at host, and audits the repository and one tag of it.
func registryAudit(t *testing.T, host string) {
	dir := t.TempDir()
	rel, stranger := newKey(t, "release@example.com"), newKey(t, "mallory")
	good := makeBundle(t, dir, bundleSpec{name: "gateway", version: "1.0.0", signers: []testKey{rel}, sbom: true})
	bad := makeBundle(t, dir, bundleSpec{name: "gateway", version: "1.1.0", signers: []testKey{stranger}})
	for _, p := range []string{good, bad} {
		if _, err := mirror.Push(t.Context(), p, "oci://"+host+"/gw", plain); err != nil {
			t.Fatal(err)
		}
	}
	img, err := random.Image(512, 1)
	must(t, err)
	tag, err := name.NewTag(host+"/gw:container", name.Insecure)
	must(t, err)
	must(t, remote.Write(tag, img))

	o := audit.Options{Keys: []*verify.PublicKey{rel.pub}, Threshold: 1}
	rep := run(t, "oci://"+host+"/gw", o, audit.SourceOptions{Registry: plain})
	if rep.Kind != audit.KindRegistry || len(rep.Bundles) != 2 || rep.Passed != 1 || rep.Failed != 1 || rep.OK() {
		t.Fatalf("registry audit: %d bundles, %d passed, %d failed: %+v", len(rep.Bundles), rep.Passed, rep.Failed, rep.Bundles)
	}
	if len(rep.Skipped) != 1 || !strings.Contains(rep.Skipped[0].Source, ":container") || !strings.Contains(rep.Skipped[0].Reason, "not a ferry bundle") {
		t.Errorf("skipped %+v", rep.Skipped)
	}
	g, b := rep.Bundles[0], rep.Bundles[1]
	if g.Version != "1.0.0" || g.Verdict != audit.Pass || g.Source != "oci://"+host+"/gw:1.0.0" || len(g.Attachments) != 1 || g.Attachments[0].SBOM == nil || !g.Payloads[0].Verified {
		t.Errorf("1.0.0: %+v", g)
	}
	if b.Version != "1.1.0" || b.Verdict != audit.Fail || b.Signatures[0].Status != verify.UnknownKey {
		t.Errorf("1.1.0: %+v", b)
	}

	rep = run(t, "oci://"+host+"/gw:1.0.0", o, audit.SourceOptions{Registry: plain})
	if len(rep.Bundles) != 1 || !rep.OK() {
		t.Errorf("one tag: %+v", rep.Bundles)
	}
	rep = run(t, "oci://"+host+"/gw:container", o, audit.SourceOptions{Registry: plain})
	if len(rep.Bundles) != 0 || len(rep.Skipped) != 1 || rep.OK() {
		t.Errorf("a container image is no bundle: %+v %+v", rep.Bundles, rep.Skipped)
	}
}

// TestAuditRegistry runs against go-containerregistry's in-memory registry
// with the referrers API, where ferry push also made the SBOM a referrer.
func TestAuditRegistry(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.WithReferrersSupport(true), registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	registryAudit(t, host)

	// ferry push made the SBOM an OCI 1.1 referrer of the bundle manifest.
	repo := ociclient.NewRepository(host, "gw", ociclient.Options{PlainHTTP: true})
	raw, _, err := repo.Manifest(t.Context(), "1.0.0")
	must(t, err)
	refs, err := repo.Referrers(t.Context(), digest.FromBytes(raw), "")
	must(t, err)
	var sbom bool
	for _, r := range refs {
		m, _, err := repo.Manifest(t.Context(), r.Digest.String())
		must(t, err)
		var art struct {
			ArtifactType string `json:"artifactType"`
			Layers       []struct {
				MediaType   string            `json:"mediaType"`
				Annotations map[string]string `json:"annotations"`
			} `json:"layers"`
		}
		must(t, json.Unmarshal(m, &art))
		if art.ArtifactType == bundle.SPDXMediaType && len(art.Layers) == 1 && art.Layers[0].Annotations["org.opencontainers.image.title"] == "sbom.spdx.json" {
			sbom = true
		}
	}
	if !sbom {
		t.Errorf("no SBOM referrer among the %d referrers", len(refs))
	}
}

// TestAuditRealRegistry runs against Debian's docker-registry
// (distribution 2.8, no referrers API): the SBOM still travels as a layer
// of the bundle.
func TestAuditRealRegistry(t *testing.T) {
	registryAudit(t, startRegistry(t))
}

// startRegistry runs docker-registry on a loopback port with its storage
// in a temporary directory and returns its host:port; the test is skipped
// when the binary is not installed. (A copy of mirror's test helper:
// test helpers do not cross packages.)
func startRegistry(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		if _, err := os.Stat("/usr/bin/docker-registry"); err != nil {
			t.Skip("docker-registry not installed (Debian package docker-registry): skipping the real-registry test")
		}
		bin = "/usr/bin/docker-registry"
	}
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := l.Addr().String()
	l.Close()
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	cfgPath := filepath.Join(dir, "config.yml")
	must(t, os.WriteFile(cfgPath, []byte(cfg), 0o644))
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
			t.Fatalf("docker-registry did not answer on %s: %v\n%s", addr, err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
