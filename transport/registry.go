package transport

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"sort"
	"sync"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/transport/oci"
)

// registrySource is a repository of a registry or ferry mirror, or one
// tag or digest of it. It connects at its first request, so Open reads
// nothing over the network.
type registrySource struct {
	ref     oci.Reference
	connect func(context.Context) (*oci.Repository, error)

	mu   sync.Mutex
	repo *oci.Repository
}

func openRegistry(where string, o Options) (Source, error) {
	ref, err := oci.ParseReference(where)
	if err != nil {
		return nil, err
	}
	connect := func(ctx context.Context) (*oci.Repository, error) {
		if o.Repository != nil {
			return o.Repository(ctx, ref)
		}
		return oci.NewRepository(ref.Host, ref.Repository, oci.Options{Client: o.Client, PlainHTTP: o.PlainHTTP, UserAgent: o.UserAgent}), nil
	}
	return &registrySource{ref: ref, connect: connect}, nil
}

func (s *registrySource) repository(ctx context.Context) (*oci.Repository, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.repo == nil {
		r, err := s.connect(ctx)
		if err != nil {
			return nil, err
		}
		s.repo = r
	}
	return s.repo, nil
}

// ReferrerTagRE matches tags that carry metadata about a digest (cosign's
// .sig/.att/.sbom, the referrers fallback tags), never bundles.
var ReferrerTagRE = regexp.MustCompile(`^sha256-[0-9a-f]{64}(\.[a-z]+)?$`)

// List lists the one reference, or every tag but ReferrerTagRE's, in
// order. Which of them are bundles only Head and Open tell (an
// *oci.NotBundleError).
func (s *registrySource) List(ctx context.Context) ([]Entry, error) {
	if id := s.ref.Identifier(); id != "" {
		return []Entry{{Ref: s.ref.String(), key: id}}, nil
	}
	repo, err := s.repository(ctx)
	var tags []string
	if err == nil {
		tags, err = repo.Tags(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("list tags: %w", err)
	}
	sort.Strings(tags)
	var es []Entry
	for _, t := range tags {
		if ReferrerTagRE.MatchString(t) {
			continue
		}
		r := s.ref
		r.Tag = t
		es = append(es, Entry{Ref: r.String(), key: t})
	}
	return es, nil
}

// Tag is the tag or digest a registry entry names, or "" for an entry of
// another source.
func (e Entry) Tag() string {
	id, _ := e.key.(string)
	return id
}

// Open fetches the head first, so that an unknown reference or one that
// is no bundle is Open's error, then streams the payloads as they are
// read.
func (s *registrySource) Open(ctx context.Context, e Entry) (io.ReadCloser, error) {
	repo, err := s.repository(ctx)
	var h *oci.Head
	if err == nil {
		h, err = oci.FetchHead(ctx, repo, e.Tag())
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", e.Ref, err)
	}
	return h.Stream(ctx, repo, e.Ref), nil
}

func (s *registrySource) Head(ctx context.Context, e Entry) (*oci.Head, error) {
	repo, err := s.repository(ctx)
	if err != nil {
		return nil, err
	}
	return oci.FetchHead(ctx, repo, e.Tag())
}

func (s *registrySource) OpenBlob(ctx context.Context, d ocispec.Descriptor, off int64) (io.ReadCloser, error) {
	repo, err := s.repository(ctx)
	if err != nil {
		return nil, err
	}
	return repo.BlobAt(ctx, d, off)
}

func (s *registrySource) Close() error { return nil }
