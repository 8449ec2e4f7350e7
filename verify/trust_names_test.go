package verify_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/verify"
)

// TestRootKeyNames: a root names its keys' owners and purposes (spec
// version 2, written only when a key is named); the names reach the
// policy, every signature verdict and the threshold error, and a root
// without names stays spec version 1.
func TestRootKeyNames(t *testing.T) {
	k := newTrustKeys(t)
	v1 := k.firstRoot(t)
	if v1.Signed().SpecVersion != verify.RootSpecVersion {
		t.Fatalf("a root without names is spec %q", v1.Signed().SpecVersion)
	}
	v2 := next(t, v1, func(s *verify.RootSigned) {
		must(t, s.SetKeyNames(k.rel1.pub.ID, "Alice Example", "release signing, CI"))
		must(t, s.SetKeyNames(k.a.pub.ID, "Security team", ""))
	}, k.a)
	if got := v2.Signed().SpecVersion; got != verify.RootSpecVersion2 {
		t.Fatalf("a root with names is spec %q, want %q", got, verify.RootSpecVersion2)
	}
	// A device holding v1 (this ferry) takes v2; it reads back the same.
	if _, err := verify.UpdateRoot(v1, v2.Bytes(), now); err != nil {
		t.Fatal(err)
	}
	again, err := verify.ParseRoot(v2.Bytes())
	must(t, err)
	if ki := again.Info(now).Roles[verify.RoleRelease].Keys[0]; ki.Owner != "Alice Example" || ki.Purpose != "release signing, CI" {
		t.Errorf("Info: %+v", ki)
	}
	p, err := again.Policy(verify.RoleRelease, now)
	must(t, err)
	m := digest.FromString("manifest")
	res, err := verify.CheckSignatures(m, []bundle.Signature{k.rel1.sign(t, m)}, p.Keys, 1)
	must(t, err)
	if s := res.Signatures[0]; s.Owner != "Alice Example" || s.Purpose != "release signing, CI" || s.Signer != "rel1" {
		t.Errorf("signature verdict: %+v", s)
	}
	// Revoke Alice's key: the refusal of a bundle she signed names her.
	v3 := next(t, v2, func(s *verify.RootSigned) { must(t, s.Revoke(k.rel1.pub.ID)) }, k.a)
	p, err = v3.Policy(verify.RoleRelease, now)
	must(t, err)
	path := filepath.Join(t.TempDir(), "b.ferry")
	_, err = bundle.Create(path, bundle.Options{
		Name: "demo", Version: "1.0.0", DeviceTypes: []string{"board"}, Created: now,
		Sign: func(d digest.Digest) ([]bundle.Signature, error) { return []bundle.Signature{k.rel1.sign(t, d)}, nil },
	}, bundle.Source{Name: "rootfs", Type: bundle.Rootfs, Content: strings.NewReader("hello")})
	must(t, err)
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	rep, err := verify.Bundle(f, p)
	var te *verify.ThresholdError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "revoked key(s) "+k.rel1.pub.ID[:16]+" (Alice Example)") {
		t.Errorf("revoked: %v", err)
	}
	if rep == nil || rep.Signatures.Signatures[0].Status != verify.Revoked || rep.Signatures.Signatures[0].Owner != "Alice Example" {
		t.Errorf("revoked verdict: %+v", rep)
	}
	// Names removed: back to spec version 1.
	v4 := next(t, v3, func(s *verify.RootSigned) {
		must(t, s.SetKeyNames(k.rel1.pub.ID, "", ""))
		must(t, s.SetKeyNames(k.a.pub.ID, "", ""))
	}, k.a)
	if v4.Signed().SpecVersion != verify.RootSpecVersion {
		t.Errorf("names removed: spec %q", v4.Signed().SpecVersion)
	}
}

