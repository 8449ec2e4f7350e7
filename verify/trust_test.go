package verify_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/secure-systems-lab/go-securesystemslib/cjson"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/verify"
)

// now is the time every trust-root test is judged at.
var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const year = 365 * 24 * time.Hour

// trustKeys are the keys of the trust-root tests: root keys A, B, C, release
// keys rel1 and rel2, a mirror key and a stranger nobody trusts.
type trustKeys struct {
	a, b, c, rel1, rel2, mirror, stranger testKey
}

func newTrustKeys(t *testing.T) trustKeys {
	return trustKeys{
		a:        newTestKey(t, verify.ECDSAP256, "a"),
		b:        newTestKey(t, verify.Ed25519, "b"),
		c:        newTestKey(t, verify.ECDSAP384, "c"),
		rel1:     newTestKey(t, verify.ECDSAP256, "rel1"),
		rel2:     newTestKey(t, verify.Ed25519, "rel2"),
		mirror:   newTestKey(t, verify.Ed25519, "mirror"),
		stranger: newTestKey(t, verify.ECDSAP256, "stranger"),
	}
}

// firstRoot is version 1: root role {A, B} with threshold 1, release {rel1},
// mirror {mirror}, signed by A.
func (k trustKeys) firstRoot(t *testing.T) *verify.Root {
	t.Helper()
	s := verify.NewRootSigned(now.Add(year))
	addKeys(t, &s, verify.RoleRoot, k.a, k.b)
	addKeys(t, &s, verify.RoleRelease, k.rel1)
	addKeys(t, &s, verify.RoleMirror, k.mirror)
	return signRoot(t, s, k.a)
}

func addKeys(t *testing.T, s *verify.RootSigned, role string, keys ...testKey) {
	t.Helper()
	for _, k := range keys {
		if err := s.AddKey(role, k.pub); err != nil {
			t.Fatal(err)
		}
	}
}

