package audit

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/media"
	"github.com/ferry-update/ferry/registry"
	"github.com/ferry-update/ferry/transport"
	"github.com/ferry-update/ferry/transport/oci"
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
	// Ref is where it is, for the report, as a reviewer can find it again:
	// an absolute path, a full oci:// reference. With Pin set, the audit
	// adds the manifest digest it read (REF@sha256:…): a tag can move.
	Ref           string
	Pin           bool
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
//     its /ferry/ layout (media.Images);
//   - a file: one bundle.
//
// Mirrors are audited with their TUF metadata, as devices read them;
// everything else is read through transport.Open.
//
// A local target and MirrorRoot are made absolute first, so that the
// report names them as a reviewer elsewhere can find them again.
func Open(target string, o SourceOptions) (Source, error) {
	if o.MirrorRoot != "" {
		abs, err := filepath.Abs(o.MirrorRoot)
		if err != nil {
			return nil, err
		}
		o.MirrorRoot = abs
	}
	if strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://") {
		return &mirrorURLSource{target: target, o: o}, nil
	}
	if !strings.Contains(target, "://") && target != "-" {
		abs, err := filepath.Abs(target)
		if err != nil {
			return nil, err
		}
		target = abs
	}
	topts := transport.Options{
		Repository: func(ctx context.Context, ref oci.Reference) (*oci.Repository, error) {
			return registry.Repository(ctx, ref, o.Registry)
		},
		Images: media.Images{},
	}
	kind, err := transport.Classify(target, topts)
	if err != nil {
		return nil, err
	}
	switch kind {
	case transport.KindMirror, transport.KindDir:
		return &mirrorDirSource{target: target, dir: target, kind: KindMirror, o: o}, nil
	case transport.KindRegistry:
		if _, err := oci.ParseReference(target); err != nil {
			return nil, err
		}
	}
	return &transportSource{target: target, kind: kind, o: topts}, nil
}

// kinds names transport's kinds of source in reports.
var kinds = map[transport.Kind]string{
	transport.KindFile:     KindFile,
	transport.KindRegistry: KindRegistry,
	transport.KindStick:    KindStick,
	transport.KindImage:    KindStick,
}

// transportSource is a bundle file, a registry, a stick or a stick image,
// read through transport.Open.
type transportSource struct {
	target string
	kind   transport.Kind
	o      transport.Options
}

func (s *transportSource) List(ctx context.Context) (*Listing, error) {
	src, err := transport.Open(ctx, s.target, s.o)
	if err != nil {
		return nil, fmt.Errorf("audit %s: %w", s.target, err)
	}
	es, err := src.List(ctx)
	if err != nil {
		src.Close()
		return nil, fmt.Errorf("audit %s: %w", s.target, err)
	}
	l := &Listing{Target: s.target, Kind: kinds[s.kind], Close: src.Close}
	if s.kind == transport.KindStick {
		l.Mirror = &MirrorMetadata{} // a layout without TUF metadata
	}
	for _, e := range es {
		l.Items = append(l.Items, Item{
			Ref: e.Ref, Pin: s.kind == transport.KindRegistry, Name: e.Name, Version: e.Version, Err: e.Err,
			Open: func(ctx context.Context) (io.ReadCloser, error) { return src.Open(ctx, e) },
		})
	}
	return l, nil
}
