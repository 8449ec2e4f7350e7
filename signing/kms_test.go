package signing_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/signing"
	"github.com/ferry-update/ferry/verify"
)

// fakeVault answers the two calls of Vault's transit engine that signing
// makes (HashiCorp's API documentation: GET /v1/transit/keys/:name, POST
// /v1/transit/sign/:name/:hash_algorithm) for one ECDSA P-256 key, and
// refuses a request without the token. No Vault is packaged in Debian;
// this fake is what the test can run.
func fakeVault(t *testing.T, name, token string) (*httptest.Server, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pemKey, err := cryptoutils.MarshalPublicKeyToPEM(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	reply := func(w http.ResponseWriter, data any) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"data": data})
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Vault-Token") != token {
			http.Error(w, `{"errors":["permission denied"]}`, http.StatusForbidden)
			return
		}
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/v1/transit/keys/"+name:
			reply(w, map[string]any{"latest_version": 1, "keys": map[string]any{"1": map[string]any{"name": "P-256", "public_key": string(pemKey)}}})
		case (r.Method == http.MethodPost || r.Method == http.MethodPut) && r.URL.Path == "/v1/transit/sign/"+name+"/sha2-256":
			var req struct {
				Input     string `json:"input"`
				Prehashed bool   `json:"prehashed"`
			}
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			in, err := base64.StdEncoding.DecodeString(req.Input)
			if err != nil || !req.Prehashed || len(in) != sha256.Size {
				http.Error(w, `{"errors":["want a prehashed SHA-256 digest"]}`, http.StatusBadRequest)
				return
			}
			sig, err := ecdsa.SignASN1(rand.Reader, key, in)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			reply(w, map[string]any{"signature": "vault:v1:" + base64.StdEncoding.EncodeToString(sig), "key_version": 1})
		default:
			http.Error(w, `{"errors":["no handler for route"]}`, http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, key
}

// TestHashivault: a key in Vault's transit engine (hashivault://NAME, as
// cosign takes it) signs a bundle manifest and a trust root that verify
// against its public key; a Vault that refuses, a key it does not have, no
// VAULT_ADDR, and a cloud KMS all fail with a typed error when the key is
// opened.
func TestHashivault(t *testing.T) {
	srv, key := fakeVault(t, "release", "s3cret")
	t.Setenv("VAULT_ADDR", srv.URL)
	t.Setenv("VAULT_TOKEN", "s3cret")
	t.Setenv("TRANSIT_SECRET_ENGINE_PATH", "")
	ctx := context.Background()

	k, err := signing.Open(ctx, "hashivault://release", signing.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	s, err := verify.NewSigner(k, "vault")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := verify.NewPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	if s.PublicKey().ID != pub.ID {
		t.Fatalf("key %s, Vault holds %s", s.PublicKey().ID, pub.ID)
	}
	m := digest.FromString("manifest")
	sig, err := s.Sign(m, "demo", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if res, err := verify.CheckSignatures(m, []bundle.Signature{sig}, []*verify.PublicKey{pub}, 1); err != nil || !res.OK() {
		t.Fatalf("bundle signature made by Vault: %v", err)
	}
	signed := verify.NewRootSigned(time.Now().Add(time.Hour))
	must(t, signed.AddKey(verify.RoleRoot, pub))
	must(t, signed.AddKey(verify.RoleRelease, pub))
	root, err := verify.SignRoot(signed, s)
	must(t, err)
	must(t, root.Verify(time.Now()))

	var ke *signing.KMSError
	var ue *signing.UnavailableError
	for _, tc := range []struct {
		name, ref, env, val string
		check               func(error) bool
		msg                 string
	}{
		{"no such key", "hashivault://other", "", "", func(err error) bool { return errors.As(err, &ke) }, "could not read data from transit key path: /transit/keys/other"},
		{"wrong token", "hashivault://release", "VAULT_TOKEN", "nope", func(err error) bool { return errors.As(err, &ke) }, "permission denied"},
		{"no VAULT_ADDR", "hashivault://release", "VAULT_ADDR", "", func(err error) bool { return errors.As(err, &ke) }, "VAULT_ADDR"},
		{"bad reference", "hashivault://", "", "", func(err error) bool { return errors.As(err, &ke) }, "hashivault://"},
		{"cloud KMS", "awskms:///arn:aws:kms:eu-west-1:1:key/x", "", "", func(err error) bool { return errors.As(err, &ue) }, "isolated site"},
		{"cloud KMS", "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k", "", "", func(err error) bool { return errors.As(err, &ue) }, "isolated site"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv(tc.env, tc.val)
			}
			_, err := signing.Open(ctx, tc.ref, signing.Options{})
			if err == nil || !tc.check(err) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Open(%s): %v, want a typed error saying %q", tc.ref, err, tc.msg)
			}
		})
	}
	if !signing.IsReference("hashivault://release") || signing.IsReference("release.key") {
		t.Error("IsReference")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
