package transport

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/transport/oci"
	"github.com/ferry-update/ferry/transport/stick"
	"github.com/ferry-update/ferry/transport/wire"
)

// layoutSource is a ferry layout (a mirror store, a stick) read through
// package stick, from a directory or from any fs.FS.
type layoutSource struct {
	l      *stick.Layout
	prefix string // of each entry's Ref
	closer io.Closer
}

func openLayoutDir(dir string) (Source, error) {
	l, err := stick.OpenLayout(dir)
	if err != nil && exists(filepath.Join(dir, wire.StickDir, "oci-layout")) {
		dir = filepath.Join(dir, wire.StickDir) // a mounted stick
		l, err = stick.OpenLayout(dir)
	}
	if err != nil {
		return nil, err
	}
	return &layoutSource{l: l, prefix: dir + string(filepath.Separator)}, nil
}

// FromFS reads the stick whose filesystem is fsys (rooted at the
// directory holding ferry/), such as an image's FAT filesystem opened on
// the host; name says where it is in messages, and closer, if not nil, is
// closed with the source.
func FromFS(fsys fs.FS, name string, closer io.Closer) (Source, error) {
	sub, err := fs.Sub(fsys, wire.StickDir)
	if err == nil {
		var l *stick.Layout
		if l, err = stick.NewLayout(sub, name); err == nil {
			return &layoutSource{l: l, prefix: name + ":" + wire.StickDir + "/", closer: closer}, nil
		}
	}
	if closer != nil {
		closer.Close()
	}
	return nil, err
}

// LayoutOf returns the layout a source opened from a mirror directory,
// a stick or a stick image reads (false for any other source), for a
// caller that reads more of it than bundles (mirror sync: a stick's
// deployment files).
func LayoutOf(src Source) (*stick.Layout, bool) {
	ls, ok := src.(*layoutSource)
	if !ok {
		return nil, false
	}
	return ls.l, true
}

func openImage(path string, im Images) (Source, error) {
	fsys, closer, err := im.OpenImage(path)
	if err == nil {
		var src Source
		if src, err = FromFS(fsys, path, closer); err == nil {
			return src, nil
		}
	}
	return nil, fmt.Errorf("open stick image %s: %w", path, err)
}

// List lists the layout's bundles by name, then version; one that cannot
// be read has Err set.
func (s *layoutSource) List(context.Context) ([]Entry, error) {
	bs, err := s.l.Bundles()
	if err != nil {
		return nil, err
	}
	es := make([]Entry, len(bs))
	for i, b := range bs {
		es[i] = Entry{Ref: s.prefix + orUnknown(b.Name) + ":" + orUnknown(b.Version), Name: b.Name, Version: b.Version, Err: b.Err, key: b}
	}
	return es, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

func (s *layoutSource) bundle(e Entry) (stick.Bundle, error) {
	b, ok := e.key.(stick.Bundle)
	if !ok {
		return b, fmt.Errorf("%s: not an entry of %s", e.Ref, s.l.Name())
	}
	return b, b.Err
}

func (s *layoutSource) Open(_ context.Context, e Entry) (io.ReadCloser, error) {
	b, err := s.bundle(e)
	if err != nil {
		return nil, err
	}
	return s.l.Open(b)
}

func (s *layoutSource) Head(_ context.Context, e Entry) (*oci.Head, error) {
	b, err := s.bundle(e)
	if err != nil {
		return nil, err
	}
	manifest, config := b.Raw()
	var m ocispec.Manifest
	if err := json.Unmarshal(manifest, &m); err != nil {
		return nil, fmt.Errorf("%s: manifest: %w", e.Ref, err)
	}
	return &oci.Head{Digest: b.Manifest, Manifest: manifest, Config: config, Signatures: b.Signatures, Parsed: &m}, nil
}

func (s *layoutSource) OpenBlob(_ context.Context, d ocispec.Descriptor, off int64) (io.ReadCloser, error) {
	return s.l.OpenBlob(d.Digest, off)
}

func (s *layoutSource) Close() error {
	if s.closer == nil {
		return nil
	}
	return s.closer.Close()
}
