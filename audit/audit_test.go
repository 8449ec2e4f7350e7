package audit_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferry-update/ferry/audit"
	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/media"
	"github.com/ferry-update/ferry/verify"
)

const year = 365 * 24 * time.Hour

// TestAuditVerdicts: one readable table of what a security team must see,
// each case a bundle file judged by a trust root (or bare keys).
func TestAuditVerdicts(t *testing.T) {
	rootKey, rel1, rel2, stranger := testutil.NewKey(t, "root"), testutil.NewKey(t, "rel1@example.com"), testutil.NewKey(t, "rel2@example.com"), testutil.NewKey(t, "mallory")
	// root is the trust root of a case: its release keys, threshold,
	// revoked keys and lifetime.
	type root struct {
		release   []testutil.Key
		threshold int
		revoked   []testutil.Key
		lifetime  time.Duration
	}
	keys := func(ks ...testutil.Key) []testutil.Key { return ks }
	statuses := func(ss ...verify.Status) []verify.Status { return ss }
	tests := []struct {
		name    string
		signers []testutil.Key
		root    *root // nil: --key rel1 --key rel2 --threshold 1
		later   time.Duration
		tamper  bool
		trail   bool // bytes after the end-of-archive marker
		pass    bool
		reason  string          // in the reasons when it fails
		warning string          // in the warnings
		status  []verify.Status // of each signature
	}{
		{name: "good bundle", signers: keys(rel1), root: &root{keys(rel1), 1, nil, year},
			pass: true, status: statuses(verify.Valid)},
		{name: "below threshold", signers: keys(rel1), root: &root{keys(rel1, rel2), 2, nil, year},
			reason: "1 valid signature(s) from trusted keys, 2 required", status: statuses(verify.Valid)},
		{name: "two of two", signers: keys(rel1, rel2), root: &root{keys(rel1, rel2), 2, nil, year},
			pass: true, status: statuses(verify.Valid, verify.Valid)},
		{name: "revoked signer", signers: keys(rel2), root: &root{keys(rel1, rel2), 1, keys(rel2), year},
			reason: "signature(s) by revoked key(s) " + rel2.Pub.ShortID() + " do not count", status: statuses(verify.Revoked)},
		{name: "revoked signer beside a valid one", signers: keys(rel1, rel2), root: &root{keys(rel1, rel2), 1, keys(rel2), year},
			pass: true, warning: "signature 2 does not count (revoked)", status: statuses(verify.Valid, verify.Revoked)},
		{name: "unknown key", signers: keys(stranger), root: &root{keys(rel1), 1, nil, year},
			reason: "0 valid signature(s)", status: statuses(verify.UnknownKey)},
		{name: "unknown key beside a valid one", signers: keys(stranger, rel1), root: &root{keys(rel1), 1, nil, year},
			pass: true, warning: "signature 1 does not count (unknown-key)", status: statuses(verify.UnknownKey, verify.Valid)},
		{name: "unsigned", root: &root{keys(rel1), 1, nil, year},
			reason: "0 valid signature(s)", warning: "no signatures"},
		{name: "expired root", signers: keys(rel1), root: &root{keys(rel1), 1, nil, time.Hour}, later: 2 * time.Hour,
			reason: "trust root version 1 expired at", status: statuses(verify.Valid)},
		{name: "tampered payload", signers: keys(rel1), root: &root{keys(rel1), 1, nil, year}, tamper: true,
			reason: `payload "rootfs" part 1 of 3`, status: statuses(verify.Valid)},
		{name: "data after the end of the archive", signers: keys(rel1), root: &root{keys(rel1), 1, nil, year}, trail: true,
			reason: "end of archive (at offset", status: statuses(verify.Valid)},
		{name: "keys instead of a root", signers: keys(rel2),
			pass: true, status: statuses(verify.Valid)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := makeBundle(t, t.TempDir(), bundleSpec{name: "os", version: "1.2.3", signers: tt.signers, sbom: true})
			if tt.tamper {
				flipPayloadByte(t, path)
			}
			if tt.trail {
				f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
				must(t, err)
				f.WriteString("a member tar would see")
				must(t, f.Close())
			}
			o := audit.Options{Now: now.Add(tt.later), Tool: "ferry test"}
			if r := tt.root; r != nil {
				o.Root = makeRoot(t, rootKey, r.release, r.threshold, r.revoked, now.Add(r.lifetime))
			} else {
				o.Keys, o.Threshold = []*verify.PublicKey{rel1.Pub, rel2.Pub}, 1
			}
			rep := run(t, path, o, audit.SourceOptions{})
			if len(rep.Bundles) != 1 {
				t.Fatalf("%d bundles", len(rep.Bundles))
			}
			b := rep.Bundles[0]
			if got := b.Verdict == audit.Pass; got != tt.pass || rep.OK() != tt.pass {
				t.Errorf("verdict %s (report %s), reasons %q", b.Verdict, rep.Verdict, b.Reasons)
			}
			if tt.reason != "" && !containsAny(b.Reasons, tt.reason) {
				t.Errorf("reasons %q, want one containing %q", b.Reasons, tt.reason)
			}
			if tt.warning != "" && !containsAny(b.Warnings, tt.warning) {
				t.Errorf("warnings %q, want one containing %q", b.Warnings, tt.warning)
			}
			if len(b.Signatures) != len(tt.status) {
				t.Fatalf("%d signatures, want %d", len(b.Signatures), len(tt.status))
			}
			for i, s := range b.Signatures {
				if s.Status != tt.status[i] {
					t.Errorf("signature %d: %s (%s), want %s", i+1, s.Status, s.Reason, tt.status[i])
				}
			}
			// A pass claims every check; damage shows as a check
			// that did not pass.
			all := []string{verify.CheckedSignatures, verify.CheckedParts, verify.CheckedEnd}
			if (tt.pass && !slices.Equal(b.Checked, all)) || ((tt.tamper || tt.trail) && slices.Contains(b.Checked, verify.CheckedEnd)) {
				t.Errorf("checked %q with verdict %s", b.Checked, b.Verdict)
			}
			// What is reported whatever the verdict.
			if b.Name != "os" || b.Version != "1.2.3" || b.Manifest == "" || len(b.DeviceTypes) != 1 {
				t.Errorf("bundle %+v", b)
			}
			if len(b.Payloads) != 1 || len(b.Payloads[0].Layers) != 3 || b.Payloads[0].Size != 20000 || b.Payloads[0].Verified == tt.tamper {
				t.Errorf("payloads %+v", b.Payloads)
			}
			if len(b.Attachments) != 1 || b.Attachments[0].SBOM == nil || b.Attachments[0].SBOM.Components != 3 || b.Attachments[0].SBOM.Spec != "SPDX-2.3" {
				t.Errorf("attachments %+v", b.Attachments)
			}
			for _, s := range b.Signatures {
				if s.Status == verify.Valid && (s.Signer == "" || s.SignedAt.IsZero() || s.Algorithm != verify.ECDSAP256 || len(s.KeyID) != 64) {
					t.Errorf("signature details missing: %+v", s)
				}
			}
			if tt.root != nil && (rep.Trust.RootVersion != 1 || rep.Trust.RootExpires.IsZero() || rep.Trust.RootExpired != (tt.later > tt.root.lifetime)) {
				t.Errorf("trust %+v", rep.Trust)
			}
		})
	}
}

