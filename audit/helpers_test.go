package audit_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/ferry-update/ferry/audit"
	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/verify"
)

// now is when every audit in these tests runs.
var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const testSPDX = `{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"os","packages":[{"name":"busybox"},{"name":"openssl"},{"name":"zlib"}]}`

// bundleSpec says what makeBundle makes.
type bundleSpec struct {
	name, version string
	signers       []testutil.Key
	sbom          bool
	encryptTo     []age.Recipient
	roots         []*verify.Root // attached trust roots
}

// makeBundle writes a bundle of one 20 KB rootfs payload in 8 KiB parts,
// signed by spec.signers, with an SPDX SBOM if asked, and returns its path.
func makeBundle(t testing.TB, dir string, spec bundleSpec) string {
	t.Helper()
	content := make([]byte, 20000)
	r := rand.New(rand.NewPCG(uint64(len(spec.name)), 9))
	for i := range content {
		content[i] = byte(r.Uint32())
	}
	opts := bundle.Options{
		Name: spec.name, Version: spec.version, DeviceTypes: []string{"board-a"},
		Created: now.Add(-time.Hour), PartSize: 8 << 10,
		Sign:      testutil.SignWith(spec.name, now.Add(-time.Minute), spec.signers...),
		EncryptTo: spec.encryptTo,
	}
	if spec.sbom {
		opts.Attachments = []bundle.AttachmentData{{Attachment: bundle.Attachment{Name: "sbom.spdx.json", MediaType: bundle.SPDXMediaType}, Data: []byte(testSPDX)}}
	}
	for _, r := range spec.roots {
		opts.Attachments = append(opts.Attachments, bundle.AttachmentData{Attachment: bundle.Attachment{Name: fmt.Sprintf("%d.root.json", r.Version()), MediaType: bundle.TrustRootMediaType}, Data: r.Bytes()})
	}
	path := filepath.Join(dir, spec.name+"-"+spec.version+".ferry")
	if _, err := bundle.Create(path, opts, bundle.Source{Name: "rootfs", Type: bundle.Rootfs, Content: bytes.NewReader(content)}); err != nil {
		t.Fatal(err)
	}
	return path
}

// makeRoot returns a trust root (root role: rootKey) whose release role
// holds release with threshold, revoking the keys in revoked, expiring at
// expires.
func makeRoot(t testing.TB, rootKey testutil.Key, release []testutil.Key, threshold int, revoked []testutil.Key, expires time.Time) *verify.Root {
	t.Helper()
	s := verify.NewRootSigned(expires)
	must(t, s.AddKey(verify.RoleRoot, rootKey.Pub))
	for _, k := range release {
		must(t, s.AddKey(verify.RoleRelease, k.Pub))
	}
	must(t, s.SetThreshold(verify.RoleRelease, threshold))
	for _, k := range revoked {
		must(t, s.Revoke(k.Pub.ID))
	}
	r, err := verify.SignRoot(s, rootKey.Signer)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// flipPayloadByte damages the first payload part of the bundle at path.
func flipPayloadByte(t testing.TB, path string) {
	t.Helper()
	a, err := bundle.OpenArchive(path)
	must(t, err)
	cfg := a.Config()
	first := a.Manifest().Layers[len(cfg.Attachments)].Digest
	a.Close()
	raw, err := os.ReadFile(path)
	must(t, err)
	hdr := bytes.Index(raw, []byte("blobs/sha256/"+first.Encoded()+"\x00"))
	if hdr < 0 || hdr%512 != 0 {
		t.Fatalf("first part's header not found")
	}
	raw[hdr+512+100] ^= 0xff // inside the first part's data
	must(t, os.WriteFile(path, raw, 0o644))
}

// run audits target and fails the test if the audit cannot run.
func run(t testing.TB, target string, o audit.Options, so audit.SourceOptions) *audit.Report {
	t.Helper()
	src, err := audit.Open(target, so)
	must(t, err)
	if o.Now.IsZero() {
		o.Now = now
	}
	rep, err := audit.Run(t.Context(), src, o)
	must(t, err)
	return rep
}

func containsAny(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
