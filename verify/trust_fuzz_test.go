package verify_test

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"testing"

	"github.com/ferry-update/ferry/verify"
)

// FuzzParseRoot feeds ParseRoot hostile documents. It must never panic, and
// a document it accepts must survive being written again by ferry: same
// signed content, same signatures, and UpdateRoot to itself is no change.
func FuzzParseRoot(f *testing.F) {
	f.Add(seedRoot(f, false))
	f.Add(seedRoot(f, true)) // spec version 2: keys with owner and purpose
	if spec, err := os.ReadFile("TRUST.md"); err == nil {
		if m := regexp.MustCompile("(?s)<!-- example-root -->\n```json\n(.*?)```").FindSubmatch(spec); m != nil {
			f.Add(m[1])
		}
	}
	f.Add([]byte(`{"signed":{},"signatures":[]}`))
	f.Add([]byte(`{"signed":{"_type":"ferry-root","spec_version":"1","version":1,"expires":"2030-01-01T00:00:00Z","keys":{},"roles":{},"revoked":[]},"signatures":null}`))
	f.Add([]byte(`{"a":[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]}`))
	f.Add([]byte(`{"signed":{"version":1e400}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := verify.ParseRoot(data)
		if err != nil {
			if r != nil {
				t.Fatal("a root and an error")
			}
			return
		}
		_ = r.Verify(now)
		again, err := r.AddSignatures()
		if err != nil {
			t.Fatalf("accepted, but written again it is refused: %v", err)
		}
		a, _ := json.Marshal(r.Signed())
		b, _ := json.Marshal(again.Signed())
		if !bytes.Equal(a, b) {
			t.Fatalf("signed part changed when written again:\n%s\n%s", a, b)
		}
		if !equalStrings(r.Signatures(), again.Signatures()) {
			t.Fatalf("signatures changed: %v, %v", r.Signatures(), again.Signatures())
		}
		if same, err := verify.UpdateRoot(r, again.Bytes(), r.Expires().AddDate(0, 0, -1)); err == nil && same != r {
			t.Fatal("the same root again is not a no-op")
		}
	})
}

// seedRoot returns a valid, signed trust root document, with its key
// named when named is set.
func seedRoot(f *testing.F, named bool) []byte {
	key, err := verify.GenerateKey(verify.Ed25519)
	if err != nil {
		f.Fatal(err)
	}
	signer, err := verify.NewSigner(key, "")
	if err != nil {
		f.Fatal(err)
	}
	s := verify.NewRootSigned(now.AddDate(1, 0, 0))
	for _, role := range []string{verify.RoleRoot, verify.RoleRelease} {
		if err := s.AddKey(role, signer.PublicKey()); err != nil {
			f.Fatal(err)
		}
	}
	if named {
		if err := s.SetKeyNames(signer.PublicKey().ID, "Security team", "root and release, offline"); err != nil {
			f.Fatal(err)
		}
	}
	r, err := verify.SignRoot(s, signer)
	if err != nil {
		f.Fatal(err)
	}
	return r.Bytes()
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
