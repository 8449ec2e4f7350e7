package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/verifyio"
	"github.com/ferry-update/ferry/transport/oci"
	"github.com/ferry-update/ferry/transport/stick"
)

// ErrNoBlobs is wrapped by OpenBlobs for a place whose bundle cannot be
// read blob by blob: a stream (ErrStream too) or a single bundle file,
// which is read whole anyway.
var ErrNoBlobs = errors.New("no blob access")

// Blobs is one bundle whose blobs can be read by range: a registry or
// ferry mirror (oci://), a mirror store or a stick's layout. It is what a
// delta install reads (bundle/FORMAT.md §15.5): the head, the archive
// stream without the parts of the payloads it assembles itself, and
// pieces of those parts. Nothing it returns is checked.
type Blobs struct {
	src   Source
	entry Entry
	// Head is the bundle's manifest, config and signatures, unjudged.
	Head *oci.Head
	kept map[digest.Digest][]byte // attachments fetched already
}

// OpenBlobs opens the one bundle at where (Open's places) with access to
// its blobs. A place that cannot give it fails with ErrNoBlobs.
func OpenBlobs(ctx context.Context, where string, o Options) (*Blobs, error) {
	kind, err := Classify(where, o)
	if err != nil {
		return nil, err
	}
	switch kind {
	case KindRegistry, KindMirror, KindStick, KindImage:
	default:
		return nil, fmt.Errorf("%s (%s): %w", where, kind, ErrNoBlobs)
	}
	src, err := Open(ctx, where, o)
	if err != nil {
		return nil, err
	}
	if rs, ok := src.(*registrySource); ok && rs.ref.Identifier() == "" {
		return nil, fmt.Errorf("open %s: no tag or digest: name the bundle, e.g. %s:1.0.0", where, where)
	}
	e, err := Only(ctx, src, where)
	var h *oci.Head
	if err == nil {
		h, err = src.Head(ctx, e)
	}
	if err != nil {
		src.Close()
		return nil, fmt.Errorf("open %s: %w", where, err)
	}
	return &Blobs{src: src, entry: e, Head: h}, nil
}

