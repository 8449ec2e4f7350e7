package signing

import (
	"context"
	"crypto"
	"fmt"
	"os"
	"strings"

	"github.com/ferry-update/ferry/signing/pkcs11uri"
	"github.com/ferry-update/ferry/verify"
)

// Key is a private key opened for signing. Close releases what it holds
// (a PKCS#11 session, a module); a PEM key holds nothing.
type Key interface {
	crypto.Signer
	Close() error
}

// Options say how to unlock a key.
type Options struct {
	// What names the key in errors ("signing key", "mirror key").
	What string
	// Passphrase is asked for when a PEM file is encrypted; nil makes an
	// encrypted key fail with verify.ErrEncryptedKey.
	Passphrase func() ([]byte, error)
	// PIN is asked for when a PKCS#11 URI gives neither pin-value nor
	// pin-source and PINEnv is not set; nil makes such a key fail with
	// *PINError.
	PIN func() ([]byte, error)
	// ModulePath is the PKCS#11 library used when a URI has no
	// module-path; empty means ModuleEnv's value.
	ModulePath string
}

// The environment of keys in PKCS#11 tokens, for hosts that sign
// unattended (a mirror, CI): the module to load when a URI names none,
// and the user PIN when a URI gives none.
const (
	ModuleEnv = "FERRY_PKCS11_MODULE"
	PINEnv    = "FERRY_PKCS11_PIN"
)

// withEnv fills in what the environment gives.
func (o Options) withEnv() Options {
	if o.ModulePath == "" {
		o.ModulePath = os.Getenv(ModuleEnv)
	}
	if p := os.Getenv(PINEnv); p != "" {
		o.PIN = func() ([]byte, error) { return []byte(p), nil }
	}
	return o
}

// Unattended reports whether the key ref names can be opened without
// asking anyone: a file (unencrypted: checked when it is read), a PKCS#11
// URI with its PIN in it or in PINEnv, a KMS URI.
func Unattended(ref string) bool {
	if !pkcs11uri.Is(ref) {
		return true
	}
	u, err := pkcs11uri.Parse(ref)
	if err != nil {
		return false
	}
	return u.PINValue != "" || u.PINSource != "" || os.Getenv(PINEnv) != ""
}

func (o Options) what() string {
	if o.What == "" {
		return "signing key"
	}
	return o.What
}

// kmsSchemes are the KMS URI prefixes sigstore knows. Only hashivault
// suits an isolated site; the others are refused with a reason.
var kmsSchemes = []string{"hashivault://", "awskms://", "gcpkms://", "azurekms://"}

// IsReference reports whether ref names a key in a token or a KMS rather
// than a file.
func IsReference(ref string) bool {
	if pkcs11uri.Is(ref) {
		return true
	}
	for _, s := range kmsSchemes {
		if strings.HasPrefix(ref, s) {
			return true
		}
	}
	return false
}

// Open opens the private key ref names: a PKCS#11 URI, a KMS URI, or
// else a PEM file's path.
func Open(ctx context.Context, ref string, o Options) (Key, error) {
	switch {
	case pkcs11uri.Is(ref):
		u, err := pkcs11uri.Parse(ref)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", o.what(), err)
		}
		k, err := openPKCS11(u, o.withEnv())
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", o.what(), u, err)
		}
		return k, nil
	case IsReference(ref):
		k, err := openKMS(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", o.what(), ref, err)
		}
		return k, nil
	}
	k, err := verify.ReadPrivateKey(o.what(), ref, o.Passphrase)
	if err != nil {
		return nil, err
	}
	return fileKey{k}, nil
}

// Generate makes a new key pair inside the PKCS#11 token ref names, with
// the URI's object label (and id, if given), and opens it. The private
// key never leaves the token; export the public key with
// Key.Public. ref must be a PKCS#11 URI that names no existing key.
func Generate(ref string, alg verify.Algorithm, o Options) (Key, error) {
	if !pkcs11uri.Is(ref) {
		return nil, fmt.Errorf("%s: %q is not a PKCS#11 URI (pkcs11:token=…;object=…)", o.what(), ref)
	}
	u, err := pkcs11uri.Parse(ref)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.what(), err)
	}
	k, err := generatePKCS11(u, alg, o.withEnv())
	if err != nil {
		return nil, fmt.Errorf("generate %s in %s: %w", o.what(), u, err)
	}
	return k, nil
}

// fileKey is a key read from a PEM file.
type fileKey struct{ crypto.Signer }

func (fileKey) Close() error { return nil }

// UnavailableError says a kind of key cannot be used by this ferry:
// PKCS#11 in a build without it, a cloud KMS on an isolated site.
type UnavailableError struct {
	Kind   string // "PKCS#11", "awskms"
	Reason string
}

func (e *UnavailableError) Error() string { return e.Kind + " keys: " + e.Reason }

// NotFoundError says no token, or no key in the token, matches a URI.
type NotFoundError struct {
	What string   // "token", "private key"
	Have []string // what there is instead (token labels, key labels)
}

func (e *NotFoundError) Error() string {
	if len(e.Have) == 0 {
		return fmt.Sprintf("no %s matches (there is none)", e.What)
	}
	return fmt.Sprintf("no %s matches; there are: %s", e.What, strings.Join(e.Have, ", "))
}

// PINError says the token's PIN was missing or wrong.
type PINError struct {
	Missing bool
	Err     error
}

func (e *PINError) Error() string {
	if e.Missing {
		return "the token needs a PIN: give pin-source=FILE (or pin-value=PIN) in the URI, or set FERRY_PKCS11_PIN"
	}
	return fmt.Sprintf("log in to the token: %v", e.Err)
}

func (e *PINError) Unwrap() error { return e.Err }
