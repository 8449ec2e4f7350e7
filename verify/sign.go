package verify

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"io"
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
// recorded as a signed claim; it may be empty. key is a private key read
// from a file, or any other crypto.Signer of a supported algorithm (a key
// in a PKCS#11 token, a KMS key): both sign as bundle/FORMAT.md §10 says.
func NewSigner(key crypto.Signer, name string) (*Signer, error) {
	pub, err := NewPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	sv, err := loadSigner(key, pub.Algorithm)
	if err != nil {
		return nil, fmt.Errorf("load signer: %w", err)
	}
	return &Signer{sv: sv, pub: pub, name: name}, nil
}

// loadSigner is sigstore's default signer for the key's type; keys that
// are not Go's own private key types (sigstore knows only those) go
// through opaqueSigner, which signs the same way.
func loadSigner(key crypto.Signer, alg Algorithm) (signature.Signer, error) {
	switch key.(type) {
	case *ecdsa.PrivateKey, ed25519.PrivateKey, *rsa.PrivateKey:
		return signature.LoadDefaultSigner(key)
	}
	return opaqueSigner{key: key, hash: signatureHash(alg)}, nil
}

// signatureHash is the hash each algorithm signs with (TRUST.md §4,
// bundle/FORMAT.md §10): 0 for Ed25519, which signs the message itself.
func signatureHash(alg Algorithm) crypto.Hash {
	switch alg {
	case Ed25519:
		return 0
	case ECDSAP384:
		return crypto.SHA384
	}
	return crypto.SHA256
}

// opaqueSigner signs with a crypto.Signer whose private half ferry never
// sees: ECDSA over the hash (ASN.1 DER), pure Ed25519 over the message,
// RSA PKCS#1 v1.5 over the hash, as sigstore's default signers do.
type opaqueSigner struct {
	key  crypto.Signer
	hash crypto.Hash
}

func (o opaqueSigner) PublicKey(...signature.PublicKeyOption) (crypto.PublicKey, error) {
	return o.key.Public(), nil
}

func (o opaqueSigner) SignMessage(message io.Reader, _ ...signature.SignOption) ([]byte, error) {
	msg, err := io.ReadAll(message)
	if err != nil {
		return nil, err
	}
	if o.hash == 0 {
		return o.key.Sign(rand.Reader, msg, crypto.Hash(0))
	}
	h := o.hash.New()
	h.Write(msg)
	return o.key.Sign(rand.Reader, h.Sum(nil), o.hash)
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