// TestRootKeyNamesRefused: owner and purpose are checked where a root is
// read (a forged or hand-edited root) and where one is made.
func TestRootKeyNamesRefused(t *testing.T) {
	k := newTrustKeys(t)
	v1 := k.firstRoot(t)
	for _, tc := range []struct {
		name, spec string
		owner      any
		want       string
	}{
		{"names in spec 1", "1", "Alice", `owner and purpose need spec_version "2"`},
		{"unknown spec", "3", "Alice", "knows only"},
		{"control character", "2", "Alice\x1b[2J", "control character"},
		{"bidi override", "2", "Alice\u202e", "control character"},
		{"too long", "2", strings.Repeat("a", 129), "more than 128"},
		{"white space", "2", " Alice", "white space"},
		{"empty but present", "2", "", "normal form"},
		{"not a string", "2", 7, "owner"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := forge(t, v1, func(s map[string]any) {
				s["spec_version"] = tc.spec
				key := s["keys"].(map[string]any)[k.rel1.pub.ID].(map[string]any)
				key["owner"] = tc.owner
			}, k.a)
			_, err := verify.ParseRoot(doc)
			var re *verify.RootError
			if !errors.As(err, &re) || re.Kind != verify.RootMalformed || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want a malformed root saying %q", err, tc.want)
			}
		})
	}
	s := v1.Signed()
	for _, bad := range []string{"a\nb", strings.Repeat("x", 300), "\u2066x"} {
		if err := s.SetKeyNames(k.rel1.pub.ID, "ok", bad); err == nil {
			t.Errorf("SetKeyNames accepted the purpose %q", bad)
		}
	}
	if err := s.SetKeyNames(k.stranger.pub.ID, "x", ""); err == nil {
		t.Error("SetKeyNames named a key the root does not hold")
	}
}

// TestRootSignatures: how far a root is from its thresholds, role by role,
// as signatures arrive one person at a time; a key the new root revokes
// counts for neither role.
func TestRootSignatures(t *testing.T) {
	k := newTrustKeys(t)
	s := verify.NewRootSigned(now.Add(year))
	addKeys(t, &s, verify.RoleRoot, k.a, k.b, k.c)
	must(t, s.SetThreshold(verify.RoleRoot, 2))
	addKeys(t, &s, verify.RoleRelease, k.rel1)
	must(t, s.SetKeyNames(k.a.pub.ID, "Alice", ""))
	v1 := signRoot(t, s, k.a, k.b)

	// v2 revokes C and adds rel2 as a root key: it needs 2 of v1's {A, B, C}
	// and 2 of its own {A, B, C, rel2}, C never counting.
	next := func(keys ...testKey) *verify.Root {
		return signRoot(t, func() verify.RootSigned {
			s := v1.Signed()
			s.Version++
			must(t, s.Revoke(k.c.pub.ID))
			must(t, s.AddKey(verify.RoleRoot, k.rel2.pub))
			return s
		}(), keys...)
	}
	ids := func(keys []verify.KeyInfo) []string {
		var out []string
		for _, k := range keys {
			out = append(out, k.ID[:4])
		}
		return out
	}
	for _, tc := range []struct {
		signers       []testKey
		signed, unsig [2]int
		met           [2]bool
	}{
		{nil, [2]int{0, 0}, [2]int{2, 3}, [2]bool{false, false}},
		{[]testKey{k.a}, [2]int{1, 1}, [2]int{1, 2}, [2]bool{false, false}},
		{[]testKey{k.a, k.c}, [2]int{1, 1}, [2]int{1, 2}, [2]bool{false, false}},
		{[]testKey{k.a, k.rel2}, [2]int{1, 2}, [2]int{1, 1}, [2]bool{false, true}},
		{[]testKey{k.a, k.b}, [2]int{2, 2}, [2]int{0, 1}, [2]bool{true, true}},
	} {
		v2 := next(tc.signers...)
		roles := v2.RootSignatures(v1)
		if len(roles) != 2 || roles[0].Of != 1 || roles[1].Of != 2 {
			t.Fatalf("roles %+v", roles)
		}
		for i, rs := range roles {
			if len(rs.Signed) != tc.signed[i] || len(rs.Unsigned) != tc.unsig[i] || rs.Met() != tc.met[i] {
				t.Errorf("signed by %d key(s), role of v%d: signed %v, may sign %v, met %v", len(tc.signers), rs.Of, ids(rs.Signed), ids(rs.Unsigned), rs.Met())
			}
		}
		if _, err := verify.UpdateRoot(v1, v2.Bytes(), now); (err == nil) != (tc.met[0] && tc.met[1]) {
			t.Errorf("UpdateRoot disagrees: %v", err)
		}
	}
	if own := v1.RootSignatures(nil); len(own) != 1 || own[0].Signed[0].Owner != "Alice" && own[0].Signed[1].Owner != "Alice" {
		t.Errorf("own role: %+v", own)
	}
}
