package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/transport/httpget"
	"github.com/ferry-update/ferry/transport/oci"
	"github.com/ferry-update/ferry/transport/wire"
)

// Source is a place bundles live: a bundle file or stream, a directory of
// bundle files, a layout (a mirror store, a stick), an OCI registry or a
// ferry mirror. Nothing a Source returns is trusted: the consumer checks
// digests and signatures.
type Source interface {
	// List says which bundles the source holds, without reading them.
	List(ctx context.Context) ([]Entry, error)
	// Open returns an entry's bundle as a canonical archive stream
	// (bundle/FORMAT.md), for bundle.NewReader or verify.Bundle.
	Open(ctx context.Context, e Entry) (io.ReadCloser, error)
	// Head returns an entry's signed head (manifest, config, signatures)
	// without its payloads, so that a consumer reads only the blobs it
	// lacks. Stream sources fail with ErrStream.
	Head(ctx context.Context, e Entry) (*oci.Head, error)
	// OpenBlob opens a blob of a bundle whose Head the source returned,
	// from byte off (Range), unchecked. Stream sources fail with
	// ErrStream.
	OpenBlob(ctx context.Context, d ocispec.Descriptor, off int64) (io.ReadCloser, error)
	// Close releases what the source holds open (an image, a file).
	Close() error
}

// Entry is one bundle a Source lists.
type Entry struct {
	// Ref says where the bundle is, for messages and reports: a path,
	// oci://HOST/REPO:TAG, a URL, LAYOUT:NAME:VERSION.
	Ref string
	// Name and Version are what the source's unsigned listing says, if
	// it says anything (layouts do).
	Name, Version string
	// Err says why the entry cannot be read at all (a damaged blob on a
	// stick); Open and Head return it.
	Err error

	key any // the source's own handle on the entry
}

// ErrStream is wrapped by Head and OpenBlob of a source that can only be
// read once, front to back: standard input, an http(s) URL.
var ErrStream = errors.New("a stream source gives whole bundles only")

// Kind says what Open found at a place.
type Kind string

// Kinds of source.
const (
	KindStdin    Kind = "stdin"    // "-"
	KindURL      Kind = "url"      // http(s)://…, a bundle file served over HTTP
	KindRegistry Kind = "registry" // oci://HOST/REPO[:TAG|@DIGEST], a registry or ferry mirror
	KindFile     Kind = "file"     // a bundle file
	KindDir      Kind = "dir"      // a directory of bundle files, searched recursively
	KindMirror   Kind = "mirror"   // a mirror store directory (a layout with TUF metadata)
	KindStick    Kind = "stick"    // a stick's layout: a mounted stick, its ferry/ directory
	KindImage    Kind = "image"    // a stick image or block device (Options.Images)
)

// Options say how Open reaches a place.
type Options struct {
	// Stdin is read for "-".
	Stdin io.Reader
	// Client sends the requests of http(s) and oci:// sources; nil means
	// httpget.NewClient with the default timeouts.
	Client *http.Client
	// PlainHTTP talks http:// to oci:// registries.
	PlainHTTP bool
	// UserAgent, if set, is sent with every request.
	UserAgent string
	// Repository, if set, connects to an oci:// repository instead of
	// oci.NewRepository (the host tools authenticate with their
	// keychain this way).
	Repository func(ctx context.Context, ref oci.Reference) (*oci.Repository, error)
	// Images, if set, reads stick images and block devices, which the
	// device never does (package media provides it on the host).
	Images Images
}

// Images opens disk images that hold a stick's filesystem.
type Images interface {
	// IsImage reports whether the file at path is a disk image or block
	// device rather than a bundle.
	IsImage(path string) bool
	// OpenImage returns the image's filesystem, rooted at its root (the
	// directory holding ferry/), and what closes the image.
	OpenImage(path string) (fs.FS, io.Closer, error)
}

