package verify_test

import (
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/verify"
)

// TestReadClaims: a signature's claims read back as they were signed,
// unchecked; a payload that is not one gives only an error.
func TestReadClaims(t *testing.T) {
	k := newTestKey(t, verify.ECDSAP256, "release@example.com")
	d := digest.FromString("manifest")
	c := verify.ReadClaims(k.sign(t, d))
	want := verify.Claims{KeyID: k.pub.ID, Signer: "release@example.com", SignedAt: time.Unix(1700000000, 0).UTC(), Digest: d.String()}
	if c != want {
		t.Errorf("claims %+v, want %+v", c, want)
	}
	bad := verify.ReadClaims(bundle.Signature{Payload: []byte("not json")})
	if bad.Error == "" || bad.KeyID != "" || !bad.SignedAt.IsZero() {
		t.Errorf("claims of a malformed payload: %+v", bad)
	}
}
