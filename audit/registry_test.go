package audit_test

import (
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcr "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/audit"
	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/registry"
	"github.com/ferry-update/ferry/transport/oci"
	"github.com/ferry-update/ferry/verify"
)

var plain = registry.Options{PlainHTTP: true}

// registryAudit pushes two bundles and a container image to one repository
// of the registry at host, and audits the repository and one tag of it.
func registryAudit(t *testing.T, host string) {
	dir := t.TempDir()
	rel, stranger := testutil.NewKey(t, "release@example.com"), testutil.NewKey(t, "mallory")
	good := makeBundle(t, dir, bundleSpec{name: "gateway", version: "1.0.0", signers: []testutil.Key{rel}, sbom: true})
	bad := makeBundle(t, dir, bundleSpec{name: "gateway", version: "1.1.0", signers: []testutil.Key{stranger}})
	for _, p := range []string{good, bad} {
		if _, err := registry.Push(t.Context(), p, "oci://"+host+"/gw", plain); err != nil {
			t.Fatal(err)
		}
	}
	img, err := random.Image(512, 1)
	must(t, err)
	tag, err := name.NewTag(host+"/gw:container", name.Insecure)
	must(t, err)
	must(t, remote.Write(tag, img))

	o := audit.Options{Keys: []*verify.PublicKey{rel.Pub}, Threshold: 1}
	rep := run(t, "oci://"+host+"/gw", o, audit.SourceOptions{Registry: plain})
	if rep.Kind != audit.KindRegistry || len(rep.Bundles) != 2 || rep.Passed != 1 || rep.Failed != 1 || rep.OK() {
		t.Fatalf("registry audit: %d bundles, %d passed, %d failed: %+v", len(rep.Bundles), rep.Passed, rep.Failed, rep.Bundles)
	}
	if len(rep.Skipped) != 1 || !strings.Contains(rep.Skipped[0].Source, ":container") || !strings.Contains(rep.Skipped[0].Reason, "not a ferry bundle") {
		t.Errorf("skipped %+v", rep.Skipped)
	}
	g, b := rep.Bundles[0], rep.Bundles[1]
	if g.Version != "1.0.0" || g.Verdict != audit.Pass || g.Source != "oci://"+host+"/gw:1.0.0@"+g.Manifest.String() || len(g.Attachments) != 1 || g.Attachments[0].SBOM == nil || g.SBOMs != 1 || !g.Payloads[0].Verified {
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
	srv := httptest.NewServer(ggcr.New(ggcr.WithReferrersSupport(true), ggcr.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	registryAudit(t, host)

	// ferry push made the SBOM an OCI 1.1 referrer of the bundle manifest.
	repo := oci.NewRepository(host, "gw", oci.Options{PlainHTTP: true})
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
	registryAudit(t, testutil.StartRegistry(t))
}
