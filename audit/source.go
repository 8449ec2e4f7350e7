package audit

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/media"
	"github.com/ferry-update/ferry/registry"
	"github.com/ferry-update/ferry/transport/oci"
	"github.com/ferry-update/ferry/transport/stick"
	"github.com/ferry-update/ferry/transport/wire"
)

// Kinds of target.
const (
	KindFile     = "bundle file"
	KindRegistry = "registry"
	KindMirror   = "mirror"
	KindStick    = "stick"
)

// Source is a place that holds bundles.
type Source interface {
	// List says what the source holds. Bundles are read later, one at a
	// time, through each Item's Open.
	List(ctx context.Context) (*Listing, error)
}

// Listing is what a Source holds.
type Listing struct {
	Target string // as the user named it
	Kind   string
	Items  []Item
	// Skipped lists what is not a bundle, when the source can tell
	// without reading it.
	Skipped []Skipped
	// Mirror is the state of a mirror's TUF metadata; nil for sources
	// without any.
	Mirror *MirrorMetadata
	// Close, if set, is called once every item has been read (a source
	// that keeps an image or a connection open for its items).
	Close func() error
}

// Item is one bundle of a source.
type Item struct {
	Ref           string // where it is, for the report
	Name, Version string // what the source's (unsigned) listing says, if anything
	// Open returns the bundle as a canonical archive stream. An
	// *oci.NotBundleError means the item is not a bundle after all.
	Open func(ctx context.Context) (io.ReadCloser, error)
	// Err, when set, says why the item cannot be read at all.
	Err error
	// Check, when set, says whether the source's signed metadata lists
	// the bundle (name and version from its signed config) with this
	// manifest digest.
	Check func(name, version string, manifest digest.Digest) error
}

// SourceOptions say how Open reaches a target.
type SourceOptions struct {
	// Registry reaches oci:// targets: plain HTTP, credentials (the
	// Docker config file by default), transport.
	Registry registry.Options
	// MirrorRoot is a mirror TUF root (root.json) to check an http(s)
	// mirror's or a mirror directory's metadata against. Empty means the
	// mirror's own first root (1.root.json), trusted on first use, which
	// the report says.
	MirrorRoot string
	// HTTPClient fetches from http(s) mirrors; nil means a default client.
	HTTPClient *http.Client
	// Now is what a mirror's metadata expiries are judged against; zero
	// means time.Now().
	Now time.Time
}

// Open returns the source target names:
//
//   - oci://HOST/REPO: every tag of the repository that is a ferry bundle
//     (oci://HOST/REPO:TAG or @DIGEST: that one);
//   - http://HOST[:PORT] or https://…: a ferry mirror ('ferry mirror
//     serve'), its bundles as its signed TUF targets list them;
//   - a directory: a mirror directory ('ferry mirror init'), or a mounted
//     stick (a directory holding ferry/, or that ferry/ directory);
//   - a stick image or block device (media.IsDiskImage): the bundles in
//     its /ferry/ layout (media.OpenImage);
//   - a file: one bundle.
func Open(target string, o SourceOptions) (Source, error) {
	switch {
	case strings.HasPrefix(target, oci.Scheme):
		ref, err := oci.ParseReference(target)
		if err != nil {
			return nil, err
		}
		return &registrySource{target: target, ref: ref, o: o.Registry}, nil
	case strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://"):
		return &mirrorURLSource{target: target, o: o}, nil
	}
	st, err := os.Stat(target)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		kind, dir := KindMirror, target
		if _, err := os.Stat(filepath.Join(target, wire.StickDir, "oci-layout")); err == nil {
			kind, dir = KindStick, filepath.Join(target, "ferry")
		} else if filepath.Base(filepath.Clean(target)) == "ferry" {
			if _, err := os.Stat(filepath.Join(target, wire.TUFDir)); err != nil {
				kind = KindStick
			}
		}
		return &mirrorDirSource{target: target, dir: dir, kind: kind, o: o}, nil
	}
	if media.IsDiskImage(target) {
		return imageSource(target), nil
	}
	return fileSource(target), nil
}

