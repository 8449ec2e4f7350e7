package verify_test

import (
	"errors"
	"testing"

	"github.com/ferry-update/ferry/verify"
)

func TestLooksLikeKeyID(t *testing.T) {
	for _, tc := range []struct {
		arg  string
		want bool
	}{
		{"0123abcd", true},
		{"0123abc", false}, // too short to name a key safely
		{"0123ABCD", false},
		{"rel.pub", false},
		{"deadbeefdeadbeef.pub", false},
		{"", false},
		{"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", true},
		{"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef00", true}, // too long: resolves to nothing, not a file
	} {
		if got := verify.LooksLikeKeyID(tc.arg); got != tc.want {
			t.Errorf("LooksLikeKeyID(%q) = %v, want %v", tc.arg, got, tc.want)
		}
	}
}

func TestKeyIDByPrefix(t *testing.T) {
	k := newTrustKeys(t)
	s := k.firstRoot(t).Signed()
	rel := k.rel1.pub.ID
	for _, tc := range []struct {
		name    string
		prefix  string
		want    string
		matches int // of the *KeyIDError; -1: no error
	}{
		{"unique prefix", rel[:8], rel, -1},
		{"longer prefix", rel[:20], rel, -1},
		{"full id of a key", rel, rel, -1},
		{"full id of no key", k.stranger.pub.ID, k.stranger.pub.ID, -1},
	} {
		got, err := s.KeyIDByPrefix(tc.prefix)
		var ke *verify.KeyIDError
		switch {
		case tc.matches < 0 && (err != nil || got != tc.want):
			t.Errorf("%s: KeyIDByPrefix(%s) = %q, %v; want %q", tc.name, tc.prefix, got, err, tc.want)
		case tc.matches >= 0 && (!errors.As(err, &ke) || ke.Matches != tc.matches || ke.Prefix != tc.prefix):
			t.Errorf("%s: KeyIDByPrefix(%s) = %q, %v; want a KeyIDError with %d match(es)", tc.name, tc.prefix, got, err, tc.matches)
		}
	}
	// Two keys whose ids share MinKeyIDPrefix digits cannot be generated
	// on purpose, so the ambiguous and unknown cases use made-up ids.
	s.Keys = map[string]verify.RootKey{"abcdef0100": {}, "abcdef0199": {}}
	if _, err := s.KeyIDByPrefix("abcdef01"); err == nil || err.Error() != "key id prefix abcdef01 is ambiguous: give more digits" {
		t.Errorf("ambiguous prefix: %v", err)
	}
	if _, err := s.KeyIDByPrefix("abcdef02"); err == nil || err.Error() != "no key in the root has an id starting with abcdef02" {
		t.Errorf("unknown prefix: %v", err)
	}
}

func TestRootNextAndSignNext(t *testing.T) {
	k := newTrustKeys(t)
	v1 := k.firstRoot(t) // root role {A, B}, threshold 1
	expired := signRoot(t, func() verify.RootSigned {
		s := v1.Signed()
		s.SetExpires(now.Add(-year))
		return s
	}(), k.a)
	unsigned := signRoot(t, v1.Signed())
	errEdit := errors.New("edit refused")
	addRel2 := func(s *verify.RootSigned) error { return s.AddKey(verify.RoleRelease, k.rel2.pub) }
	rootThreshold2 := func(s *verify.RootSigned) error { return s.SetThreshold(verify.RoleRoot, 2) }
	for _, tc := range []struct {
		name     string
		old      *verify.Root
		edit     func(*verify.RootSigned) error
		signers  []testKey
		editable verify.RootErrorKind // "" : may be edited
		editErr  error
		verdict  verify.RootErrorKind // "": accepted
	}{
		{name: "renew", old: v1, signers: []testKey{k.a}},
		{name: "add a key", old: v1, edit: addRel2, signers: []testKey{k.b}},
		{name: "renew an expired root", old: expired, signers: []testKey{k.a}},
		{name: "root without signatures", old: unsigned, editable: verify.RootBelowThreshold},
		{name: "edit fails", old: v1, edit: func(*verify.RootSigned) error { return errEdit }, editErr: errEdit},
		{name: "no signer", old: v1, verdict: verify.RootBelowThreshold},
		{name: "stranger signs", old: v1, signers: []testKey{k.stranger}, verdict: verify.RootBelowThreshold},
		{name: "new threshold wants both", old: v1, edit: rootThreshold2, signers: []testKey{k.a}, verdict: verify.RootBelowThreshold},
		{name: "new threshold met", old: v1, edit: rootThreshold2, signers: []testKey{k.a, k.b}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.old.CheckEditable(now)
			var re *verify.RootError
			if tc.editable != "" {
				if !errors.As(err, &re) || re.Kind != tc.editable {
					t.Fatalf("CheckEditable = %v, want kind %s", err, tc.editable)
				}
				return
			}
			if err != nil {
				t.Fatalf("CheckEditable = %v", err)
			}
			expires := now.Add(2 * year)
			signed, err := tc.old.Next(expires, tc.edit)
			if tc.editErr != nil {
				if !errors.Is(err, tc.editErr) {
					t.Fatalf("Next = %v, want %v", err, tc.editErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if signed.Version != tc.old.Version()+1 {
				t.Errorf("next version %d, want %d", signed.Version, tc.old.Version()+1)
			}
			if tc.old.Signed().Version != tc.old.Version() {
				t.Error("Next changed the old root")
			}
			var signers []*verify.Signer
			for _, k := range tc.signers {
				signers = append(signers, k.signer)
			}
			next, verdict, err := tc.old.SignNext(signed, now, signers...)
			if err != nil {
				t.Fatal(err)
			}
			if !next.Expires().Equal(expires.Truncate(1e9)) {
				t.Errorf("expires %v, want %v", next.Expires(), expires)
			}
			switch {
			case tc.verdict == "" && verdict != nil:
				t.Errorf("verdict %v, want accepted", verdict)
			case tc.verdict != "" && (!errors.As(verdict, &re) || re.Kind != tc.verdict):
				t.Errorf("verdict %v, want kind %s", verdict, tc.verdict)
			}
			if verdict == nil {
				if _, err := verify.UpdateRoot(tc.old, next.Bytes(), now); err != nil {
					t.Errorf("a device holding the old root refuses the next: %v", err)
				}
			}
		})
	}
}