// TestAuditNotABundle: a file that is no bundle is a failed bundle with
// the reader's located error, not a failure to run.
func TestAuditNotABundle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notes.txt")
	must(t, os.WriteFile(path, []byte("hello"), 0o644))
	rep := run(t, path, audit.Options{Keys: []*verify.PublicKey{testutil.NewKey(t, "k").Pub}}, audit.SourceOptions{})
	if rep.OK() || len(rep.Bundles) != 1 || !containsAny(rep.Bundles[0].Reasons, "layout") {
		t.Fatalf("%+v", rep.Bundles)
	}
}

// TestAuditStickImage: the bundles of a stick image are read through
// package media and judged like any other; an image with no FAT32 is an
// error that says so.
func TestAuditStickImage(t *testing.T) {
	dir := t.TempDir()
	k := testutil.NewKey(t, "k")
	paths := []string{
		makeBundle(t, dir, bundleSpec{name: "os", version: "1.0.0", signers: []testutil.Key{k}}),
		makeBundle(t, dir, bundleSpec{name: "app", version: "2.0.0", signers: []testutil.Key{k}}),
	}
	img := filepath.Join(dir, "stick.img")
	_, err := media.Build(img, paths, media.BuildOptions{})
	must(t, err)
	rep := run(t, img, audit.Options{Keys: []*verify.PublicKey{k.Pub}}, audit.SourceOptions{})
	if !rep.OK() || rep.Kind != audit.KindStick || len(rep.Bundles) != 2 || rep.Bundles[0].Source != img+":ferry/app:2.0.0" {
		t.Fatalf("%+v", rep)
	}
	rep = run(t, img, audit.Options{Keys: []*verify.PublicKey{testutil.NewKey(t, "other").Pub}}, audit.SourceOptions{})
	if rep.OK() || rep.Failed != 2 || !containsAny(rep.Bundles[0].Reasons, "0 valid signature(s)") {
		t.Fatalf("another key: %+v", rep.Bundles)
	}

	raw := make([]byte, 4096)
	raw[510], raw[511] = 0x55, 0xAA
	bad := filepath.Join(dir, "bad.img")
	must(t, os.WriteFile(bad, raw, 0o644))
	src, err := audit.Open(bad, audit.SourceOptions{})
	must(t, err)
	if _, err := audit.Run(t.Context(), src, audit.Options{Keys: []*verify.PublicKey{k.Pub}, Now: now}); err == nil || !strings.Contains(err.Error(), "no FAT32 filesystem") {
		t.Fatalf("audit of a broken image: %v", err)
	}
}

