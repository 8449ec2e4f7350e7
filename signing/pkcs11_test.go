//go:build cgo && !nopkcs11

package signing_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/signing"
	"github.com/ferry-update/ferry/verify"
)

func softHSM(t *testing.T) testutil.SoftHSM {
	t.Helper()
	h := testutil.NewSoftHSM(t, t.TempDir())
	t.Setenv("SOFTHSM2_CONF", h.Conf)
	if err := h.InitToken("ferry"); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestPKCS11SignAndVerify: keys generated in a SoftHSM2 token sign bundle
// manifests and trust roots that verify against their public keys.
func TestPKCS11SignAndVerify(t *testing.T) {
	h := softHSM(t)
	for _, alg := range []verify.Algorithm{verify.ECDSAP256, verify.ECDSAP384, verify.Ed25519} {
		t.Run(string(alg), func(t *testing.T) {
			uri := h.URI("ferry", "key-"+string(alg))
			gen, err := signing.Generate(uri, alg, signing.Options{})
			if err != nil {
				t.Fatal(err)
			}
			pub, err := verify.NewPublicKey(gen.Public())
			if err != nil {
				t.Fatal(err)
			}
			if pub.Algorithm != alg {
				t.Errorf("generated %s, want %s", pub.Algorithm, alg)
			}
			gen.Close()

			k, err := signing.Open(context.Background(), uri, signing.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer k.Close()
			s, err := verify.NewSigner(k, "hsm")
			if err != nil {
				t.Fatal(err)
			}
			if s.PublicKey().ID != pub.ID {
				t.Fatalf("opened key %s, generated %s", s.PublicKey().ID, pub.ID)
			}
			m := digest.FromString("manifest")
			sig, err := s.Sign(m, "demo", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			res, err := verify.CheckSignatures(m, []bundle.Signature{sig}, []*verify.PublicKey{pub}, 1)
			if err != nil || !res.OK() {
				t.Fatalf("signature made in the token: %v %+v", err, res)
			}
			signed := verify.NewRootSigned(time.Now().Add(time.Hour))
			signed.AddKey(verify.RoleRoot, pub)
			signed.AddKey(verify.RoleRelease, pub)
			root, err := verify.SignRoot(signed, s)
			if err != nil {
				t.Fatal(err)
			}
			if err := root.Verify(time.Now()); err != nil {
				t.Fatalf("trust root signed in the token: %v", err)
			}
			switch alg {
			case verify.Ed25519:
				_ = k.Public().(ed25519.PublicKey)
			default:
				_ = k.Public().(*ecdsa.PublicKey)
			}
		})
	}
}

func TestPKCS11Errors(t *testing.T) {
	h := softHSM(t)
	uri := h.URI("ferry", "release")
	k, err := signing.Generate(uri, verify.ECDSAP256, signing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	k.Close()
	pinFile := filepath.Join(t.TempDir(), "pin")
	os.WriteFile(pinFile, []byte(testutil.SoftHSMPIN+"\n"), 0o600)
	noPIN := "pkcs11:token=ferry;object=release?module-path=" + h.Module
	var nf *signing.NotFoundError
	var pe *signing.PINError
	for _, tc := range []struct {
		name, uri string
		o         signing.Options
		check     func(error) bool
		msg       string
	}{
		{"no such token", strings.Replace(uri, "token=ferry", "token=nope", 1), signing.Options{}, func(err error) bool { return errors.As(err, &nf) && nf.What == "token" }, `"ferry"`},
		{"no such key", strings.Replace(uri, "object=release", "object=nope", 1), signing.Options{}, func(err error) bool { return errors.As(err, &nf) && nf.What == "private key" }, `"release"`},
		{"wrong PIN", strings.Replace(uri, "pin-value="+testutil.SoftHSMPIN, "pin-value=0000", 1), signing.Options{}, func(err error) bool { return errors.As(err, &pe) && !pe.Missing }, "CKR_PIN_INCORRECT"},
		{"no PIN", noPIN, signing.Options{}, func(err error) bool { return errors.As(err, &pe) && pe.Missing }, "pin-source"},
		{"no module", "pkcs11:token=ferry;object=release?pin-value=1", signing.Options{}, func(err error) bool { return err != nil }, "FERRY_PKCS11_MODULE"},
		{"module not a library", "pkcs11:token=ferry;object=release?pin-value=1&module-path=" + pinFile, signing.Options{}, func(err error) bool { return err != nil }, "cannot be loaded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := signing.Open(context.Background(), tc.uri, tc.o)
			if err == nil {
				k.Close()
				t.Fatal("opened")
			}
			if !tc.check(err) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %v: want one saying %q", err, tc.msg)
			}
			if strings.Contains(err.Error(), "pin-value="+testutil.SoftHSMPIN) {
				t.Errorf("error %v shows the PIN", err)
			}
		})
	}
	// The PIN from a file, or from Options.PIN; the module from Options.
	for _, o := range []struct {
		uri string
		o   signing.Options
	}{
		{noPIN + "&pin-source=file:" + pinFile, signing.Options{}},
		{"pkcs11:token=ferry;object=release", signing.Options{ModulePath: h.Module, PIN: func() ([]byte, error) { return []byte(testutil.SoftHSMPIN), nil }}},
	} {
		k, err := signing.Open(context.Background(), o.uri, o.o)
		if err != nil {
			t.Errorf("%s: %v", o.uri, err)
			continue
		}
		k.Close()
	}
	if _, err := signing.Generate(uri, verify.ECDSAP256, signing.Options{}); err == nil || !strings.Contains(err.Error(), "already holds") {
		t.Errorf("a second key with the same label: %v", err)
	}
	if _, err := signing.Generate(strings.Replace(uri, "release", "rsa", 1), verify.RSA3072, signing.Options{}); err == nil {
		t.Error("an RSA key was generated")
	}
}
