package verify_test

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/verify"
)

// BenchmarkVerifyBundle checks a signed bundle of 64 MiB of payload the way
// `ferry verify` does: ECDSA P-256 signature over the manifest, then every
// part's SHA-256 without decompressing. MB/s is over the bundle file, the
// figure scripts/bench.sh compares with openssl dgst -sha256.
func BenchmarkVerifyBundle(b *testing.B) {
	key, err := verify.GenerateKey(verify.ECDSAP256)
	if err != nil {
		b.Fatal(err)
	}
	signer, err := verify.NewSigner(key, "bench")
	if err != nil {
		b.Fatal(err)
	}
	// Half random, half zeros: a bundle about as large as the content.
	data := make([]byte, 64<<20)
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < len(data); i += 2 << 10 {
		for j := i; j < i+1<<10; j++ {
			data[j] = byte(r.Uint32())
		}
	}
	path := filepath.Join(b.TempDir(), "bench.ferry")
	res, err := bundle.Create(path, bundle.Options{
		Name: "bench", Version: "1.0.0", DeviceTypes: []string{"bench-board"},
		Created: time.Unix(1700000000, 0),
		Sign: func(d digest.Digest) ([]bundle.Signature, error) {
			s, err := signer.Sign(d, "bench", time.Unix(1700000000, 0))
			return []bundle.Signature{s}, err
		},
	}, bundle.Source{Name: "rootfs", Type: bundle.Rootfs, Content: bytes.NewReader(data)})
	if err != nil {
		b.Fatal(err)
	}
	policy := verify.Policy{Keys: []*verify.PublicKey{signer.PublicKey()}, Threshold: 1, DeviceType: "bench-board"}

	b.SetBytes(res.Size)
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		rep, err := verify.Bundle(f, policy)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		if !rep.Payloads[0].Verified {
			b.Fatal("payload not verified")
		}
	}
}
