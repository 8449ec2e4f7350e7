package transport_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/mirror/server"
	"github.com/ferry-update/ferry/transport"
	"github.com/ferry-update/ferry/transport/oci"
)

// places makes one bundle, gateway 1.0.0, and every kind of place that
// holds it, with sensor 2.0.0 beside it where a place holds several.
type places struct {
	file, dir, mirror, stick string
	registry                 string // oci://HOST/gateway (the mirror, served)
	url                      string // the bundle file over HTTP
	bundle                   []byte // gateway's canonical archive
	manifest                 digest.Digest
}

func newPlaces(t *testing.T) *places {
	t.Helper()
	p := &places{dir: t.TempDir()}
	p.file, p.manifest = testutil.MakeBundle(t, p.dir, "gateway", "1.0.0", 3000, 0)
	testutil.MakeBundle(t, filepath.Join(p.dir), "sensor", "2.0.0", 1000, 0)
	os.WriteFile(filepath.Join(p.dir, "notes.txt"), []byte("not a bundle"), 0o644)
	var err error
	if p.bundle, err = os.ReadFile(p.file); err != nil {
		t.Fatal(err)
	}
	p.mirror = filepath.Join(t.TempDir(), "m")
	st, err := mirror.Init(p.mirror, testutil.MirrorKey(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Sync(context.Background(), p.dir, mirror.SyncOptions{}); err != nil {
		t.Fatal(err)
	}
	// A mounted stick: a directory holding ferry/, a layout without TUF.
	p.stick = t.TempDir()
	copyTree(t, p.mirror, filepath.Join(p.stick, "ferry"), "tuf", "keys")
	srv := httptest.NewServer(server.NewHandler(st, server.HandlerOptions{}))
	t.Cleanup(srv.Close)
	p.registry = oci.Scheme + strings.TrimPrefix(srv.URL, "http://") + "/gateway"
	files := httptest.NewServer(http.FileServer(http.Dir(p.dir)))
	t.Cleanup(files.Close)
	p.url = files.URL + "/" + filepath.Base(p.file)
	return p
}

func copyTree(t *testing.T, from, to string, skip ...string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		for _, s := range skip {
			if rel == s {
				return filepath.SkipDir
			}
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpen(t *testing.T) {
	p := newPlaces(t)
	ctx := context.Background()
	o := transport.Options{PlainHTTP: true, Stdin: bytes.NewReader(p.bundle)}
	for _, tc := range []struct {
		where string
		kind  transport.Kind
		refs  []string // entries, by Ref suffix
		blobs bool     // Head and OpenBlob work
	}{
		{"-", transport.KindStdin, []string{"-"}, false},
		{p.url, transport.KindURL, []string{p.url}, false},
		{p.file, transport.KindFile, []string{p.file}, true},
		{p.dir, transport.KindDir, []string{"gateway-1.0.0.ferry", "notes.txt", "sensor-2.0.0.ferry"}, true},
		{p.mirror, transport.KindMirror, []string{"gateway:1.0.0", "sensor:2.0.0"}, true},
		{p.stick, transport.KindStick, []string{"ferry/gateway:1.0.0", "ferry/sensor:2.0.0"}, true},
		{filepath.Join(p.stick, "ferry"), transport.KindStick, []string{"ferry/gateway:1.0.0", "ferry/sensor:2.0.0"}, true},
		{p.registry + ":1.0.0", transport.KindRegistry, []string{p.registry + ":1.0.0"}, true},
		{p.registry, transport.KindRegistry, []string{p.registry + ":1.0.0"}, true},
	} {
		t.Run(string(tc.kind)+" "+filepath.Base(tc.where), func(t *testing.T) {
			if k, err := transport.Classify(tc.where, o); err != nil || k != tc.kind {
				t.Fatalf("Classify = %s, %v, want %s", k, err, tc.kind)
			}
			src, err := transport.Open(ctx, tc.where, o)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			es, err := src.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(es) != len(tc.refs) {
				t.Fatalf("entries %+v, want %q", es, tc.refs)
			}
			var gw transport.Entry
			for i, e := range es {
				if !strings.HasSuffix(filepath.ToSlash(e.Ref), tc.refs[i]) {
					t.Errorf("entry %d: %q, want …%s", i, e.Ref, tc.refs[i])
				}
				if strings.Contains(e.Ref, "gateway") || len(es) == 1 {
					gw = e
				}
			}
			rc, err := src.Open(ctx, gw)
			if err != nil {
				t.Fatal(err)
			}
			if d := streamedManifest(t, rc); d != p.manifest {
				t.Fatalf("Open: a bundle with manifest %s, want %s", d, p.manifest)
			}
			h, err := src.Head(ctx, gw)
			if !tc.blobs {
				if !errors.Is(err, transport.ErrStream) {
					t.Errorf("Head of a stream: %v", err)
				}
				return
			}
			if err != nil || h.Digest != p.manifest || len(h.Parsed.Layers) == 0 {
				t.Fatalf("Head: %v, %+v", err, h)
			}
			l := h.Parsed.Layers[0]
			whole := readBlob(t, src, l, 0)
			if digest.FromBytes(whole) != l.Digest {
				t.Fatalf("blob %s: got %d bytes of another digest", l.Digest, len(whole))
			}
			if rest := readBlob(t, src, l, 100); !bytes.Equal(rest, whole[100:]) {
				t.Errorf("blob from byte 100: %d bytes, want %d", len(rest), len(whole)-100)
			}
		})
	}
}

// streamedManifest reads a bundle stream to its end and returns its
// manifest digest.
func streamedManifest(t *testing.T, rc io.ReadCloser) digest.Digest {
	t.Helper()
	defer rc.Close()
	r, err := bundle.NewReader(rc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Fatal(err)
	}
	return r.ManifestDigest()
}

func readBlob(t *testing.T, src transport.Source, d ocispec.Descriptor, off int64) []byte {
	t.Helper()
	rc, err := src.OpenBlob(context.Background(), d, off)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOpenBundle(t *testing.T) {
	p := newPlaces(t)
	ctx := context.Background()
	o := transport.Options{PlainHTTP: true}
	rc, err := transport.OpenBundle(ctx, p.registry+":1.0.0", o)
	if err != nil {
		t.Fatal(err)
	}
	if d := streamedManifest(t, rc); d != p.manifest {
		t.Errorf("bundle from the mirror: manifest %s, want %s", d, p.manifest)
	}
	for _, tc := range []struct {
		where, want string
	}{
		{p.dir, "holds 3 bundles: name one"},
		{p.mirror, "holds 2 bundles: name one"},
		{p.registry, "no tag or digest"},
		{filepath.Join(p.dir, "missing.ferry"), "no such file"},
	} {
		if _, err := transport.OpenBundle(ctx, tc.where, o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.where, err, tc.want)
		}
	}
}

// TestFromFS: the stick layout is read from any fs.FS, as the host reads
// an image's FAT filesystem.
func TestFromFS(t *testing.T) {
	p := newPlaces(t)
	closed := false
	src, err := transport.FromFS(os.DirFS(p.stick), "stick.img", closerFunc(func() error { closed = true; return nil }))
	if err != nil {
		t.Fatal(err)
	}
	es, err := src.List(context.Background())
	if err != nil || len(es) != 2 || es[0].Ref != "stick.img:ferry/gateway:1.0.0" || es[0].Name != "gateway" || es[0].Version != "1.0.0" {
		t.Fatalf("List: %v %+v", err, es)
	}
	src.Close()
	if !closed {
		t.Error("Close did not close the image")
	}
	closed = false
	if _, err := transport.FromFS(os.DirFS(p.dir), "empty.img", closerFunc(func() error { closed = true; return nil })); err == nil || !closed {
		t.Errorf("a filesystem without a layout: %v, closed %t", err, closed)
	}
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }
