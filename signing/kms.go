package signing

import (
	"context"
	"crypto"
	"fmt"
	"strings"

	"github.com/sigstore/sigstore/pkg/signature/kms"
	"github.com/sigstore/sigstore/pkg/signature/kms/hashivault"
)

// hashivaultScheme is the prefix of a key in HashiCorp Vault's (or
// OpenBao's) transit engine, as cosign writes it: hashivault://NAME.
const hashivaultScheme = "hashivault://"

// openKMS opens a key in a KMS: Vault's transit engine, which a site can
// run on its own network. The cloud KMS sigstore knows cannot be reached
// from an isolated site and are refused.
func openKMS(ctx context.Context, ref string) (Key, error) {
	if !strings.HasPrefix(ref, hashivaultScheme) {
		scheme, _, _ := strings.Cut(ref, "://")
		return nil, &UnavailableError{Kind: scheme, Reason: "a cloud KMS cannot be reached from an isolated site; use a key in a PKCS#11 token or Vault's transit engine (hashivault://NAME)"}
	}
	if err := hashivault.ValidReference(ref); err != nil {
		return nil, &KMSError{Ref: ref, Err: err}
	}
	// The hash is what sigstore's Vault signer defaults to; every Sign
	// call passes the hash it signs with (SHA-384 for P-384, none for
	// Ed25519), which takes precedence.
	sv, err := kms.Get(ctx, ref, crypto.SHA256)
	if err != nil {
		return nil, &KMSError{Ref: ref, Err: err}
	}
	// Ask for the public key now: an unreachable Vault, a wrong token or
	// a missing key fails here, before anything is signed or written.
	pub, err := sv.PublicKey()
	if err != nil {
		return nil, &KMSError{Ref: ref, Err: err}
	}
	signer, _, err := sv.CryptoSigner(ctx, func(error) {})
	if err != nil {
		return nil, &KMSError{Ref: ref, Err: err}
	}
	return kmsKey{Signer: signer, pub: pub}, nil
}

// kmsKey is a key in a KMS. Its public key was fetched when it was
// opened.
type kmsKey struct {
	crypto.Signer
	pub crypto.PublicKey
}

func (k kmsKey) Public() crypto.PublicKey { return k.pub }
func (kmsKey) Close() error               { return nil }

// KMSError says a KMS key could not be used: the URI is not valid, the
// KMS is not configured (VAULT_ADDR, VAULT_TOKEN) or cannot be reached,
// or it has no such key.
type KMSError struct {
	Ref string
	Err error
}

func (e *KMSError) Error() string { return fmt.Sprintf("Vault transit key: %v", e.Err) }
func (e *KMSError) Unwrap() error { return e.Err }
