//go:build !cgo || nopkcs11

package signing_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/signing"
	"github.com/ferry-update/ferry/verify"
)

// TestNoPKCS11: a build without PKCS#11 says so, for signing and for
// generating.
func TestNoPKCS11(t *testing.T) {
	const uri = "pkcs11:token=ferry;object=release"
	_, err := signing.Open(context.Background(), uri, signing.Options{})
	var ue *signing.UnavailableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "not in this build") {
		t.Errorf("Open: %v", err)
	}
	if _, err := signing.Generate(uri, verify.ECDSAP256, signing.Options{}); !errors.As(err, &ue) {
		t.Errorf("Generate: %v", err)
	}
}