// imageSource is a stick image or block device, read with package media.
type imageSource string

func (s imageSource) List(context.Context) (*Listing, error) {
	target := string(s)
	m, err := media.OpenImage(target)
	if err != nil {
		return nil, fmt.Errorf("audit %s: %w", target, err)
	}
	bs, err := m.Bundles()
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("audit %s: %w", target, err)
	}
	l := &Listing{Target: target, Kind: KindStick, Close: m.Close}
	for _, b := range bs {
		l.Items = append(l.Items, Item{
			Ref:  target + ":" + stick.Dir + "/" + b.Name + ":" + b.Version,
			Name: b.Name, Version: b.Version, Err: b.Err,
			Open: func(context.Context) (io.ReadCloser, error) { return m.Open(b) },
		})
	}
	return l, nil
}

// fileSource is one bundle file.
type fileSource string

func (f fileSource) List(context.Context) (*Listing, error) {
	path := string(f)
	return &Listing{Target: path, Kind: KindFile, Items: []Item{{
		Ref:  path,
		Open: func(context.Context) (io.ReadCloser, error) { return os.Open(path) },
	}}}, nil
}

// registrySource is a registry repository, or one tag of it.
type registrySource struct {
	target string
	ref    oci.Reference
	o      registry.Options
}

// referrerTagRE matches tags that carry metadata about a digest (cosign's
// .sig/.att/.sbom, the referrers fallback tags), never bundles.
var referrerTagRE = regexp.MustCompile(`^sha256-[0-9a-f]{64}(\.[a-z]+)?$`)

func (s *registrySource) List(ctx context.Context) (*Listing, error) {
	l := &Listing{Target: s.target, Kind: KindRegistry}
	var refs []string
	if s.ref.Identifier() != "" {
		refs = []string{s.ref.String()}
	} else {
		tags, err := s.tags(ctx)
		if err != nil {
			return nil, fmt.Errorf("audit %s: list tags: %w", s.target, err)
		}
		sort.Strings(tags)
		for _, t := range tags {
			if referrerTagRE.MatchString(t) {
				continue
			}
			r := s.ref
			r.Tag = t
			refs = append(refs, r.String())
		}
	}
	for _, ref := range refs {
		l.Items = append(l.Items, Item{Ref: ref, Open: func(ctx context.Context) (io.ReadCloser, error) {
			return pullStream(ctx, ref, s.o)
		}})
	}
	return l, nil
}

func (s *registrySource) tags(ctx context.Context) ([]string, error) {
	var nopts []name.Option
	if s.o.PlainHTTP {
		nopts = append(nopts, name.Insecure)
	}
	repo, err := name.NewRepository(s.ref.Host+"/"+s.ref.Repository, nopts...)
	if err != nil {
		return nil, err
	}
	kc := s.o.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc)}
	if s.o.Transport != nil {
		ropts = append(ropts, remote.WithTransport(s.o.Transport))
	}
	return remote.List(repo, ropts...)
}

// pullStream streams the bundle ref names through registry.Pull. It returns
// once the first byte is ready, so that a reference that is no bundle (an
// *oci.NotBundleError) is Open's error rather than the stream's.
func pullStream(ctx context.Context, ref string, o registry.Options) (io.ReadCloser, error) {
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := registry.Pull(ctx, ref, &firstWrite{w: pw, started: started}, o)
		pw.CloseWithError(err)
		done <- err
	}()
	select {
	case <-started:
	case err := <-done:
		if err != nil {
			cancel()
			return nil, err
		}
	}
	return &cancelReader{PipeReader: pr, cancel: cancel}, nil
}

// firstWrite closes started before its first write goes through.
type firstWrite struct {
	w       io.Writer
	once    sync.Once
	started chan struct{}
}

func (f *firstWrite) Write(b []byte) (int, error) {
	f.once.Do(func() { close(f.started) })
	return f.w.Write(b)
}

type cancelReader struct {
	*io.PipeReader
	cancel context.CancelFunc
}

func (c *cancelReader) Close() error {
	c.cancel()
	return c.PipeReader.Close()
}