// Classify says what kind of source where is, as Open would open it, and
// reads nothing but file metadata and the first block of a file.
func Classify(where string, o Options) (Kind, error) {
	switch {
	case where == "-":
		return KindStdin, nil
	case strings.HasPrefix(where, "http://"), strings.HasPrefix(where, "https://"):
		return KindURL, nil
	case strings.HasPrefix(where, oci.Scheme):
		return KindRegistry, nil
	}
	st, err := os.Stat(where)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		if o.Images != nil && o.Images.IsImage(where) {
			return KindImage, nil
		}
		return KindFile, nil
	}
	switch {
	case exists(filepath.Join(where, "oci-layout")) && exists(filepath.Join(where, wire.TUFDir)):
		return KindMirror, nil
	case exists(filepath.Join(where, "oci-layout")), exists(filepath.Join(where, wire.StickDir, "oci-layout")):
		return KindStick, nil
	}
	return KindDir, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Open opens the place where names, the one dispatch of every consumer
// (the agent, audit, mirror sync):
//
//   - "-": one bundle read from Options.Stdin;
//   - http://… or https://…: one bundle file served over HTTP, read with
//     Range resume (httpget.Reader);
//   - oci://HOST/REPO:TAG or @DIGEST: that bundle in a registry or a ferry
//     mirror; oci://HOST/REPO: every tag of the repository (but the
//     signature and referrer tags);
//   - a directory holding oci-layout (a mirror store, a stick's ferry/
//     directory) or ferry/oci-layout (a mounted stick): the bundles its
//     index lists, read as hostile input (package stick);
//   - another directory: every regular file in it and below, each a
//     bundle or not;
//   - a stick image or block device, when Options.Images reads them;
//   - any other file: one bundle.
func Open(ctx context.Context, where string, o Options) (Source, error) {
	kind, err := Classify(where, o)
	if err != nil {
		return nil, err
	}
	if o.Client == nil {
		o.Client = httpget.NewClient(httpget.Timeouts{})
	}
	switch kind {
	case KindStdin:
		return &streamSource{ref: where, open: func(context.Context) (io.ReadCloser, error) { return stdin(o.Stdin), nil }}, nil
	case KindURL:
		return &streamSource{ref: where, open: func(ctx context.Context) (io.ReadCloser, error) { return openURL(ctx, o.Client, where), nil }}, nil
	case KindRegistry:
		return openRegistry(where, o)
	case KindMirror, KindStick:
		return openLayoutDir(where)
	case KindImage:
		return openImage(where, o.Images)
	case KindDir:
		return &filesSource{dir: where}, nil
	}
	return File(where), nil
}

// File is the bundle file at path, whatever it holds.
func File(path string) Source { return &filesSource{file: path} }

// OpenBundle opens the one bundle at where (Open's places) as a canonical
// archive stream: a place that lists no bundle or several is an error.
// Close closes the source too.
func OpenBundle(ctx context.Context, where string, o Options) (io.ReadCloser, error) {
	src, err := Open(ctx, where, o)
	if err != nil {
		return nil, fmt.Errorf("open bundle: %w", err)
	}
	if rs, ok := src.(*registrySource); ok && rs.ref.Identifier() == "" {
		return nil, fmt.Errorf("open %s: no tag or digest: name the bundle, e.g. %s:1.0.0", where, where)
	}
	e, err := Only(ctx, src, where)
	var rc io.ReadCloser
	if err == nil {
		rc, err = src.Open(ctx, e)
	}
	if err != nil {
		src.Close()
		return nil, err
	}
	return &bundleStream{ReadCloser: rc, src: src}, nil
}

// Only returns the one entry src lists; where names src in the error
// when it lists none or several.
func Only(ctx context.Context, src Source, where string) (Entry, error) {
	es, err := src.List(ctx)
	if err != nil {
		return Entry{}, err
	}
	if len(es) != 1 {
		return Entry{}, fmt.Errorf("%s holds %d bundles: name one", where, len(es))
	}
	return es[0], nil
}

type bundleStream struct {
	io.ReadCloser
	src Source
}

func (b *bundleStream) Close() error {
	err := b.ReadCloser.Close()
	if cerr := b.src.Close(); err == nil {
		err = cerr
	}
	return err
}
