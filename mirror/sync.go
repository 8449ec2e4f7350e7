package mirror

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/registry"
	"github.com/ferry-update/ferry/transport"
	"github.com/ferry-update/ferry/transport/oci"
)

// SyncResult says what Sync did.
type SyncResult struct {
	From    string       `json:"from"`
	Bundles []*AddResult `json:"bundles"` // every bundle found, new or not
	Skipped []Skipped    `json:"skipped"` // what was not a bundle, and why
	Failed  []Skipped    `json:"failed"`  // bundles that could not be synced, and why
	// Roots are the trust roots taken from a source that is another
	// mirror directory, oldest first.
	Roots []*AddRootResult `json:"roots,omitempty"`
	// Relay is what the sync learned of an upstream mirror's fleet, from
	// an upstream mirror directory or a stick built for a deployment
	// (RelayDir).
	Relay *RelayResult `json:"relay,omitempty"`
	// Reports are what a sync from an upstream mirror's URL did with the
	// relay's reports: sent up, and what the upstream said.
	Reports *SentReports `json:"reports,omitempty"`
}

// SyncError says that some bundles of a sync failed; the others were
// synced. SyncResult.Failed lists them.
type SyncError struct {
	Failed, Total int
	First         error
}

func (e *SyncError) Error() string {
	return fmt.Sprintf("%d of %d bundles failed, the first: %v", e.Failed, e.Total, e.First)
}

func (e *SyncError) Unwrap() error { return e.First }

// fail records a bundle that could not be synced and goes on, unless the
// sync was cancelled.
func (r *SyncResult) fail(ctx context.Context, source string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	r.Failed = append(r.Failed, Skipped{Source: source, Reason: err.Error()})
	return nil
}

// err summarises the failures.
func (r *SyncResult) err(first error) error {
	if len(r.Failed) == 0 {
		return nil
	}
	return &SyncError{Failed: len(r.Failed), Total: len(r.Failed) + len(r.Bundles), First: first}
}

// Skipped is a tag or file that Sync left alone.
type Skipped struct {
	Source string `json:"source"` // tag or file
	Reason string `json:"reason"`
}

// SyncOptions configure Sync.
type SyncOptions struct {
	Registry registry.Options
	// Images reads stick images and block devices (package media
	// provides it); nil means a sync from an image fails.
	Images transport.Images
	// Upstream is the operator API of the running mirror a sync from an
	// http(s):// URL relays (an *operator.Client with its token); HTTP
	// the client its public files (TUF, bundles, check-ins) come by
	// (nil: one with a minute's timeout).
	Upstream Upstream
	HTTP     *http.Client
}

// Sync brings the store up to date with from, any place transport.Open
// reads but a stream, or a running upstream mirror:
//
//   - http(s)://HOST[:PORT], a mirror 'ferry mirror serve --console'
//     serves, with o.Upstream (its API, with a token): the relay's
//     reports go up, then the bundles its TUF targets list, its metadata
//     and the signed assignments of its running deployments come down
//     into the relay (syncLink, docs/fleet.md §13);
//   - oci://HOST/REPO: every tag of the repository that is a ferry bundle
//     (oci://HOST/REPO:TAG: just that one), with its cosign signatures;
//   - a bundle file;
//   - a directory of bundle files: every bundle file in it and below;
//   - a layout: another mirror directory (then also its trust roots,
//     roots/N.root.json, oldest first, each added by AddRoot's chain
//     rule), a mounted stick or its ferry/ directory;
//   - a stick image or block device, with o.Images.
//
// From a stick built for an upstream mirror's deployment, the upstream's
// metadata and signed assignments go into the relay (RelayDir,
// SyncResult.Relay).
//
// Only blobs the store lacks move. Each is written to tmp/ and renamed into
// place after its digest is checked, so a killed sync never leaves a
// half-written blob visible, and the next sync continues a partial
// download from where it stopped (a Range request). Things that are not
// bundles are skipped and listed; a bundle that conflicts with the store
// (same version, other content) or fails its digests is an error.
func (s *Store) Sync(ctx context.Context, from string, o SyncOptions) (*SyncResult, error) {
	res, err := s.sync(ctx, from, o)
	// Publish what is in the mirror now, also after a partial sync.
	if _, perr := s.Publish(); perr != nil && err == nil {
		err = perr
	}
	if err != nil {
		return res, fmt.Errorf("mirror sync from %s: %w", from, err)
	}
	return res, nil
}

