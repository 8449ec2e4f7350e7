package mirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/registry"
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
}

// Sync brings the store up to date with from:
//
//   - oci://HOST/REPO: every tag of the repository that is a ferry bundle
//     (oci://HOST/REPO:TAG: just that one), with its cosign signatures;
//   - a bundle file;
//   - a directory: every bundle file in it and below; when it is another
//     mirror directory, also its trust roots (roots/N.root.json), oldest
//     first, each added by AddRoot's chain rule.
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
	if strings.HasPrefix(from, oci.Scheme) {
		return res, s.syncRegistry(ctx, from, o.Registry, res)
	}
	st, err := os.Stat(from)
	if err != nil {
		return res, err
	}
	if !st.IsDir() {
		r, err := s.addFile(from)
		if err != nil {
			return res, err
		}
		res.Bundles = append(res.Bundles, r)
		return res, nil
	}
	var first error
	_, err = Open(from)
	isMirror := err == nil
	if isMirror {
		if first, err = s.syncRoots(ctx, from, res); err != nil {
			return res, err
		}
	}
	var files []string
	err = filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if isMirror && d.IsDir() && p == filepath.Join(from, rootsDir) {
			return filepath.SkipDir // syncRoots took them
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return ctx.Err()
	})
	if err != nil {
		return res, err
	}
	for _, p := range files {
		r, err := s.addFile(p)
		var be *bundle.Error
		if errors.As(err, &be) && isNotBundle(be) {
			res.Skipped = append(res.Skipped, Skipped{Source: p, Reason: "not a ferry bundle"})
			continue
		}
		if err != nil {
			if cerr := res.fail(ctx, p, err); cerr != nil {
				return res, cerr
			}
			if first == nil {
				first = err
			}
			continue
		}
		res.Bundles = append(res.Bundles, r)
	}
	return res, res.err(first)
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

// isNotBundle tells a file that is no bundle at all (wrong first member)
// from a bundle that is damaged, which must not be skipped silently.
func isNotBundle(e *bundle.Error) bool {
	return e.What == "layout" && e.Offset <= 0
}

// referrerTagRE matches tags that carry metadata about a digest (cosign's
// .sig/.att/.sbom and the referrers fallback tags), never bundles.
var referrerTagRE = regexp.MustCompile(`^sha256-[0-9a-f]{64}(\.[a-z]+)?$`)

func (s *Store) syncRegistry(ctx context.Context, from string, o registry.Options, res *SyncResult) error {
	ref, err := oci.ParseReference(from)
	if err != nil {
		return err
	}
	client, err := registry.Repository(ctx, ref, o)
	if err != nil {
		return err
	}
	var tags []string
	if id := ref.Identifier(); id != "" {
		tags = []string{id}
	} else if tags, err = client.Tags(ctx); err != nil {
		return fmt.Errorf("list tags: %w", err)
	}
	sort.Strings(tags)
	var first error
	for _, tag := range tags {
		if referrerTagRE.MatchString(tag) {
			continue
		}
		h, err := oci.FetchHead(ctx, client, tag)
		var nb *oci.NotBundleError
		if errors.As(err, &nb) {
			res.Skipped = append(res.Skipped, Skipped{Source: tag, Reason: nb.Error()})
			continue
		}
		if err == nil {
			var r *AddResult
			r, err = s.ingestLocked(h, func(l ocispec.Descriptor, off int64) (io.ReadCloser, error) {
				return client.BlobAt(ctx, l, off)
			})
			if err == nil {
				res.Bundles = append(res.Bundles, r)
				continue
			}
		}
		err = fmt.Errorf("tag %s: %w", tag, err)
		if cerr := res.fail(ctx, tag, err); cerr != nil {
			return cerr
		}
		if first == nil {
			first = err
		}
	}
	return res.err(first)
}

func (s *Store) ingestLocked(h *oci.Head, layer func(l ocispec.Descriptor, off int64) (io.ReadCloser, error)) (*AddResult, error) {
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	return s.ingest(h, layer)
}
