//go:build !cgo || nopkcs11

package signing

import (
	"github.com/ferry-update/ferry/signing/pkcs11uri"
	"github.com/ferry-update/ferry/verify"
)

// errNoPKCS11 is what a build without PKCS#11 says.
var errNoPKCS11 = &UnavailableError{Kind: "PKCS#11", Reason: "not in this build of ferry (built without cgo or with -tags nopkcs11); use a ferry built with cgo"}

// PKCS11 reports whether this build can use keys in PKCS#11 tokens.
const PKCS11 = false

func openPKCS11(*pkcs11uri.URI, Options) (Key, error) { return nil, errNoPKCS11 }

func generatePKCS11(*pkcs11uri.URI, verify.Algorithm, Options) (Key, error) {
	return nil, errNoPKCS11
}
