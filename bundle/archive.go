package bundle

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/internal/filekind"
	"github.com/ferry-update/ferry/internal/verifyio"
)

// Archive is a bundle file opened for random access, for the tools that
// move blobs one by one (registry push, mirrors, sticks) rather than stream
// an install. Opening it checks the head like NewReader and indexes where
// every blob lies; blob contents are checked when they are read.
type Archive struct {
	*Reader
	f     *os.File
	blobs map[digest.Digest]section
}

type section struct{ off, size int64 }

// OpenArchive opens the bundle file at path.
func OpenArchive(path string) (*Archive, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	a, err := openArchive(f)
	if err != nil {
		f.Close()
		// Another kind of file (a stick or raw image, a key) is named
		// as what it is rather than as a damaged bundle.
		return nil, fmt.Errorf("open bundle %s: %w", path, filekind.CheckFile(path, filekind.Bundle, err))
	}
	return a, nil
}

func openArchive(f *os.File) (*Archive, error) {
	r, err := NewReader(f)
	if err != nil {
		return nil, err
	}
	a := &Archive{Reader: r, f: f, blobs: map[digest.Digest]section{}}
	// Walk the parts as a stream reader does, with its checks (names, order,
	// sizes, the end of the archive), but seek over their data: blob
	// contents are checked when they are read.
	for {
		p, err := r.Next()
		if err == io.EOF {
			return a, nil
		}
		if err != nil {
			return nil, err
		}
		if err := p.skipParts(func(l ocispec.Descriptor, off int64) {
			a.blobs[l.Digest] = section{off, l.Size}
		}); err != nil {
			return nil, err
		}
	}
}

// Close closes the file.
func (a *Archive) Close() error {
	a.Reader.Close()
	return a.f.Close()
}

// Blob returns a layer's content (a payload part or an attachment), checked
// against its digest as it is read (the returned reader fails at EOF on a
// mismatch).
func (a *Archive) Blob(d digest.Digest) (io.Reader, int64, error) {
	for _, at := range a.attachments {
		if at.Digest == d {
			return bytes.NewReader(at.Data), at.Size, nil // checked by NewReader
		}
	}
	s, ok := a.blobs[d]
	if !ok {
		return nil, 0, fmt.Errorf("blob %s is not a payload layer of this bundle", d)
	}
	vr, err := verifyio.NewReader(io.NewSectionReader(a.f, s.off, s.size), s.size, d)
	if err != nil {
		return nil, 0, err
	}
	return vr, s.size, nil
}

// Parts is what Assemble needs to write a bundle archive: the manifest and
// config bytes exactly as signed, the signatures, and a way to fetch each
// payload layer. It lets a registry pull or a mirror produce the same
// canonical archive that Create writes, in one streaming pass.
type Parts struct {
	Manifest   []byte
	Config     []byte
	Signatures []Signature
	// Layer opens a layer's content: a payload part, or an attachment
	// (the manifest's first layers when the config lists attachments).
	// Assemble checks it against the descriptor's size and digest.
	Layer func(ocispec.Descriptor) (io.ReadCloser, error)
	// Omit names payloads whose parts Assemble leaves out: the stream is
	// then no bundle archive, but what NewReaderWith reads with the same
	// ReaderOptions.Omitted, for a device that assembles those payloads'
	// content from chunks (FORMAT.md §15.5).
	Omit map[string]bool
}

// Assemble writes a bundle archive in the canonical member order to w. The
// manifest and config are checked for shape (as NewReader would) before a
// byte is written; every layer is checked while it streams.
func Assemble(w io.Writer, p Parts) error {
	h, layers, err := headFromParts(p)
	if err != nil {
		return err
	}
	cfg, _ := ParseConfig(p.Config)
	mtime := cfg.Created
	// Attachments are part of the head: fetch them before writing it.
	for i, a := range cfg.Attachments {
		data, err := fetchLayer(p, layers[i])
		if err != nil {
			return &Error{What: fmt.Sprintf("attachment %q", a.Name), Member: blobName(a.Digest), Offset: -1, Err: err}
		}
		h.attachments = append(h.attachments, blob{desc: layers[i], data: data})
	}
	headBytes, err := h.encode(mtime)
	if err == nil {
		err = checkHead(headBytes)
	}
	if err != nil {
		return err
	}
	if _, err := w.Write(headBytes); err != nil {
		return err
	}
	for i, l := range layers {
		if i < len(cfg.Attachments) || p.Omit[l.Annotations[PayloadNameAnnotation]] {
			continue
		}
		if err := assembleLayer(w, p, l, mtime); err != nil {
			return fmt.Errorf("layer %d (%s): %w", i, l.Digest, err)
		}
	}
	_, err = w.Write(make([]byte, 1024))
	return err
}

// fetchLayer reads a small layer whole, checked against its descriptor.
func fetchLayer(p Parts, l ocispec.Descriptor) ([]byte, error) {
	rc, err := p.Layer(l)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return verifyio.ReadAll(rc, l.Size, l.Digest)
}

func assembleLayer(w io.Writer, p Parts, l ocispec.Descriptor, mtime time.Time) error {
	hdr, err := encodeHeader(blobName(l.Digest), l.Size, mtime)
	if err != nil {
		return err
	}
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	rc, err := p.Layer(l)
	if err != nil {
		return err
	}
	defer rc.Close()
	vr, err := verifyio.NewReader(rc, l.Size, l.Digest)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, vr); err != nil {
		return err
	}
	_, err = w.Write(make([]byte, (512-l.Size%512)%512))
	return err
}

// headFromParts checks manifest and config the way a reader does.
func headFromParts(p Parts) (*head, []ocispec.Descriptor, error) {
	r := &Reader{manifestRaw: p.Manifest, manifestDigest: digest.FromBytes(p.Manifest)}
	if err := r.parseManifest(); err != nil {
		return nil, nil, &Error{What: "manifest", Offset: -1, Err: err}
	}
	if digest.FromBytes(p.Config) != r.manifest.Config.Digest || int64(len(p.Config)) != r.manifest.Config.Size {
		return nil, nil, &Error{What: "config", Offset: -1, Err: fmt.Errorf("does not match the manifest's config descriptor %s", r.manifest.Config.Digest)}
	}
	cfg, err := ParseConfig(p.Config)
	if err != nil {
		return nil, nil, &Error{What: "config", Offset: -1, Err: err}
	}
	r.config = cfg
	if err := r.checkLayers(); err != nil {
		return nil, nil, &Error{What: "manifest", Offset: -1, Err: err}
	}
	if len(p.Signatures) > MaxSignatures {
		return nil, nil, fmt.Errorf("%d signatures, at most %d allowed", len(p.Signatures), MaxSignatures)
	}
	h := &head{
		manifest: newBlob(ManifestMediaType, p.Manifest),
		config:   newBlob(ConfigMediaType, p.Config),
		sigs:     p.Signatures,
		tag:      cfg.Tag(),
	}
	return h, r.manifest.Layers, nil
}