// Stream returns the bundle's archive stream with the parts of the
// payloads in omit left out (bundle.Parts.Omit), for
// bundle.NewReaderWith with the same names; each other layer is read from
// the source as the stream is read. Close stops it.
func (b *Blobs) Stream(ctx context.Context, omit map[string]bool) io.ReadCloser {
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	go func() {
		err := bundle.Assemble(pw, bundle.Parts{
			Manifest:   b.Head.Manifest,
			Config:     b.Head.Config,
			Signatures: b.Head.Signatures,
			Layer: func(l ocispec.Descriptor) (io.ReadCloser, error) {
				if data, ok := b.kept[l.Digest]; ok {
					return io.NopCloser(bytes.NewReader(data)), nil
				}
				return b.src.OpenBlob(ctx, l, 0)
			},
			Omit: omit,
		})
		if err != nil {
			err = fmt.Errorf("read %s: %w", b.entry.Ref, err)
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

// Range opens n bytes of blob d from byte off: one bounded Range request
// to a registry (resumed if the connection drops), a read of the file on
// a stick.
func (b *Blobs) Range(ctx context.Context, d ocispec.Descriptor, off, n int64) (io.ReadCloser, error) {
	return Range(ctx, b.src, d, off, n)
}

// Range opens n bytes of blob d of src from byte off: one bounded Range
// request to a registry (resumed if the connection drops), a read of the
// file in a layout. Nothing is checked.
func Range(ctx context.Context, src Source, d ocispec.Descriptor, off, n int64) (io.ReadCloser, error) {
	if rs, ok := src.(*registrySource); ok {
		repo, err := rs.repository(ctx)
		if err != nil {
			return nil, err
		}
		return repo.BlobRange(ctx, d, off, n)
	}
	rc, err := src.OpenBlob(ctx, d, off)
	if err != nil {
		return nil, err
	}
	return readCloser{io.LimitReader(rc, n), rc}, nil
}

// ErrNoDeltaStream is wrapped by DeltaStream for a source that has no
// delta stream to give: a stick or mirror directory, a registry, a ferry
// mirror that lacks either payload (404).
var ErrNoDeltaStream = errors.New("no delta stream")

// DeltaStream opens the delta stream (bundle/FORMAT.md §15.9) from the
// chunked payload whose index is base to the one whose index is target:
// only a ferry mirror (oci://) makes them; the stream is resumed as a
// blob is. Nothing is checked (package dstream checks it).
func (b *Blobs) DeltaStream(ctx context.Context, target, base digest.Digest) (io.ReadCloser, error) {
	rs, ok := b.src.(*registrySource)
	if !ok {
		return nil, fmt.Errorf("%w: %s is no ferry mirror", ErrNoDeltaStream, b.entry.Ref)
	}
	repo, err := rs.repository(ctx)
	if err != nil {
		return nil, err
	}
	rc, err := repo.DeltaStream(ctx, target, base)
	if errors.Is(err, oci.ErrNotFound) {
		return nil, fmt.Errorf("%w: %w", ErrNoDeltaStream, err)
	}
	return rc, err
}

// Keep makes data the content of blob d, so that Stream and Attachment
// read it from memory: an attachment the caller got another way (a chunk
// index from a delta stream) and checked against d's digest. Data that
// does not match d is not kept.
func (b *Blobs) Keep(d ocispec.Descriptor, data []byte) bool {
	if int64(len(data)) != d.Size || digest.FromBytes(data) != d.Digest {
		return false
	}
	if b.kept == nil {
		b.kept = map[digest.Digest][]byte{}
	}
	b.kept[d.Digest] = data
	return true
}

// Has says whether the source holds blob d. Only a stick's layout (or a
// mirror directory) is asked; a registry or mirror server is taken to
// hold every blob of its bundles. A stick built as a delta
// (stick.Bundle.DeltaOnly) lacks the parts its bases do not need.
func (b *Blobs) Has(d ocispec.Descriptor) bool {
	if ls, ok := b.src.(*layoutSource); ok {
		return ls.l.Has(d)
	}
	return true
}

// Ref says where the bundle is, for messages.
func (b *Blobs) Ref() string { return b.entry.Ref }

// Close releases the source.
func (b *Blobs) Close() error { return b.src.Close() }

// Attachment returns the attachment name of the bundle, whose config
// (cfg, parsed from Head.Config) lists it, checked against its digest.
// It is kept, so that Stream does not fetch it again.
func (b *Blobs) Attachment(ctx context.Context, cfg *bundle.Config, name string) ([]byte, error) {
	for i, a := range cfg.Attachments {
		if a.Name != name {
			continue
		}
		if i >= len(b.Head.Parsed.Layers) {
			return nil, fmt.Errorf("attachment %s: no manifest layer", name)
		}
		l := b.Head.Parsed.Layers[i]
		if data, ok := b.kept[l.Digest]; ok {
			return data, nil
		}
		if l.Size > bundle.MaxAttachmentSize {
			return nil, fmt.Errorf("attachment %s: %d bytes exceed the limit of %d", name, l.Size, bundle.MaxAttachmentSize)
		}
		rc, err := b.src.OpenBlob(ctx, l, 0)
		if err != nil {
			return nil, fmt.Errorf("attachment %s: %w", name, err)
		}
		defer rc.Close()
		data, err := verifyio.ReadAll(rc, l.Size, l.Digest)
		if err != nil {
			return nil, fmt.Errorf("attachment %s: %w", name, err)
		}
		b.Keep(l, data)
		return data, nil
	}
	return nil, fmt.Errorf("no attachment %s", name)
}

// LayoutBlobs is bundle b of layout l (a stick's, as Bundles listed it)
// read by range; ref names it in messages.
func LayoutBlobs(ctx context.Context, l *stick.Layout, b stick.Bundle, ref string) (*Blobs, error) {
	src := &layoutSource{l: l}
	e := Entry{Ref: ref, Name: b.Name, Version: b.Version, Err: b.Err, key: b}
	h, err := src.Head(ctx, e)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", ref, err)
	}
	return &Blobs{src: src, entry: e, Head: h}, nil
}