func (s *Store) sync(ctx context.Context, from string, o SyncOptions) (*SyncResult, error) {
	res := &SyncResult{From: from, Bundles: []*AddResult{}, Skipped: []Skipped{}, Failed: []Skipped{}}
	if isLink(from) {
		return res, s.syncLink(ctx, from, o, res)
	}
	topts := transport.Options{
		Repository: func(ctx context.Context, ref oci.Reference) (*oci.Repository, error) {
			return registry.Repository(ctx, ref, o.Registry)
		},
		Images: o.Images,
	}
	kind, err := transport.Classify(from, topts)
	if err != nil {
		return res, err
	}
	if kind == transport.KindStdin || kind == transport.KindURL {
		return res, fmt.Errorf("a mirror syncs from a registry (oci://), a directory, a stick or a bundle file")
	}
	src, err := transport.Open(ctx, from, topts)
	if err != nil {
		return res, err
	}
	defer src.Close()
	if kind == transport.KindFile {
		e, err := transport.Only(ctx, src, from)
		if err != nil {
			return res, err
		}
		r, err := s.addEntry(ctx, src, e)
		if err != nil {
			return res, err
		}
		res.Bundles = append(res.Bundles, r)
		return res, nil
	}
	var first error
	if _, err := Open(from); err == nil {
		if first, err = s.syncRoots(ctx, from, res); err != nil {
			return res, err
		}
	}
	entries, err := src.List(ctx)
	if err != nil {
		return res, err
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		where := e.Ref
		if kind == transport.KindRegistry {
			where = e.Tag()
		}
		var r *AddResult
		if kind == transport.KindDir {
			r, err = s.addEntry(ctx, src, e)
		} else {
			r, err = s.ingestFrom(ctx, src, e)
		}
		if skip, ok := notBundle(err); ok {
			res.Skipped = append(res.Skipped, Skipped{Source: where, Reason: skip})
			continue
		}
		if err != nil {
			if kind == transport.KindRegistry {
				err = fmt.Errorf("tag %s: %w", where, err)
			}
			if cerr := res.fail(ctx, where, err); cerr != nil {
				return res, cerr
			}
			first = cmp.Or(first, err)
			continue
		}
		res.Bundles = append(res.Bundles, r)
	}
	if l, ok := transport.LayoutOf(src); ok {
		relay, err := s.syncRelay(l, time.Now())
		if err != nil {
			err = fmt.Errorf("upstream fleet: %w", err)
			if cerr := res.fail(ctx, from, err); cerr != nil {
				return res, cerr
			}
			first = cmp.Or(first, err)
		}
		res.Relay = relay
	}
	return res, res.err(first)
}

// ingestFrom adds entry e of src to the store: its head, then the blobs
// the store lacks, each resumed from a partial file left by an earlier run.
func (s *Store) ingestFrom(ctx context.Context, src transport.Source, e transport.Entry) (*AddResult, error) {
	if e.Err != nil {
		return nil, e.Err
	}
	h, err := src.Head(ctx, e)
	if err != nil {
		return nil, err
	}
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	return s.ingest(h, func(l ocispec.Descriptor, off int64) (io.ReadCloser, error) {
		return src.OpenBlob(ctx, l, off)
	}, func(l ocispec.Descriptor, off, n int64) (io.ReadCloser, error) {
		return transport.Range(ctx, src, l, off, n)
	})
}

// notBundle says why err is about something that is no bundle at all: a
// file whose first member is not the layout, a tag of a container image.
// A bundle that is damaged must not be skipped silently.
func notBundle(err error) (string, bool) {
	var be *bundle.Error
	if errors.As(err, &be) && be.What == "layout" && be.Offset <= 0 {
		return "not a ferry bundle", true
	}
	var nb *oci.NotBundleError
	if errors.As(err, &nb) {
		return nb.Error(), true
	}
	return "", false
}

// syncRoots adds the trust roots of the mirror directory from, oldest
// first. A root the chain rule refuses is listed in res.Failed, and so are
// the ones above it, which cannot follow it; none is nothing to do.
func (s *Store) syncRoots(ctx context.Context, from string, res *SyncResult) (first error, err error) {
	src := &Store{dir: from}
	highest, err := src.highestRoot()
	if err != nil {
		return nil, fmt.Errorf("trust roots of %s: %w", from, err)
	}
	for v := int64(1); v <= highest; v++ {
		if err := ctx.Err(); err != nil {
			return first, err
		}
		p := src.rootPath(v)
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) && first == nil {
			continue // the source's chain starts above v
		}
		var r *AddRootResult
		if err == nil && first == nil {
			r, err = s.AddRoot(data)
		} else if err == nil {
			err = fmt.Errorf("it cannot follow a refused root: %w", first)
		}
		if err != nil {
			res.Failed = append(res.Failed, Skipped{Source: p, Reason: err.Error()})
			if first == nil {
				first = err
			}
			continue
		}
		res.Roots = append(res.Roots, r)
	}
	return first, nil
}
