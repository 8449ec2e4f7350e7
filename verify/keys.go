package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// Algorithm names a key type ferry can generate and check.
type Algorithm string

// Key algorithms. ECDSAP256 is the default because cosign verifies it on
// registry artifacts; cosign fails on ed25519 signatures there.
const (
	ECDSAP256 Algorithm = "ecdsa-p256"
	ECDSAP384 Algorithm = "ecdsa-p384"
	Ed25519   Algorithm = "ed25519"
	RSA3072   Algorithm = "rsa-3072"
	// RSA is a 2048- or 4096-bit RSA key, accepted on load.
	RSA Algorithm = "rsa"
)

// Algorithms lists what GenerateKey makes, default first.
var Algorithms = []Algorithm{ECDSAP256, ECDSAP384, Ed25519, RSA3072}

// ErrEncryptedKey is returned when a private key is encrypted and no
// passphrase was given.
var ErrEncryptedKey = errors.New("private key is encrypted and no passphrase was given")

// GenerateKey makes a new private key.
func GenerateKey(alg Algorithm) (crypto.Signer, error) {
	switch alg {
	case ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case RSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	}
	return nil, fmt.Errorf("unknown key algorithm %q (want one of %v)", alg, Algorithms)
}

// MarshalPrivateKey encodes a private key as PEM: PKCS#8 in the clear when
// passphrase is empty, else encrypted the way cosign and sigstore encrypt
// keys (scrypt and secretbox, "ENCRYPTED SIGSTORE PRIVATE KEY").
func MarshalPrivateKey(key crypto.Signer, passphrase []byte) ([]byte, error) {
	if len(passphrase) == 0 {
		return cryptoutils.MarshalPrivateKeyToPEM(key)
	}
	enc, err := cryptoutils.MarshalPrivateKeyToEncryptedDER(key, func(bool) ([]byte, error) { return passphrase, nil })
	if err != nil {
		return nil, fmt.Errorf("encrypt private key: %w", err)
	}
	return cryptoutils.PEMEncode(cryptoutils.EncryptedSigstorePrivateKeyPEMType, enc), nil
}

// ReadPrivateKey reads the PEM private key file at path (see
// ParsePrivateKey); what names the key in errors ("signing key").
func ReadPrivateKey(what, path string, passphrase func() ([]byte, error)) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	k, err := ParsePrivateKey(b, passphrase)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	return k, nil
}

// ParsePrivateKey decodes a PEM private key. passphrase is called only when
// the key is encrypted; it may be nil, and then an encrypted key fails with
// ErrEncryptedKey.
func ParsePrivateKey(pemBytes []byte, passphrase func() ([]byte, error)) (crypto.Signer, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("not a PEM private key")
	}
	var key crypto.PrivateKey
	var err error
	switch block.Type {
	case string(cryptoutils.EncryptedSigstorePrivateKeyPEMType), "ENCRYPTED COSIGN PRIVATE KEY":
		if passphrase == nil {
			return nil, ErrEncryptedKey
		}
		pass, perr := passphrase()
		if perr != nil {
			return nil, perr
		}
		der, derr := encrypted.Decrypt(block.Bytes, pass)
		if derr != nil {
			return nil, fmt.Errorf("decrypt private key (wrong passphrase?): %w", derr)
		}
		key, err = cryptoutils.UnmarshalPEMToPrivateKey(cryptoutils.PEMEncode(cryptoutils.PrivateKeyPEMType, der), nil)
	default:
		// Other encrypted forms (PKCS#8 "ENCRYPTED PRIVATE KEY", legacy
		// Proc-Type PEM) ask for the passphrase through sigstore.
		var pf cryptoutils.PassFunc
		if passphrase != nil {
			pf = func(bool) ([]byte, error) { return passphrase() }
		}
		key, err = cryptoutils.UnmarshalPEMToPrivateKey(pemBytes, pf)
	}
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", key)
	}
	if _, err := algorithmOf(signer.Public()); err != nil {
		return nil, err
	}
	return signer, nil
}

// PublicKey is a key that may verify signatures, with its id.
type PublicKey struct {
	Key       crypto.PublicKey
	ID        string // hex SHA-256 of the DER SubjectPublicKeyInfo
	Algorithm Algorithm
	// Owner and Purpose are what a trust root says of the key (RootKey);
	// empty for a key read from a file. Untrusted text for display.
	Owner, Purpose string
}

// NewPublicKey wraps a public key and computes its id.
func NewPublicKey(pub crypto.PublicKey) (*PublicKey, error) {
	alg, err := algorithmOf(pub)
	if err != nil {
		return nil, err
	}
	der, err := cryptoutils.MarshalPublicKeyToDER(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return &PublicKey{Key: pub, ID: hex.EncodeToString(sum[:]), Algorithm: alg}, nil
}

// ParsePublicKey decodes a PEM public key ("PUBLIC KEY", as cosign writes).
func ParsePublicKey(pemBytes []byte) (*PublicKey, error) {
	if block, _ := pem.Decode(pemBytes); block != nil && strings.Contains(block.Type, "PRIVATE KEY") {
		return nil, errors.New("this is a private key; give its public key (the .pub file from ferry key generate)")
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	return NewPublicKey(pub)
}

// PEM encodes the key as a PKIX "PUBLIC KEY" block.
func (k *PublicKey) PEM() ([]byte, error) {
	return cryptoutils.MarshalPublicKeyToPEM(k.Key)
}

// ShortID is the first 16 hex digits of the id, for people.
func (k *PublicKey) ShortID() string { return k.ID[:16] }

func algorithmOf(pub crypto.PublicKey) (Algorithm, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return ECDSAP256, nil
		case elliptic.P384():
			return ECDSAP384, nil
		}
		return "", fmt.Errorf("ECDSA curve %s not supported (want P-256 or P-384)", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return Ed25519, nil
	case *rsa.PublicKey:
		switch bits := k.N.BitLen(); {
		case bits == 3072:
			return RSA3072, nil
		case bits == 2048 || bits == 4096:
			return RSA, nil
		case bits < 2048:
			return "", fmt.Errorf("RSA key of %d bits is too weak (want 2048, 3072 or 4096)", bits)
		default:
			// sigstore's default signer and verifier know only these sizes.
			return "", fmt.Errorf("RSA key of %d bits not supported (want 2048, 3072 or 4096)", bits)
		}
	}
	return "", fmt.Errorf("key type %T not supported", pub)
}

// IsEncryptedPEM reports whether pemBytes holds an encrypted private key.
func IsEncryptedPEM(pemBytes []byte) bool {
	block, _ := pem.Decode(pemBytes)
	return block != nil && (block.Type == string(cryptoutils.EncryptedSigstorePrivateKeyPEMType) || block.Type == "ENCRYPTED COSIGN PRIVATE KEY")
}
