package oci

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/verifyio"
)

// Source is what a pull needs from a registry repository. *Repository
// implements it over net/http; package mirror implements it over
// go-containerregistry for the host tools.
type Source interface {
	// Manifest returns a manifest's bytes exactly as stored and its media
	// type. An unknown tag or digest must be an error matching ErrNotFound.
	Manifest(ctx context.Context, reference string) (raw []byte, mediaType string, err error)
	// Blob opens a blob's content; the caller checks it.
	Blob(ctx context.Context, d ocispec.Descriptor) (io.ReadCloser, error)
}

// NotBundleError says that a reference names something other than a ferry
// bundle, such as a container image.
type NotBundleError struct {
	Reference    string
	MediaType    string // of the manifest
	ArtifactType string
	ConfigType   string
}

func (e *NotBundleError) Error() string {
	what := fmt.Sprintf("manifest of type %s", orNone(e.MediaType))
	switch {
	case e.MediaType == MediaTypeOCIIndex || e.MediaType == MediaTypeDockerList:
		what = "an image index (a multi-platform image?)"
	case e.ArtifactType != "":
		what = fmt.Sprintf("an artifact of type %s", e.ArtifactType)
	case e.ConfigType != "":
		what = fmt.Sprintf("an image with config type %s (a container image?)", e.ConfigType)
	}
	return fmt.Sprintf("%s is not a ferry bundle: it is %s, want artifactType %s", e.Reference, what, bundle.ArtifactType)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// Head is a bundle's signed head as fetched from a registry: everything a
// device checks before it reads a payload byte.
type Head struct {
	Digest     digest.Digest // of Manifest: what the signatures sign
	Manifest   []byte        // exactly as stored
	Config     []byte
	Signatures []bundle.Signature
	Parsed     *ocispec.Manifest
}

// FetchHead fetches the manifest that reference (a tag or digest) names,
// refuses it unless it is a ferry bundle, and fetches its config and its
// signatures: those under the cosign tag (none if the tag is missing)
// merged with those stored as OCI 1.1 referrers (none if the registry has
// no referrers API), duplicates dropped.
func FetchHead(ctx context.Context, src Source, reference string) (*Head, error) {
	raw, mt, err := src.Manifest(ctx, reference)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%s: no such tag or digest in the repository (or no such repository): %w", reference, err)
	}
	if err != nil {
		return nil, err
	}
	if len(raw) > bundle.MaxManifestSize {
		return nil, fmt.Errorf("manifest %s: %d bytes exceed the limit of %d", reference, len(raw), bundle.MaxManifestSize)
	}
	d := digest.FromBytes(raw)
	if want, err := digest.Parse(reference); err == nil && want != d {
		return nil, fmt.Errorf("manifest %s: content digest is %s", reference, d)
	}
	if mt == MediaTypeOCIIndex || mt == MediaTypeDockerList {
		return nil, &NotBundleError{Reference: reference, MediaType: mt}
	}
	m, err := ParseManifest(raw, mt)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", reference, err)
	}
	if m.ArtifactType != bundle.ArtifactType {
		return nil, &NotBundleError{Reference: reference, MediaType: firstNonEmpty(m.MediaType, mt), ArtifactType: m.ArtifactType, ConfigType: m.Config.MediaType}
	}
	if m.Config.Size > bundle.MaxConfigSize {
		return nil, fmt.Errorf("manifest %s: config of %d bytes exceeds the limit of %d", reference, m.Config.Size, bundle.MaxConfigSize)
	}
	cfg, err := FetchBlob(ctx, src, m.Config)
	if err != nil {
		return nil, fmt.Errorf("config of %s: %w", reference, err)
	}
	sigs, err := FetchSignatures(ctx, src, d)
	if err != nil {
		return nil, err
	}
	refSigs, err := FetchReferrerSignatures(ctx, src, d)
	if err != nil {
		return nil, err
	}
	sigs, _ = MergeSignatures(sigs, refSigs)
	if len(sigs) > bundle.MaxSignatures {
		return nil, fmt.Errorf("signatures of %s: %d exceed the limit of %d", d, len(sigs), bundle.MaxSignatures)
	}
	return &Head{Digest: d, Manifest: raw, Config: cfg, Signatures: sigs, Parsed: m}, nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// FetchSignatures fetches the cosign signatures of manifest d from the
