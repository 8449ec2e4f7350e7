package verify

import (
	"bytes"
	"crypto"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/ferry-update/ferry/bundle"
)

// Signed claims ferry adds to cosign's optional section. cosign ignores
// them; ferry reports them and uses the key id to pick the key.
const (
	ClaimKeyID    = "dev.ferry.keyid"
	ClaimSigner   = "dev.ferry.signer"
	ClaimSignedAt = "dev.ferry.signed-at"
)

// Claims is what a signature says of itself, before anyone checks it:
// the claims ferry adds and the manifest digest it names.
type Claims struct {
	KeyID    string    `json:"keyId,omitempty"`
	Signer   string    `json:"signer,omitempty"`
	SignedAt time.Time `json:"signedAt,omitzero"`
	Digest   string    `json:"digest,omitempty"`
	// Error says why the payload could not be read (then nothing else
	// is set).
	Error string `json:"error,omitempty"`
}

// ReadClaims reads what sig says of itself. Nothing is checked: the
// claims are for showing ('ferry bundle inspect') and for picking the key.
func ReadClaims(sig bundle.Signature) Claims {
	p, err := bundle.ParseSimpleSigning(sig.Payload)
	if err != nil {
		return Claims{Error: err.Error()}
	}
	return claimsOf(p)
}

func claimsOf(p *bundle.SimpleSigning) Claims {
	c := Claims{KeyID: p.OptionalString(ClaimKeyID), Signer: p.OptionalString(ClaimSigner), Digest: p.Critical.Image.DockerManifestDigest}
	if t, err := time.Parse(time.RFC3339, p.OptionalString(ClaimSignedAt)); err == nil {
		c.SignedAt = t
	}
	return c
}

// Signer signs bundle manifests with one private key.
type Signer struct {
	sv   signature.Signer
	pub  *PublicKey
	name string
}

// NewSigner returns a Signer for key. name (e.g. "release@example.com") is
// recorded as a signed claim; it may be empty.
func NewSigner(key crypto.Signer, name string) (*Signer, error) {
	pub, err := NewPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	sv, err := signature.LoadDefaultSigner(key)
	if err != nil {
		return nil, fmt.Errorf("load signer: %w", err)
	}
	return &Signer{sv: sv, pub: pub, name: name}, nil
}

// PublicKey returns the signer's public key.
func (s *Signer) PublicKey() *PublicKey { return s.pub }

// Sign returns a cosign-compatible signature over manifest. ref is the
// repository named in the payload (cosign's docker-reference).
func (s *Signer) Sign(manifest digest.Digest, ref string, at time.Time) (bundle.Signature, error) {
	claims := map[string]string{
		ClaimKeyID:    s.pub.ID,
		ClaimSignedAt: at.UTC().Format(time.RFC3339),
	}
	if s.name != "" {
		claims[ClaimSigner] = s.name
	}
	payload, err := bundle.NewSimpleSigning(ref, manifest, claims)
	if err != nil {
		return bundle.Signature{}, err
	}
	sig, err := s.sv.SignMessage(bytes.NewReader(payload))
	if err != nil {
		return bundle.Signature{}, fmt.Errorf("sign with key %s: %w", s.pub.ShortID(), err)
	}
	return bundle.Signature{Payload: payload, Sig: sig}, nil
}
