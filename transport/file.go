package transport

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/filekind"
	"github.com/ferry-update/ferry/transport/httpget"
	"github.com/ferry-update/ferry/transport/oci"
)

// streamSource is one bundle that can be read once: stdin, a URL.
type streamSource struct {
	ref  string
	open func(context.Context) (io.ReadCloser, error)
}

func (s *streamSource) List(context.Context) ([]Entry, error) { return []Entry{{Ref: s.ref}}, nil }
func (s *streamSource) Open(ctx context.Context, _ Entry) (io.ReadCloser, error) {
	return s.open(ctx)
}
func (s *streamSource) Head(context.Context, Entry) (*oci.Head, error) {
	return nil, fmt.Errorf("%s: %w", s.ref, ErrStream)
}
func (s *streamSource) OpenBlob(context.Context, ocispec.Descriptor, int64) (io.ReadCloser, error) {
	return nil, fmt.Errorf("%s: %w", s.ref, ErrStream)
}
func (s *streamSource) Close() error { return nil }

func stdin(r io.Reader) io.ReadCloser {
	return io.NopCloser(bufio.NewReaderSize(r, 1<<20))
}

// openURL reads a bundle file served over HTTP with Range resume. A URL
// that serves a page or JSON (a mirror's or registry's address, not a
// bundle's) is named as such before anything is installed.
func openURL(ctx context.Context, client *http.Client, url string) io.ReadCloser {
	h := httpget.NewReader(ctx, client, url)
	return readCloser{filekind.NewReader(h, filekind.Bundle, true), h}
}

type readCloser struct {
	io.Reader
	io.Closer
}

// filesSource is one bundle file, or every regular file of a directory
// tree. Head opens the entry's archive, whose blobs OpenBlob then reads,
// until the next Head or Close.
type filesSource struct {
	file string // one file, or
	dir  string // a tree

	archive *bundle.Archive
}

func (s *filesSource) List(ctx context.Context) ([]Entry, error) {
	if s.dir == "" {
		return []Entry{{Ref: s.file}}, nil
	}
	var es []Entry
	err := filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			es = append(es, Entry{Ref: p})
		}
		return ctx.Err()
	})
	return es, err
}

// Open opens the file; one that holds a stick image, a raw image or a key
// is named as what it is.
func (s *filesSource) Open(_ context.Context, e Entry) (io.ReadCloser, error) {
	f, err := os.Open(e.Ref)
	if err != nil {
		return nil, fmt.Errorf("open bundle: %w", err)
	}
	if err := filekind.CheckFile(e.Ref, filekind.Bundle, nil); err != nil {
		f.Close()
		return nil, fmt.Errorf("open bundle %s: %w", e.Ref, err)
	}
	return f, nil
}

func (s *filesSource) Head(_ context.Context, e Entry) (*oci.Head, error) {
	s.Close()
	a, err := bundle.OpenArchive(e.Ref)
	if err != nil {
		return nil, err
	}
	s.archive = a
	m := a.Manifest()
	return &oci.Head{Digest: a.ManifestDigest(), Manifest: a.RawManifest(), Config: a.RawConfig(), Signatures: a.Signatures(), Parsed: &m}, nil
}

func (s *filesSource) OpenBlob(_ context.Context, d ocispec.Descriptor, off int64) (io.ReadCloser, error) {
	if s.archive == nil {
		return nil, fmt.Errorf("blob %s: no bundle head was read", d.Digest)
	}
	r, _, err := s.archive.Blob(d.Digest)
	if err != nil {
		return nil, err
	}
	if _, err := io.CopyN(io.Discard, r, off); err != nil {
		return nil, err
	}
	return io.NopCloser(r), nil
}

func (s *filesSource) Close() error {
	if s.archive == nil {
		return nil
	}
	err := s.archive.Close()
	s.archive = nil
	return err
}
