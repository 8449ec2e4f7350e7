package tufrepo

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// tufSigner signs TUF metadata with one of verify's key types, mapped to
// the TUF key types go-tuf verifies:
//
//	ECDSA P-256  keytype "ecdsa", scheme "ecdsa-sha2-nistp256" (the default)
//	ECDSA P-384  keytype "ecdsa", scheme "ecdsa-sha2-nistp384"
//	ed25519      keytype "ed25519", scheme "ed25519"
//	RSA          keytype "rsa", scheme "rsassa-pss-sha256"
//
// go-tuf's own Metadata.Sign derives the key id with scheme
// ecdsa-sha2-nistp256 for every ECDSA key, which would not match a P-384
// key's entry in root.json, so signing is done here: the signature is over
// the canonical JSON of the signed part, as the TUF spec says.
type tufSigner struct {
	key  crypto.Signer
	tkey *metadata.Key
	id   string
	hash crypto.Hash // 0 for ed25519
	pss  bool
}

func newTUFSigner(k crypto.Signer) (*tufSigner, error) {
	tk, hash, pss, err := tufKey(k.Public())
	if err != nil {
		return nil, err
	}
	id, err := tk.ID()
	if err != nil {
		return nil, err
	}
	return &tufSigner{key: k, tkey: tk, id: id, hash: hash, pss: pss}, nil
}

// tufKey maps a public key to its TUF key entry and how it signs.
func tufKey(pub crypto.PublicKey) (k *metadata.Key, hash crypto.Hash, pss bool, err error) {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		pemKey, err := cryptoutils.MarshalPublicKeyToPEM(p)
		if err != nil {
			return nil, 0, false, err
		}
		k := &metadata.Key{Type: metadata.KeyTypeECDSA_SHA2_P256, Value: metadata.KeyVal{PublicKey: string(pemKey)}}
		switch p.Curve {
		case elliptic.P256():
			k.Scheme = metadata.KeySchemeECDSA_SHA2_P256
			return k, crypto.SHA256, false, nil
		case elliptic.P384():
			k.Scheme = metadata.KeySchemeECDSA_SHA2_P384
			return k, crypto.SHA384, false, nil
		}
		return nil, 0, false, fmt.Errorf("ECDSA curve %s has no TUF scheme (want P-256 or P-384)", p.Curve.Params().Name)
	case ed25519.PublicKey:
		k, err := metadata.KeyFromPublicKey(p)
		return k, 0, false, err
	case *rsa.PublicKey:
		k, err := metadata.KeyFromPublicKey(p)
		return k, crypto.SHA256, true, err
	}
	return nil, 0, false, fmt.Errorf("key type %T has no TUF key type", pub)
}

// sign signs payload as the key's scheme wants.
func (s *tufSigner) sign(payload []byte) ([]byte, error) {
	if s.hash == 0 {
		return s.key.Sign(rand.Reader, payload, crypto.Hash(0))
	}
	h := s.hash.New()
	h.Write(payload)
	var opts crypto.SignerOpts = s.hash
	if s.pss {
		opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: s.hash}
	}
	return s.key.Sign(rand.Reader, h.Sum(nil), opts)
}

// signMetadata replaces m's signatures by signatures of signers.
func signMetadata[T metadata.Roles](m *metadata.Metadata[T], signers ...*tufSigner) error {
	payload, err := cjson.EncodeCanonical(m.Signed)
	if err != nil {
		return fmt.Errorf("canonical JSON: %w", err)
	}
	m.Signatures = []metadata.Signature{}
	for _, s := range signers {
		sig, err := s.sign(payload)
		if err != nil {
			return fmt.Errorf("sign with key %s: %w", s.id[:16], err)
		}
		m.Signatures = append(m.Signatures, metadata.Signature{KeyID: s.id, Signature: sig})
	}
	return nil
}
