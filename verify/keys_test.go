package verify_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/verify"
)

func TestKeyRoundTrip(t *testing.T) {
	for _, alg := range verify.Algorithms {
		for _, pass := range []string{"", "correct horse"} {
			t.Run(string(alg)+"/encrypted="+boolString(pass != ""), func(t *testing.T) {
				key, err := verify.GenerateKey(alg)
				if err != nil {
					t.Fatal(err)
				}
				privPEM, err := verify.MarshalPrivateKey(key, []byte(pass))
				if err != nil {
					t.Fatal(err)
				}
				if got := verify.IsEncryptedPEM(privPEM); got != (pass != "") {
					t.Errorf("IsEncryptedPEM = %v", got)
				}
				back, err := verify.ParsePrivateKey(privPEM, func() ([]byte, error) { return []byte(pass), nil })
				if err != nil {
					t.Fatal(err)
				}
				want, _ := verify.NewPublicKey(key.Public())
				got, _ := verify.NewPublicKey(back.Public())
				if got.ID != want.ID || got.Algorithm != alg {
					t.Errorf("round trip: id %s alg %s, want %s %s", got.ID, got.Algorithm, want.ID, alg)
				}
				pubPEM, err := want.PEM()
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.HasPrefix(pubPEM, []byte("-----BEGIN PUBLIC KEY-----")) {
					t.Errorf("public key PEM starts %q", pubPEM[:30])
				}
				parsed, err := verify.ParsePublicKey(pubPEM)
				if err != nil || parsed.ID != want.ID {
					t.Errorf("ParsePublicKey: %v, id %v", err, parsed)
				}
				if len(want.ID) != 64 || want.ShortID() != want.ID[:16] {
					t.Errorf("key id %q", want.ID)
				}
			})
		}
	}
}

func boolString(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func TestParsePrivateKeyErrors(t *testing.T) {
	key, _ := verify.GenerateKey(verify.ECDSAP256)
	enc, _ := verify.MarshalPrivateKey(key, []byte("secret"))
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	weakDER, _ := x509.MarshalPKCS8PrivateKey(weak)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	p224DER, _ := x509.MarshalPKCS8PrivateKey(p224)
	tests := []struct {
		name string
		pem  []byte
		pass func() ([]byte, error)
		want string
	}{
		{"not PEM", []byte("hello"), nil, "not a PEM private key"},
		{"encrypted without passphrase", enc, nil, "encrypted and no passphrase"},
		{"wrong passphrase", enc, func() ([]byte, error) { return []byte("nope"), nil }, "wrong passphrase"},
		{"weak RSA", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: weakDER}), nil, "too weak"},
		{"unsupported curve", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p224DER}), nil, "not supported"},
		{"garbage DER", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}), nil, "parse private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := verify.ParsePrivateKey(tt.pem, tt.pass)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
	if _, err := verify.ParsePrivateKey(enc, nil); !errors.Is(err, verify.ErrEncryptedKey) {
		t.Errorf("encrypted key without passphrase: %v, want ErrEncryptedKey", err)
	}
}

func FuzzParsePublicKey(f *testing.F) {
	key, _ := verify.GenerateKey(verify.ECDSAP256)
	pub, _ := verify.NewPublicKey(key.Public())
	p, _ := pub.PEM()
	f.Add(p)
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := verify.ParsePublicKey(b)
		if err == nil && (k.ID == "" || k.Algorithm == "") {
			t.Fatalf("accepted key without id or algorithm")
		}
	})
}

func FuzzParsePrivateKey(f *testing.F) {
	key, _ := verify.GenerateKey(verify.Ed25519)
	plain, _ := verify.MarshalPrivateKey(key, nil)
	f.Add(plain)
	f.Fuzz(func(t *testing.T, b []byte) {
		// Encrypted keys would make every input cost a scrypt run; the
		// fuzzer checks the parsing around it.
		if verify.IsEncryptedPEM(b) {
			return
		}
		k, err := verify.ParsePrivateKey(b, nil)
		if err == nil && k == nil {
			t.Fatal("nil key without error")
		}
	})
}