func signRoot(t *testing.T, s verify.RootSigned, keys ...testKey) *verify.Root {
	t.Helper()
	var signers []*verify.Signer
	for _, k := range keys {
		signers = append(signers, k.signer)
	}
	r, err := verify.SignRoot(s, signers...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// next returns the signed part of r's successor after edit, signed by keys.
func next(t *testing.T, r *verify.Root, edit func(*verify.RootSigned), keys ...testKey) *verify.Root {
	t.Helper()
	s := r.Signed()
	s.Version++
	if edit != nil {
		edit(&s)
	}
	return signRoot(t, s, keys...)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// forge returns a document whose signed part is r's after edit, with valid
// signatures by keys over it: what an attacker holding those keys, or a
// buggy signer, could make, and SignRoot refuses to.
func forge(t *testing.T, r *verify.Root, edit func(signed map[string]any), keys ...testKey) []byte {
	t.Helper()
	var doc struct {
		Signed map[string]any `json:"signed"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.Bytes()))
	dec.UseNumber()
	must(t, dec.Decode(&doc))
	edit(doc.Signed)
	canonical, err := cjson.EncodeCanonical(doc.Signed)
	must(t, err)
	sigs := []map[string]string{}
	for _, k := range keys {
		sigs = append(sigs, map[string]string{"keyid": k.pub.ID, "sig": base64.StdEncoding.EncodeToString(signRaw(t, k, canonical))})
	}
	out, err := json.Marshal(map[string]any{"signed": doc.Signed, "signatures": sigs})
	must(t, err)
	return out
}

func role(m map[string]any, name string) map[string]any {
	return m["roles"].(map[string]any)[name].(map[string]any)
}

// TestRootUpdateAttacks walks the chain rule (TRUST.md §5) through every
// way a new trust root can be wrong. Each case starts from a trusted root
// and offers one or more next roots; the last must come out trusted, or the
// update fail with the kind of error given.
func TestRootUpdateAttacks(t *testing.T) {
	k := newTrustKeys(t)
	v1 := k.firstRoot(t)
	// v2 rotates the root role from {A, B} to {B, C}: signed by A for v1's
	// threshold and by C for its own.
	rotate := func(s *verify.RootSigned) {
		must(t, s.AddKey(verify.RoleRoot, k.c.pub))
		must(t, s.RemoveKey(verify.RoleRoot, k.a.pub.ID))
	}
	v2 := next(t, v1, rotate, k.a, k.c)
	v3 := next(t, v2, func(s *verify.RootSigned) { must(t, s.AddKey(verify.RoleRelease, k.rel2.pub)) }, k.c)
	// v2r revokes A, which stays listed in the root role.
	revokeA := func(s *verify.RootSigned) { must(t, s.Revoke(k.a.pub.ID)) }
	v2r := next(t, v1, revokeA, k.b)
	expired := func(s *verify.RootSigned) { s.SetExpires(now.Add(-time.Hour)) }
	valid2 := v2.Bytes()

	tests := []struct {
		name    string
		trusted *verify.Root
		chain   [][]byte
		want    verify.RootErrorKind // "" when the last root is accepted
		version int64                // of the root trusted afterwards
	}{
		{"valid rotation of the root keys", v1, [][]byte{valid2}, "", 2},
		{"valid chain of two", v1, [][]byte{valid2, v3.Bytes()}, "", 3},
		{"revocation signed by a key that is not revoked", v1, [][]byte{v2r.Bytes()}, "", 2},
		{"the trusted root again is no change", v2, [][]byte{valid2}, "", 2},
		{"expired root in the middle of the chain", v1, [][]byte{next(t, v1, expired, k.a).Bytes(), forge(t, next(t, v1, expired, k.a), func(m map[string]any) {
			m["version"] = json.Number("3")
			m["expires"] = now.Add(year).Format(time.RFC3339)
		}, k.a)}, "", 3},

		// Versions: one at a time, never back.
		{"skip a version", v1, [][]byte{next(t, v2, nil, k.a, k.b, k.c).Bytes()}, verify.RootVersionSkip, 0},
		{"replay an older root", v2, [][]byte{v1.Bytes()}, verify.RootRollback, 0},
		{"another root with the trusted version", v2, [][]byte{v2r.Bytes()}, verify.RootRollback, 0},

		// Thresholds: the old root keys and the new ones must both sign.
		{"signed only by the new root keys", v1, [][]byte{next(t, v1, rotate, k.c).Bytes()}, verify.RootBelowThreshold, 0},
		{"signed only by the old root keys", v1, [][]byte{next(t, v1, rotate, k.a).Bytes()}, verify.RootBelowThreshold, 0},
		{"unsigned", v1, [][]byte{next(t, v1, nil).Bytes()}, verify.RootBelowThreshold, 0},
		{"signed by a release key, not a root key", v1, [][]byte{next(t, v1, nil, k.rel1).Bytes()}, verify.RootBelowThreshold, 0},
		{"signed by a stranger", v1, [][]byte{next(t, v1, nil, k.stranger).Bytes()}, verify.RootBelowThreshold, 0},
		{"changed after signing", v1, [][]byte{bytes.Replace(valid2, []byte(`"expires": "2027`), []byte(`"expires": "2099`), 1)}, verify.RootBelowThreshold, 0},

		// Revocation: a revoked key never counts, and stays revoked.
		{"the revoked key's own signature on its revocation", v1, [][]byte{next(t, v1, revokeA, k.a).Bytes()}, verify.RootBelowThreshold, 0},
		{"signed by a key the trusted root revoked", v2r, [][]byte{next(t, v2r, nil, k.a).Bytes()}, verify.RootBelowThreshold, 0},
		{"a revoked key un-revoked", v2r, [][]byte{forge(t, v2r, func(m map[string]any) {
			m["version"] = json.Number("3")
			m["revoked"] = []any{}
		}, k.b)}, verify.RootUnrevoked, 0},

		// Expiry: the root trusted at the end must not have expired.
		{"expired final root", v1, [][]byte{next(t, v1, expired, k.a).Bytes()}, verify.RootExpired, 0},
		{"expired trusted root offered again", next(t, v1, expired, k.a), [][]byte{next(t, v1, expired, k.a).Bytes()}, verify.RootExpired, 0},

		// Malformed documents are refused before any signature is looked at,
		// even when validly signed.
		{"not JSON", v1, [][]byte{[]byte(`{"signed": {`)}, verify.RootMalformed, 0},
		{"empty", v1, [][]byte{nil}, verify.RootMalformed, 0},
		{"huge document", v1, [][]byte{append(bytes.Clone(valid2), bytes.Repeat([]byte(" "), verify.MaxRootSize)...)}, verify.RootMalformed, 0},
		{"data after the document", v1, [][]byte{append(bytes.Clone(valid2), "{}"...)}, verify.RootMalformed, 0},
		{"repeated JSON key", v1, [][]byte{bytes.Replace(valid2, []byte(`"version": 2,`), []byte(`"version": 2, "version": 2,`), 1)}, verify.RootMalformed, 0},
		{"JSON key repeated in another case", v1, [][]byte{bytes.Replace(valid2, []byte(`"version": 2,`), []byte(`"version": 2, "Version": 2,`), 1)}, verify.RootMalformed, 0},
		{"unknown field", v1, [][]byte{forge(t, v2, func(m map[string]any) { m["delegations"] = map[string]any{} }, k.a, k.c)}, verify.RootMalformed, 0},
		{"missing field", v1, [][]byte{forge(t, v2, func(m map[string]any) { delete(m, "revoked") }, k.a, k.c)}, verify.RootMalformed, 0},
		{"a key listed twice in a role", v1, [][]byte{forge(t, v2, func(m map[string]any) {
			role(m, "release")["keyids"] = []any{k.rel1.pub.ID, k.rel1.pub.ID}
		}, k.a, k.c)}, verify.RootMalformed, 0},
		{"two signatures by one key", v1, [][]byte{bytes.Replace(valid2, []byte(`"signatures": [`), []byte(`"signatures": [{"keyid": "`+k.a.pub.ID+`", "sig": "AA=="},`), 1)}, verify.RootMalformed, 0},
		{"key id not matching its key", v1, [][]byte{forge(t, v2, func(m map[string]any) {
			keys := m["keys"].(map[string]any)
			keys[k.rel1.pub.ID] = keys[k.mirror.pub.ID]
		}, k.a, k.c)}, verify.RootMalformed, 0},
		{"algorithm not matching its key", v1, [][]byte{forge(t, v2, func(m map[string]any) {
			m["keys"].(map[string]any)[k.rel1.pub.ID].(map[string]any)["algorithm"] = "ed25519"
		}, k.a, k.c)}, verify.RootMalformed, 0},
		{"role naming a key not in keys", v1, [][]byte{forge(t, v2, func(m map[string]any) {
			role(m, "release")["keyids"] = []any{k.stranger.pub.ID}
		}, k.a, k.c)}, verify.RootMalformed, 0},
		{"threshold 0", v1, [][]byte{forge(t, v2, func(m map[string]any) { role(m, "release")["threshold"] = json.Number("0") }, k.a, k.c)}, verify.RootMalformed, 0},
		{"threshold above the role's keys", v1, [][]byte{forge(t, v2, func(m map[string]any) { role(m, "root")["threshold"] = json.Number("3") }, k.a, k.c)}, verify.RootMalformed, 0},
		{"no release role", v1, [][]byte{forge(t, v2, func(m map[string]any) {
			delete(m["roles"].(map[string]any), "release")
			delete(m["keys"].(map[string]any), k.rel1.pub.ID)
		}, k.a, k.c)}, verify.RootMalformed, 0},
		{"root role left with only revoked keys", v1, [][]byte{forge(t, v2, func(m map[string]any) { m["revoked"] = []any{k.b.pub.ID, k.c.pub.ID} }, k.a, k.c)}, verify.RootMalformed, 0},
		{"expiry with a time zone", v1, [][]byte{forge(t, v2, func(m map[string]any) { m["expires"] = "2030-01-01T00:00:00+01:00" }, k.a, k.c)}, verify.RootMalformed, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := verify.UpdateRootChain(tt.trusted, tt.chain, now)
			if len(tt.chain) == 1 {
				// One step is UpdateRoot.
				one, oneErr := verify.UpdateRoot(tt.trusted, tt.chain[0], now)
				if (oneErr == nil) != (err == nil) || (one == nil) != (got == nil) {
					t.Fatalf("UpdateRoot: %v, UpdateRootChain: %v", oneErr, err)
				}
			}
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if got.Version() != tt.version {
					t.Fatalf("trusted version %d, want %d", got.Version(), tt.version)
				}
				return
			}
			var re *verify.RootError
			if !errors.As(err, &re) {
				t.Fatalf("error %v, want a *RootError of kind %s", err, tt.want)
			}
			if re.Kind != tt.want {
				t.Fatalf("%s error: %v; want kind %s", re.Kind, err, tt.want)
			}
			if got != nil {
				t.Fatal("a root was returned with the error")
			}
			t.Logf("%v", err)
		})
	}
}

func TestRootVerify(t *testing.T) {
	k := newTrustKeys(t)
	v1 := k.firstRoot(t)
	if err := v1.Verify(now); err != nil {
		t.Fatal(err)
	}
	kindOf := func(err error) verify.RootErrorKind {
		var re *verify.RootError
		if !errors.As(err, &re) {
			t.Fatalf("error %v is not a *RootError", err)
		}
		return re.Kind
	}
	if err := v1.Verify(now.Add(2 * year)); kindOf(err) != verify.RootExpired {
		t.Errorf("two years on: %v", err)
	}
	s := v1.Signed()
	must(t, s.SetThreshold(verify.RoleRoot, 2))
	half := signRoot(t, s, k.a)
	err := half.Verify(now)
	if kindOf(err) != verify.RootBelowThreshold {
		t.Fatalf("one of two signatures: %v", err)
	}
	if want := "trust root v1: signed by 1 of the 2 required key(s) of its own root role"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	// The second signature may come later, from whoever holds B.
	full, err := half.AddSignatures(k.b.signer, k.a.signer)
	must(t, err)
	if err := full.Verify(now); err != nil {
		t.Fatal(err)
	}
	if got := len(full.Signatures()); got != 2 {
		t.Errorf("%d signatures, want 2 (A only once)", got)
	}
}

func TestRootEdits(t *testing.T) {
	k := newTrustKeys(t)
	v1 := k.firstRoot(t)
	s := v1.Signed()
	if err := s.AddKey(verify.RoleRelease, k.rel1.pub); err == nil {
		t.Error("a key added twice to a role")
	}
	if err := s.AddKey("timestamp", k.rel2.pub); err == nil {
		t.Error("a key added to an unknown role")
	}
	if err := s.RemoveKey(verify.RoleRelease, k.rel1.pub.ID); err == nil {
		t.Error("the last release key removed")
	}
	must(t, s.RemoveKey(verify.RoleMirror, k.mirror.pub.ID))
	if _, ok := s.Roles[verify.RoleMirror]; ok {
		t.Error("an empty mirror role kept")
	}
	if _, ok := s.Keys[k.mirror.pub.ID]; ok {
		t.Error("a key of no role kept")
	}
	must(t, s.Revoke(k.rel1.pub.ID))
	if err := s.Revoke(k.rel1.pub.ID); err == nil {
		t.Error("a key revoked twice")
	}
	if err := s.AddKey(verify.RoleRoot, k.rel1.pub); err == nil {
		t.Error("a revoked key added back")
	}
	// Edits to the copy leave the root alone.
	if v1.IsRevoked(k.rel1.pub.ID) || v1.Key(k.mirror.pub.ID) == nil {
		t.Error("editing Signed() changed the root")
	}
	s.Version++
	if _, err := verify.SignRoot(s, k.a.signer); err != nil {
		t.Fatal(err)
	}
	must(t, s.SetThreshold(verify.RoleRelease, 2))
	if _, err := verify.SignRoot(s, k.a.signer); err == nil {
		t.Error("a threshold above the keys signed")
	}
}

// TestVerifyBundleWithRoot checks bundles against a trust root's release
// role: a revoked signer shows as revoked and does not count.
func TestVerifyBundleWithRoot(t *testing.T) {
	k := newTrustKeys(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "b.ferry")
	_, err := bundle.Create(path, bundle.Options{
		Name: "demo", Version: "1.0.0", DeviceTypes: []string{"board"}, Created: now,
		Sign: func(d digest.Digest) ([]bundle.Signature, error) {
			return []bundle.Signature{k.rel1.sign(t, d), k.rel2.sign(t, d)}, nil
		},
	}, bundle.Source{Name: "rootfs", Type: bundle.Rootfs, Content: strings.NewReader("hello")})
	must(t, err)

	s := verify.NewRootSigned(now.Add(year))
	addKeys(t, &s, verify.RoleRoot, k.a)
	addKeys(t, &s, verify.RoleRelease, k.rel1, k.rel2)
	must(t, s.SetThreshold(verify.RoleRelease, 2))
	v1 := signRoot(t, s, k.a)
	v2 := next(t, v1, func(s *verify.RootSigned) { must(t, s.Revoke(k.rel2.pub.ID)) }, k.a)
	v3 := next(t, v2, func(s *verify.RootSigned) { must(t, s.SetThreshold(verify.RoleRelease, 1)) }, k.a)

	check := func(r *verify.Root) (*verify.Report, error) {
		t.Helper()
		p, err := r.Policy(verify.RoleRelease, now)
		must(t, err)
		f, err := os.Open(path)
		must(t, err)
		defer f.Close()
		return verify.Bundle(f, p)
	}
	statuses := func(rep *verify.Report) []verify.Status {
		var st []verify.Status
		for _, s := range rep.Signatures.Signatures {
			st = append(st, s.Status)
		}
		return st
	}

	rep, err := check(v1)
	if err != nil {
		t.Fatalf("two of two release keys: %v", err)
	}
	if got := statuses(rep); !equal(got, verify.Valid, verify.Valid) {
		t.Errorf("statuses %v", got)
	}

	rep, err = check(v2)
	var te *verify.ThresholdError
	if !errors.As(err, &te) {
		t.Fatalf("rel2 revoked, threshold 2: %v, want a *ThresholdError", err)
	}
	if got := statuses(rep); !equal(got, verify.Valid, verify.Revoked) {
		t.Errorf("statuses %v, want valid, revoked", got)
	}
	if len(te.Revoked) != 1 || te.Revoked[0] != k.rel2.pub.ID || !strings.Contains(err.Error(), k.rel2.pub.ShortID()) {
		t.Errorf("error %q does not name the revoked key %s", err, k.rel2.pub.ShortID())
	}
	if rep.Payloads[0].Verified {
		t.Error("payload checked after the signatures were refused")
	}

	rep, err = check(v3)
	if err != nil {
		t.Fatalf("rel2 revoked, threshold 1: %v", err)
	}
	if got := statuses(rep); !equal(got, verify.Valid, verify.Revoked) || rep.Signatures.ValidKeys != 1 {
		t.Errorf("statuses %v with %d valid keys", got, rep.Signatures.ValidKeys)
	}

	// Once rel2 is also dropped from the role, its signature only claims a
	// revoked key: still revoked, never unknown.
	v4 := next(t, v3, func(s *verify.RootSigned) { must(t, s.RemoveKey(verify.RoleRelease, k.rel2.pub.ID)) }, k.a)
	rep, err = check(v4)
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(rep); !equal(got, verify.Valid, verify.Revoked) {
		t.Errorf("statuses %v", got)
	}

	var re *verify.RootError
	if _, err := v1.Policy(verify.RoleRelease, now.Add(2*year)); !errors.As(err, &re) || re.Kind != verify.RootExpired {
		t.Errorf("expired root gave a policy: %v", err)
	}
	if _, err := v1.Policy(verify.RoleMirror, now); !errors.As(err, &re) || re.Kind != verify.RootNoRole {
		t.Errorf("missing mirror role: %v", err)
	}
}

func equal(got []verify.Status, want ...verify.Status) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// TestTrustSpecExample keeps TRUST.md's worked example true: its document
// parses and verifies, and its canonical JSON is the bytes the spec shows.
func TestTrustSpecExample(t *testing.T) {
	spec, err := os.ReadFile("TRUST.md")
	must(t, err)
	block := func(tag string) []byte {
		t.Helper()
		m := regexp.MustCompile("(?s)<!-- " + tag + " -->\n```[a-z]*\n(.*?)```").FindSubmatch(spec)
		if m == nil {
			t.Fatalf("TRUST.md has no block marked %q", tag)
		}
		return m[1]
	}
	r, err := verify.ParseRoot(block("example-root"))
	must(t, err)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := r.Verify(at); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Signed json.RawMessage `json:"signed"`
	}
	must(t, json.Unmarshal(block("example-root"), &doc))
	canonical, err := cjson.EncodeCanonical(doc.Signed)
	must(t, err)
	if want := bytes.TrimSuffix(block("example-canonical"), []byte("\n")); !bytes.Equal(canonical, want) {
		t.Errorf("canonical JSON of the example:\n%s\nTRUST.md shows:\n%s", canonical, want)
	}
	v2, err := verify.UpdateRoot(r, block("example-root-2"), at)
	must(t, err)
	if !v2.IsRevoked("b0242f615fe77bb81c7fdb7cfe993d9408b293410d9bf91728463257124d5a43") {
		t.Error("version 2 of the example does not revoke release key 1")
	}
	// The example keys are derived from their names; the signatures are
	// deterministic (Ed25519), so the documents are exactly reproducible.
	root := exampleKey(t, "ferry example root key")
	s := r.Signed()
	again, err := verify.SignRoot(s, root)
	must(t, err)
	if !bytes.Equal(again.Bytes(), block("example-root")) {
		t.Errorf("version 1 made again:\n%s", again.Bytes())
	}
}

func exampleKey(t *testing.T, name string) *verify.Signer {
	seed := sha256.Sum256([]byte(name))
	s, err := verify.NewSigner(ed25519.NewKeyFromSeed(seed[:]), "")
	must(t, err)
	return s
}

// TestProveRootChain: a device re-proves the roots it kept from the one it
// was provisioned with; it ends on the highest root proven, expired or not.
func TestProveRootChain(t *testing.T) {
	k := newTrustKeys(t)
	v1 := k.firstRoot(t)
	expired := func(s *verify.RootSigned) { s.SetExpires(now.Add(-time.Hour)) }
	v2 := next(t, v1, expired, k.a)
	v3 := next(t, v2, expired, k.a)
	forged3 := next(t, v2, nil, k.stranger)
	unsigned4 := next(t, v3, nil)
	tests := []struct {
		name    string
		chain   [][]byte
		version int64 // the root proven
		step    int   // of the root refused; 0: all proven
		kind    verify.RootErrorKind
	}{
		{"nothing kept", nil, 1, 0, ""},
		{"expired last root is still proven", [][]byte{v2.Bytes(), v3.Bytes()}, 3, 0, ""},
		{"unsigned higher version", [][]byte{next(t, v1, nil).Bytes()}, 1, 1, verify.RootBelowThreshold},
		{"chain broken in the middle", [][]byte{v2.Bytes(), forged3.Bytes(), next(t, forged3, nil, k.stranger).Bytes()}, 2, 2, verify.RootBelowThreshold},
		{"unsigned last root", [][]byte{v2.Bytes(), v3.Bytes(), unsigned4.Bytes()}, 3, 3, verify.RootBelowThreshold},
		{"a gap", [][]byte{v3.Bytes()}, 1, 1, verify.RootVersionSkip},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := verify.ProveRootChain(v1, tt.chain)
			if got == nil || got.Version() != tt.version {
				t.Fatalf("proved %v, want v%d (error %v)", got, tt.version, err)
			}
			if tt.step == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var re *verify.RootError
			if !errors.As(err, &re) || re.Step != tt.step || re.Kind != tt.kind {
				t.Fatalf("error %v, want a %s *RootError at step %d", err, tt.kind, tt.step)
			}
		})
	}
}
