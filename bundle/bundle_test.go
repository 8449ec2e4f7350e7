package bundle_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/bundle"
)

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.Uint32() >> 24 & 0x3f) // compressible but not trivially
	}
	return b
}

func TestCreateRead(t *testing.T) {
	tests := []struct {
		name     string
		sizes    []int
		partSize int64
		sigs     int
		wantHead bool // head fits the reserve
	}{
		{"one small payload", []int{1000}, 0, 0, true},
		{"empty payload", []int{0}, 0, 1, true},
		{"split into parts", []int{200 << 10}, 4096, 2, true},
		{"two payloads", []int{5000, 70000}, 8192, 3, true},
		{"head outgrows reserve", []int{300 << 10}, 512, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "b.ferry")
			var srcs []bundle.Source
			var contents [][]byte
			for i, n := range tt.sizes {
				c := randomBytes(n, uint64(i))
				contents = append(contents, c)
				srcs = append(srcs, bundle.Source{Name: "p" + string(rune('a'+i)), Type: bundle.Rootfs, Content: bytes.NewReader(c)})
			}
			res, err := bundle.Create(path, bundle.Options{
				Name: "demo", Version: "1.2.3+build.7", DeviceTypes: []string{"board-a"},
				Created: time.Unix(1700000000, 0), PartSize: tt.partSize,
				Sign: func(d digest.Digest) ([]bundle.Signature, error) {
					var s []bundle.Signature
					for i := 0; i < tt.sigs; i++ {
						p, _ := bundle.NewSimpleSigning("demo", d, map[string]string{"n": string(rune('0' + i))})
						s = append(s, bundle.Signature{Payload: p, Sig: []byte{1, 2, byte(i)}})
					}
					return s, nil
				},
			}, srcs...)
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			st, _ := f.Stat()
			if st.Size() != res.Size {
				t.Errorf("file is %d bytes, Create says %d", st.Size(), res.Size)
			}
			r, err := bundle.NewReader(f)
			if err != nil {
				t.Fatal(err)
			}
			if r.ManifestDigest() != res.ManifestDigest {
				t.Errorf("manifest digest %s, want %s", r.ManifestDigest(), res.ManifestDigest)
			}
			if got := len(r.Signatures()); got != tt.sigs {
				t.Errorf("%d signatures, want %d", got, tt.sigs)
			}
			if r.Config().Tag() != "1.2.3_build.7" {
				t.Errorf("tag %q", r.Config().Tag())
			}
			for i := range contents {
				p, err := r.Next()
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(p)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, contents[i]) {
					t.Errorf("payload %d differs", i)
				}
				if tt.partSize > 0 && int64(len(p.Layers)) < p.CompressedSize/tt.partSize {
					t.Errorf("payload %d: %d parts for %d bytes at part size %d", i, len(p.Layers), p.CompressedSize, tt.partSize)
				}
			}
			if _, err := r.Next(); err != io.EOF {
				t.Errorf("after last payload: %v, want io.EOF", err)
			}
			if gotHead := r.PayloadOffset() <= 64<<10; gotHead != tt.wantHead {
				t.Errorf("payload offset %d", r.PayloadOffset())
			}
		})
	}
}

func TestAddSignatures(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "b.ferry")
	content := randomBytes(100<<10, 9)
	if _, err := bundle.Create(path, bundle.Options{Name: "demo", Version: "1.0.0", DeviceTypes: []string{"x"}, PartSize: 8192},
		bundle.Source{Name: "rootfs", Type: bundle.Rootfs, Content: bytes.NewReader(content)}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if _, err := bundle.AddSignatures(path, func(r *bundle.Reader) ([]bundle.Signature, error) {
			d, old := r.ManifestDigest(), r.Signatures()
			if len(old) != i-1 {
				t.Errorf("round %d: %d existing signatures", i, len(old))
			}
			p, _ := bundle.NewSimpleSigning("demo", d, map[string]string{"i": string(rune('0' + i))})
			return []bundle.Signature{{Payload: p, Sig: []byte{byte(i)}}}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	f, _ := os.Open(path)
	defer f.Close()
	r, err := bundle.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Signatures()) != 3 {
		t.Fatalf("%d signatures", len(r.Signatures()))
	}
	p, _ := r.Next()
	got, err := io.ReadAll(p)
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("payload after signing: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

// TestCreateSameBytesAnyWorkers: a bundle does not depend on the number
// of compression threads (--workers, or the host's CPUs by default). The
// payload spans several of the compressor's 4 MiB jobs (internal/zstd), so
// that the threads really share the work.
func TestCreateSameBytesAnyWorkers(t *testing.T) {
	content := benchInput(13 << 20)
	var first []byte
	for _, workers := range []int{1, 3} {
		path := filepath.Join(t.TempDir(), "b.ferry")
		_, err := bundle.Create(path, bundle.Options{
			Name: "demo", Version: "1.0.0", DeviceTypes: []string{"board-a"},
			Created: time.Unix(1700000000, 0), Workers: workers,
		}, bundle.Source{Name: "rootfs", Type: bundle.Rootfs, Content: bytes.NewReader(content)})
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = b
		} else if !bytes.Equal(b, first) {
			t.Errorf("%d workers made a different bundle (%d bytes) than 1 worker (%d bytes)", workers, len(b), len(first))
		}
	}
}