// sha256-<hex>.sig tag. A missing tag means no signatures, not an error:
// the bundle is then refused by verify's threshold, which is where trust
// is decided.
func FetchSignatures(ctx context.Context, src Source, d digest.Digest) ([]bundle.Signature, error) {
	tag := bundle.SignatureTag(d)
	raw, _, err := src.Manifest(ctx, tag)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("signatures %s: %w", tag, err)
	}
	if len(raw) > bundle.MaxSigManifestSize {
		return nil, fmt.Errorf("signatures %s: manifest of %d bytes exceeds the limit of %d", tag, len(raw), bundle.MaxSigManifestSize)
	}
	sigs, err := bundle.ParseSignatures(raw, func(what string, desc ocispec.Descriptor, max int64) ([]byte, error) {
		if desc.Size > max {
			return nil, fmt.Errorf("%s: %d bytes exceed the limit of %d", what, desc.Size, max)
		}
		b, err := FetchBlob(ctx, src, desc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		return b, nil
	})
	if err != nil {
		return nil, fmt.Errorf("signatures %s: %w", tag, err)
	}
	return sigs, nil
}

// FetchBlob reads a small blob whole, checked against its descriptor.
func FetchBlob(ctx context.Context, src Source, d ocispec.Descriptor) ([]byte, error) {
	rc, err := src.Blob(ctx, d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return verifyio.ReadAll(rc, d.Size, d.Digest)
}

// Assemble writes the bundle as a canonical archive to w, streaming each
// payload layer from src and checking it on the way (bundle.Assemble).
func (h *Head) Assemble(ctx context.Context, src Source, w io.Writer) error {
	return bundle.Assemble(w, bundle.Parts{
		Manifest:   h.Manifest,
		Config:     h.Config,
		Signatures: h.Signatures,
		Layer: func(l ocispec.Descriptor) (io.ReadCloser, error) {
			return src.Blob(ctx, l)
		},
	})
}

// Pull writes the bundle that reference names in src to w as a canonical
// bundle archive.
func Pull(ctx context.Context, src Source, reference string, w io.Writer) (*Head, error) {
	h, err := FetchHead(ctx, src, reference)
	if err != nil {
		return nil, err
	}
	if err := h.Assemble(ctx, src, w); err != nil {
		return h, err
	}
	return h, nil
}

// Open returns the bundle that ref (oci://HOST/REPO:TAG or @DIGEST) names
// as a stream of its canonical archive, for bundle.NewReader or
// verify.Bundle. The head is fetched before Open returns, so an unknown
// reference or something that is not a bundle is Open's error; a payload
// that fails its digest is an error from Read. Close stops the download.
func Open(ctx context.Context, ref string, opts Options) (io.ReadCloser, error) {
	r, err := ParseReference(ref)
	if err != nil {
		return nil, err
	}
	if r.Identifier() == "" {
		return nil, fmt.Errorf("open %s: no tag or digest: name the bundle, e.g. %s:1.0.0", ref, ref)
	}
	repo := NewRepository(r.Host, r.Repository, opts)
	h, err := FetchHead(ctx, repo, r.Identifier())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", ref, err)
	}
	return h.Stream(ctx, repo, ref), nil
}

// Stream returns the bundle as a stream of its canonical archive, its
// payloads read from src as the reader asks (Assemble in the background);
// ref names it in errors. Close stops the download.
func (h *Head) Stream(ctx context.Context, src Source, ref string) io.ReadCloser {
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	go func() {
		err := h.Assemble(ctx, src, pw)
		if err != nil {
			err = fmt.Errorf("pull %s: %w", ref, err)
		}
		pw.CloseWithError(err)
	}()
	return &pipeReader{PipeReader: pr, cancel: cancel}
}

type pipeReader struct {
	*io.PipeReader
	cancel context.CancelFunc
}

func (p *pipeReader) Close() error {
	p.cancel()
	return p.PipeReader.Close()
}
