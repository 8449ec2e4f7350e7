package testutil

import (
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/verify"
)

// Key is a fresh release key: the signer and its public key.
type Key struct {
	Signer *verify.Signer
	Pub    *verify.PublicKey
}

// NewKey makes an ECDSA P-256 release key with the given signer name.
func NewKey(t testing.TB, name string) Key {
	t.Helper()
	k, err := verify.GenerateKey(verify.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	s, err := verify.NewSigner(k, name)
	if err != nil {
		t.Fatal(err)
	}
	return Key{Signer: s, Pub: s.PublicKey()}
}

// MirrorKey is a fresh unencrypted mirror key (PEM), as mirror.Init and
// 'ferry mirror init --key' take.
func MirrorKey(t testing.TB) []byte {
	t.Helper()
	k, err := verify.GenerateKey(verify.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	b, err := verify.MarshalPrivateKey(k, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// SignWith is a bundle.Options.Sign that signs the manifest for identity
// at time at, once with each key.
func SignWith(identity string, at time.Time, keys ...Key) func(digest.Digest) ([]bundle.Signature, error) {
	return func(d digest.Digest) ([]bundle.Signature, error) {
		var sigs []bundle.Signature
		for _, k := range keys {
			sig, err := k.Signer.Sign(d, identity, at)
			if err != nil {
				return nil, err
			}
			sigs = append(sigs, sig)
		}
		return sigs, nil
	}
}
