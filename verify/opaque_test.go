package verify_test

import (
	"crypto"
	"io"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/verify"
)

// opaque hides a private key behind crypto.Signer, as a key in a PKCS#11
// token or a KMS is: sigstore's loaders know only Go's key types.
type opaque struct{ k crypto.Signer }

func (o opaque) Public() crypto.PublicKey { return o.k.Public() }
func (o opaque) Sign(r io.Reader, d []byte, opts crypto.SignerOpts) ([]byte, error) {
	return o.k.Sign(r, d, opts)
}

// TestOpaqueSigner: a bundle signature and a trust root signed through a
// key ferry cannot see verify like those of the same key read from a file,
// for every algorithm.
func TestOpaqueSigner(t *testing.T) {
	manifest := digest.FromString("manifest")
	for _, alg := range verify.Algorithms {
		t.Run(string(alg), func(t *testing.T) {
			k, err := verify.GenerateKey(alg)
			if err != nil {
				t.Fatal(err)
			}
			s, err := verify.NewSigner(opaque{k}, "hsm")
			if err != nil {
				t.Fatal(err)
			}
			sig, err := s.Sign(manifest, "demo", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			res, err := verify.CheckSignatures(manifest, []bundle.Signature{sig}, []*verify.PublicKey{s.PublicKey()}, 1)
			if err != nil || !res.OK() {
				t.Fatalf("bundle signature: %v %+v", err, res)
			}
			signed := verify.NewRootSigned(time.Now().Add(time.Hour))
			for _, role := range []string{verify.RoleRoot, verify.RoleRelease} {
				if err := signed.AddKey(role, s.PublicKey()); err != nil {
					t.Fatal(err)
				}
			}
			root, err := verify.SignRoot(signed, s)
			if err != nil {
				t.Fatal(err)
			}
			if err := root.Verify(time.Now()); err != nil {
				t.Fatalf("trust root: %v", err)
			}
		})
	}
}
