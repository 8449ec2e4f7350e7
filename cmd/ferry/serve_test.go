package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/transport/oci"
)

// selfSignedCert writes a self-signed certificate for 127.0.0.1 and its key
// into dir and returns their paths and a pool that trusts the certificate.
func selfSignedCert(t *testing.T, dir string) (certPath, keyPath string, pool *x509.CertPool) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "ferry test mirror"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certPath, keyPath, pool
}

// TestServeTLS runs 'ferry mirror serve --tls-cert C --tls-key K' in
// process (runMirrorServe) and pulls a bundle over https with a client that
// trusts only the test certificate.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	st, err := mirror.Init(filepath.Join(dir, "mirror"), testutil.MirrorKey(t))
	if err != nil {
		t.Fatal(err)
	}
	alice := testutil.NewKey(t, "alice")
	path := filepath.Join(dir, "gateway-1.0.0.ferry")
	if _, err := bundle.Create(path, bundle.Options{
		Name: "gateway", Version: "1.0.0", DeviceTypes: []string{"board-a"},
		Sign: testutil.SignWith("gateway", time.Now(), alice),
	}, bundle.Source{Name: "rootfs", Type: bundle.Rootfs, Content: bytes.NewReader(make([]byte, 10<<10))}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Add(path); err != nil {
		t.Fatal(err)
	}
	certPath, keyPath, pool := selfSignedCert(t, dir)

	addr := testutil.FreePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		s := &streams{in: bytes.NewReader(nil), out: io.Discard, err: io.Discard}
		done <- runMirrorServe(ctx, s, mirrorServeOptions{listen: addr, cert: certPath, key: keyPath, noCheckins: true}, st.Dir())
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()

	trusting := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	repo := oci.NewRepository(addr, "gateway", oci.Options{Client: trusting})
	var (
		out bytes.Buffer
		h   *oci.Head
	)
	for deadline := time.Now().Add(10 * time.Second); ; {
		out.Reset()
		if h, err = oci.Pull(ctx, repo, "1.0.0", &out); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("pull over https: %v", err)
	}
	if len(h.Signatures) != 1 {
		t.Errorf("pulled %d signatures, want 1", len(h.Signatures))
	}
	if _, err := bundle.NewReader(bytes.NewReader(out.Bytes())); err != nil {
		t.Errorf("pulled bundle: %v", err)
	}

	// A client that does not trust the certificate is refused, and plain
	// http gets no bundle.
	if _, err := oci.Pull(ctx, oci.NewRepository(addr, "gateway", oci.Options{}), "1.0.0", io.Discard); err == nil {
		t.Error("pulled from a self-signed mirror without trusting its certificate")
	}
	if _, err := oci.Pull(ctx, oci.NewRepository(addr, "gateway", oci.Options{PlainHTTP: true}), "1.0.0", io.Discard); err == nil {
		t.Error("pulled over plain http from a TLS mirror")
	}
}
