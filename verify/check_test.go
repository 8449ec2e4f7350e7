package verify_test

import (
	"bytes"
	"crypto"
	"errors"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/verify"
)

type testKey struct {
	key    crypto.Signer
	signer *verify.Signer
	pub    *verify.PublicKey
}

func newTestKey(t *testing.T, alg verify.Algorithm, name string) testKey {
	t.Helper()
	k, err := verify.GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := verify.NewSigner(k, name)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{key: k, signer: s, pub: s.PublicKey()}
}

func (k testKey) sign(t *testing.T, d digest.Digest) bundle.Signature {
	t.Helper()
	s, err := k.signer.Sign(d, "demo", time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCheckSignatures(t *testing.T) {
	manifest := digest.FromString("manifest")
	other := digest.FromString("another manifest")
	alice := newTestKey(t, verify.ECDSAP256, "alice")
	bob := newTestKey(t, verify.Ed25519, "bob")
	carol := newTestKey(t, verify.ECDSAP384, "carol")
	dave := newTestKey(t, verify.RSA3072, "dave")
	mallory := newTestKey(t, verify.ECDSAP256, "mallory")

	flipped := alice.sign(t, manifest)
	flipped.Sig = bytes.Clone(flipped.Sig)
	flipped.Sig[len(flipped.Sig)/2] ^= 1
	edited := alice.sign(t, manifest)
	edited.Payload = bytes.Replace(edited.Payload, []byte("alice"), []byte("alicf"), 1)

	tests := []struct {
		name      string
		sigs      []bundle.Signature
		keys      []*verify.PublicKey
		threshold int
		statuses  []verify.Status
		wantErr   bool
	}{
		{"one of one", []bundle.Signature{alice.sign(t, manifest)}, []*verify.PublicKey{alice.pub}, 1, []verify.Status{verify.Valid}, false},
		{"every algorithm, four of four", []bundle.Signature{alice.sign(t, manifest), bob.sign(t, manifest), carol.sign(t, manifest), dave.sign(t, manifest)},
			[]*verify.PublicKey{alice.pub, bob.pub, carol.pub, dave.pub}, 4, []verify.Status{verify.Valid, verify.Valid, verify.Valid, verify.Valid}, false},
		{"below threshold", []bundle.Signature{alice.sign(t, manifest)}, []*verify.PublicKey{alice.pub, bob.pub}, 2, []verify.Status{verify.Valid}, true},
		{"same key twice counts once", []bundle.Signature{alice.sign(t, manifest), alice.sign(t, manifest)}, []*verify.PublicKey{alice.pub, bob.pub}, 2, []verify.Status{verify.Valid, verify.Duplicate}, true},
		{"unknown key", []bundle.Signature{mallory.sign(t, manifest)}, []*verify.PublicKey{alice.pub}, 1, []verify.Status{verify.UnknownKey}, true},
		{"flipped signature byte", []bundle.Signature{flipped}, []*verify.PublicKey{alice.pub}, 1, []verify.Status{verify.BadSignature}, true},
		{"edited payload", []bundle.Signature{edited}, []*verify.PublicKey{alice.pub}, 1, []verify.Status{verify.BadSignature}, true},
		{"signature over another manifest", []bundle.Signature{alice.sign(t, other)}, []*verify.PublicKey{alice.pub}, 1, []verify.Status{verify.WrongDigest}, true},
		{"malformed payload", []bundle.Signature{{Payload: []byte("{}"), Sig: []byte{1}}}, []*verify.PublicKey{alice.pub}, 1, []verify.Status{verify.Malformed}, true},
		{"no signatures", nil, []*verify.PublicKey{alice.pub}, 1, nil, true},
		{"good and bad mixed", []bundle.Signature{mallory.sign(t, manifest), bob.sign(t, manifest)}, []*verify.PublicKey{alice.pub, bob.pub}, 1, []verify.Status{verify.UnknownKey, verify.Valid}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := verify.CheckSignatures(manifest, tt.sigs, tt.keys, tt.threshold)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
			var te *verify.ThresholdError
			if err != nil && !errors.As(err, &te) {
				t.Fatalf("error %v is not a *ThresholdError", err)
			}
			if len(res.Signatures) != len(tt.statuses) {
				t.Fatalf("%d results, want %d", len(res.Signatures), len(tt.statuses))
			}
			for i, s := range res.Signatures {
				if s.Status != tt.statuses[i] {
					t.Errorf("signature %d: %s (%s), want %s", i, s.Status, s.Reason, tt.statuses[i])
				}
			}
		})
	}
}

func TestCheckSignaturesCosignPayload(t *testing.T) {
	// cosign signs a payload without ferry's optional claims; the checker
	// must find the key by trying each.
	manifest := digest.FromString("m")
	alice := newTestKey(t, verify.ECDSAP256, "")
	bob := newTestKey(t, verify.ECDSAP256, "")
	payload, err := bundle.NewSimpleSigning("registry.example/app", manifest, nil)
	if err != nil {
		t.Fatal(err)
	}
	sig := signRaw(t, bob, payload)
	res, err := verify.CheckSignatures(manifest, []bundle.Signature{{Payload: payload, Sig: sig}}, []*verify.PublicKey{alice.pub, bob.pub}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if res.Signatures[0].KeyID != bob.pub.ID {
		t.Errorf("attributed to %s, want bob %s", res.Signatures[0].KeyID, bob.pub.ID)
	}
}

func TestCheckSignaturesPolicyErrors(t *testing.T) {
	alice := newTestKey(t, verify.ECDSAP256, "")
	if _, err := verify.CheckSignatures(digest.FromString("x"), nil, nil, 1); !errors.Is(err, verify.ErrNoKeys) {
		t.Errorf("no keys: %v", err)
	}
	if _, err := verify.CheckSignatures(digest.FromString("x"), nil, []*verify.PublicKey{alice.pub}, 2); err == nil {
		t.Error("threshold above key count accepted")
	}
}

// signRaw signs payload the way cosign does, without ferry's claims.
func signRaw(t *testing.T, k testKey, payload []byte) []byte {
	t.Helper()
	sv, err := signature.LoadDefaultSigner(k.key)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := sv.SignMessage(bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	return sig
}