// TestAuditOptions: an audit needs exactly one kind of trust.
func TestAuditOptions(t *testing.T) {
	path := makeBundle(t, t.TempDir(), bundleSpec{name: "os", version: "1.0.0"})
	src, err := audit.Open(path, audit.SourceOptions{})
	must(t, err)
	k := testutil.NewKey(t, "k")
	for _, o := range []audit.Options{
		{},
		{Keys: []*verify.PublicKey{k.Pub}, Threshold: 2},
		{Keys: []*verify.PublicKey{k.Pub}, Root: makeRoot(t, k, []testutil.Key{k}, 1, nil, now.Add(year))},
	} {
		if _, err := audit.Run(t.Context(), src, o); err == nil {
			t.Errorf("Run(%+v) judged without a sound policy", o)
		}
	}
}

// TestReportJSONShape pins the keys scripts rely on.
func TestReportJSONShape(t *testing.T) {
	k := testutil.NewKey(t, "release@example.com")
	path := makeBundle(t, t.TempDir(), bundleSpec{name: "os", version: "1.0.0", signers: []testutil.Key{k}, sbom: true})
	rep := run(t, path, audit.Options{Root: makeRoot(t, k, []testutil.Key{k}, 1, nil, now.Add(year)), Tool: "ferry test"}, audit.SourceOptions{})
	raw, err := json.Marshal(rep)
	must(t, err)
	var m map[string]any
	must(t, json.Unmarshal(raw, &m))
	for _, key := range []string{"tool", "generated", "target", "kind", "trust", "bundles", "skipped", "passed", "failed", "verdict"} {
		if _, ok := m[key]; !ok {
			t.Errorf("report has no %q: %s", key, raw)
		}
	}
	b := m["bundles"].([]any)[0].(map[string]any)
	for _, key := range []string{"source", "name", "version", "deviceTypes", "manifest", "payloads", "attachments", "signatures", "validKeys", "threshold", "thresholdMet", "verdict", "reasons", "warnings"} {
		if _, ok := b[key]; !ok {
			t.Errorf("bundle has no %q", key)
		}
	}
	sig := b["signatures"].([]any)[0].(map[string]any)
	for _, key := range []string{"keyId", "algorithm", "signer", "signedAt", "status"} {
		if _, ok := sig[key]; !ok {
			t.Errorf("signature has no %q", key)
		}
	}
	att := b["attachments"].([]any)[0].(map[string]any)
	if att["mediaType"] != bundle.SPDXMediaType || att["sbom"].(map[string]any)["components"] != float64(3) {
		t.Errorf("attachment %v", att)
	}
	trust := m["trust"].(map[string]any)
	if trust["rootVersion"] != float64(1) || trust["rootExpires"] == nil {
		t.Errorf("trust %v", trust)
	}
}

// TestWriteTextEscapes: what a signature says of itself cannot drive the
// terminal.
func TestWriteTextEscapes(t *testing.T) {
	k := testutil.NewKey(t, "evil\x1b[2J\u202e")
	path := makeBundle(t, t.TempDir(), bundleSpec{name: "os", version: "1.0.0", signers: []testutil.Key{k}})
	rep := run(t, path, audit.Options{Keys: []*verify.PublicKey{k.Pub}}, audit.SourceOptions{})
	var out bytes.Buffer
	must(t, rep.WriteText(&out))
	if strings.ContainsAny(out.String(), "\x1b\u202e") || !strings.Contains(out.String(), `evil\x1b[2J\u202e`) {
		t.Errorf("text output:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "PASS  os 1.0.0") || !strings.Contains(out.String(), "summary     1 bundle(s): 1 passed") {
		t.Errorf("text output:\n%s", out.String())
	}
}
