package bundle

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/internal/verifyio"
	"github.com/ferry-update/ferry/internal/zstd"
)

// ErrTruncated is wrapped by errors about a bundle that ends early.
var ErrTruncated = errors.New("bundle is truncated")

// ErrUnaccounted is wrapped by errors about bytes in an archive that the
// signed index and manifests do not account for: a member after the last
// part, data after the end-of-archive marker, an entry another tar reader
// would apply to the members (FORMAT.md §3.3, §3.5). Another tool could read
// such bytes as part of the bundle, so readers refuse them.
var ErrUnaccounted = errors.New("not accounted for by the signed manifest")

// Error locates a problem in a bundle: which part of the format, which tar
// member and at which byte offset of the archive.
type Error struct {
	What   string // "index", "manifest", "config", `payload "rootfs" part 1 of 2`, ...
	Member string // tar member name, if known
	Offset int64  // offset of the member's header in the archive, -1 if unknown
	Err    error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.What)
	if e.Member != "" || e.Offset >= 0 {
		b.WriteString(" (")
		if e.Member != "" {
			b.WriteString(e.Member)
			if e.Offset >= 0 {
				b.WriteString(" ")
			}
		}
		if e.Offset >= 0 {
			fmt.Fprintf(&b, "at offset %d", e.Offset)
		}
		b.WriteString(")")
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Reader reads a bundle archive in one forward pass. NewReader consumes and
// checks the head (layout, index, manifest, config, signatures); Next then
// yields the payloads in order.
type Reader struct {
	src *countingReader
	tr  *tar.Reader

	index          ocispec.Index
	manifest       ocispec.Manifest
	manifestRaw    []byte
	manifestDigest digest.Digest
	config         *Config
	configRaw      []byte
	sigs           []Signature
	attachments    []AttachmentData
	ageHeader      *AgeHeader
	fileKey        []byte // unwrapped by Unlock
	payloadOffset  int64

	omitted      map[string]bool
	skipped      int   // pax global headers and directories passed over
	skippedBytes int64 // their data

	next  int // index of the next payload
	cur   *PayloadReader
	ended bool // the end of the archive has been read and checked
	// nextOff is where the next tar entry starts in the archive.
	nextOff int64
	err     error // sticky
}

// NewReader reads the head of the bundle from r and checks that it is well
// formed: every member in its place, every digest matching, every size within
// the limits. It does not judge signatures; see package verify.
func NewReader(r io.Reader) (*Reader, error) {
	return NewReaderWith(r, ReaderOptions{})
}

// ReaderOptions change what NewReaderWith expects.
type ReaderOptions struct {
	// Omitted names payloads whose parts the stream leaves out (as
	// Assemble does with Parts.Omit), because the caller assembles their
	// content from chunks (FORMAT.md §15.5). Next returns such a payload
	// with Omitted set and no content: the caller must check the content
	// it assembles against the payload's size and digest.
	Omitted map[string]bool
}

// ErrOmitted is returned by Read of a payload whose parts the stream
// leaves out.
var ErrOmitted = errors.New("payload parts omitted from the stream")

// NewReaderWith is NewReader with options.
func NewReaderWith(r io.Reader, o ReaderOptions) (*Reader, error) {
	br := &Reader{src: &countingReader{r: r}, omitted: o.Omitted}
	br.tr = tar.NewReader(br.src)
	if err := br.readHead(); err != nil {
		return nil, err
	}
	br.payloadOffset = roundUp(br.src.n)
	return br, nil
}

// Index returns the archive's OCI index.
func (r *Reader) Index() ocispec.Index { return r.index }

// Manifest returns the bundle's OCI manifest.
func (r *Reader) Manifest() ocispec.Manifest { return r.manifest }

// RawManifest returns the manifest's bytes exactly as stored.
func (r *Reader) RawManifest() []byte { return r.manifestRaw }

// ManifestDigest is the digest signatures are made over.
func (r *Reader) ManifestDigest() digest.Digest { return r.manifestDigest }

// Config returns the bundle's parsed config.
func (r *Reader) Config() *Config { return r.config }

// RawConfig returns the config's bytes exactly as stored.
func (r *Reader) RawConfig() []byte { return r.configRaw }

// Signatures returns the signatures stored in the bundle, unjudged.
func (r *Reader) Signatures() []Signature { return r.sigs }

// Attachments returns the bundle's attachments (FORMAT.md §6.1) in config
// order, each checked against its signed digest.
func (r *Reader) Attachments() []AttachmentData { return r.attachments }

// PayloadOffset is where the payload members start in the archive: every
// byte before it is the head.
func (r *Reader) PayloadOffset() int64 { return r.payloadOffset }

func (r *Reader) readHead() error {
	layout, err := r.member("layout", "oci-layout", -1, "", MaxLayoutSize)
	if err != nil {
		return err
	}
	var l ocispec.ImageLayout
	if err := json.Unmarshal(layout, &l); err != nil || l.Version != ocispec.ImageLayoutVersion {
		return &Error{What: "layout", Member: "oci-layout", Offset: 0, Err: fmt.Errorf("not an OCI image layout 1.0.0 marker: %q", truncate(layout))}
	}

	idxRaw, err := r.member("index", "index.json", -1, "", MaxIndexSize)
	if err != nil {
		return err
	}
	if err := r.parseIndex(idxRaw); err != nil {
		return &Error{What: "index", Member: "index.json", Offset: -1, Err: err}
	}

	md := r.index.Manifests[0]
	if r.manifestRaw, err = r.member("manifest", blobName(md.Digest), md.Size, md.Digest, MaxManifestSize); err != nil {
		return err
	}
	r.manifestDigest = md.Digest
	if err := r.parseManifest(); err != nil {
		return &Error{What: "manifest", Member: blobName(md.Digest), Offset: -1, Err: err}
	}

	cd := r.manifest.Config
	if r.configRaw, err = r.member("config", blobName(cd.Digest), cd.Size, cd.Digest, MaxConfigSize); err != nil {
		return err
	}
	if r.config, err = ParseConfig(r.configRaw); err != nil {
		return &Error{What: "config", Member: blobName(cd.Digest), Offset: -1, Err: err}
	}
	if tag := md.Annotations[RefNameAnnotation]; tag != r.config.Tag() {
		return &Error{What: "index", Member: "index.json", Offset: -1, Err: fmt.Errorf("bundle is tagged %q, but its version %q makes the tag %q", tag, r.config.Version, r.config.Tag())}
	}
	if err := r.checkLayers(); err != nil {
		return &Error{What: "manifest", Member: blobName(md.Digest), Offset: -1, Err: err}
	}

	if len(r.index.Manifests) == 2 {
		if err := r.readSignatures(r.index.Manifests[1]); err != nil {
			return err
		}
	}
	if err := r.readAttachments(); err != nil {
		return err
	}
	return r.parseAgeHeader()
}

// readAttachments reads the attachment members that follow the signature
// blobs, each bounded and checked against its signed digest.
func (r *Reader) readAttachments() error {
	for _, a := range r.config.Attachments {
		data, err := r.member(fmt.Sprintf("attachment %q", a.Name), blobName(a.Digest), a.Size, a.Digest, MaxAttachmentSize)
		if err != nil {
			return err
		}
		r.attachments = append(r.attachments, AttachmentData{Attachment: a, Data: data})
	}
	return nil
}

func (r *Reader) parseIndex(b []byte) error {
	if err := strictUnmarshal(b, &r.index); err != nil {
		return fmt.Errorf("parse: %w", err)
	}
	ms := r.index.Manifests
	if r.index.SchemaVersion != 2 || r.index.MediaType != IndexMediaType {
		return fmt.Errorf("schemaVersion %d mediaType %q: want 2 and %q", r.index.SchemaVersion, r.index.MediaType, IndexMediaType)
	}
	if len(ms) < 1 || len(ms) > 2 {
		return fmt.Errorf("%d manifests, want the bundle's and at most one signature manifest", len(ms))
	}
	for i, d := range ms {
		if err := checkDescriptor(d, ManifestMediaType, MaxManifestSize); err != nil {
			return fmt.Errorf("manifest %d: %w", i, err)
		}
	}
	if ms[0].Annotations[RefNameAnnotation] == "" {
		return fmt.Errorf("bundle manifest has no %s annotation", RefNameAnnotation)
	}
	if ms[0].ArtifactType != ArtifactType {
		return fmt.Errorf("bundle manifest's artifactType %q, want %q", ms[0].ArtifactType, ArtifactType)
	}
	if len(ms) == 2 {
		if want := SignatureTag(ms[0].Digest); ms[1].Annotations[RefNameAnnotation] != want {
			return fmt.Errorf("second manifest is named %q, want the signature tag %q", ms[1].Annotations[RefNameAnnotation], want)
		}
		if ms[1].Size > MaxSigManifestSize {
			return fmt.Errorf("signature manifest of %d bytes exceeds %d", ms[1].Size, MaxSigManifestSize)
		}
	}
	return nil
}

func checkDescriptor(d ocispec.Descriptor, mediaType string, max int64) error {
	if d.MediaType != mediaType {
		return fmt.Errorf("media type %q, want %q", d.MediaType, mediaType)
	}
	if err := d.Digest.Validate(); err != nil || d.Digest.Algorithm() != digest.SHA256 {
		return fmt.Errorf("digest %q: want sha256:<64 hex>", d.Digest)
	}
	if d.Size < 0 || d.Size > max {
		return fmt.Errorf("size %d: want 0 to %d", d.Size, max)
	}
	return nil
}

func (r *Reader) parseManifest() error {
	m := &r.manifest
	if err := strictUnmarshal(r.manifestRaw, m); err != nil {
		return fmt.Errorf("parse: %w", err)
	}
	if m.SchemaVersion != 2 || m.MediaType != ManifestMediaType {
		return fmt.Errorf("schemaVersion %d mediaType %q: want 2 and %q", m.SchemaVersion, m.MediaType, ManifestMediaType)
	}
	if m.ArtifactType != ArtifactType {
		return fmt.Errorf("artifactType %q: not a ferry bundle (want %q)", m.ArtifactType, ArtifactType)
	}
	if err := checkDescriptor(m.Config, ConfigMediaType, MaxConfigSize); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if len(m.Layers) < 1 || len(m.Layers) > MaxLayers {
		return fmt.Errorf("%d layers: want 1 to %d", len(m.Layers), MaxLayers)
	}
	for i, l := range m.Layers {
		// Attachment layers (another media type) are matched to the
		// config by checkLayers.
		mt, max := PayloadMediaType, int64(MaxPartSize)
		if l.MediaType == EncryptedPayloadMediaType {
			mt = l.MediaType
		} else if l.MediaType != PayloadMediaType && mediaTypeRE.MatchString(l.MediaType) {
			mt, max = l.MediaType, MaxAttachmentSize
		}
		if err := checkDescriptor(l, mt, max); err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
	}
	return nil
}

// checkLayers matches the manifest's layers to the config: the first are
// its attachments, in order; then each payload owns the next Parts layers,
// annotated with its name and part index.
func (r *Reader) checkLayers() error {
	layers := r.manifest.Layers
	i := 0
	for _, a := range r.config.Attachments {
		if i >= len(layers) {
			return fmt.Errorf("config lists %d attachments, manifest has too few layers", len(r.config.Attachments))
		}
		if err := checkAttachmentLayer(i, layers[i], a); err != nil {
			return err
		}
		i++
	}
	for _, p := range r.config.Payloads {
		var sum int64
		for k := 0; k < p.Parts; k++ {
			if i >= len(layers) {
				return fmt.Errorf("payload %q wants %d parts, manifest has too few layers", p.Name, p.Parts)
			}
			l := layers[i]
			if want := p.layerMediaType(); l.MediaType != want {
				return fmt.Errorf("layer %d: media type %q, want %q", i, l.MediaType, want)
			}
			if l.Annotations[PayloadNameAnnotation] != p.Name || l.Annotations[PartAnnotation] != strconv.Itoa(k) {
				return fmt.Errorf("layer %d is %q part %q, want %q part %d", i, l.Annotations[PayloadNameAnnotation], l.Annotations[PartAnnotation], p.Name, k)
			}
			sum += l.Size
			i++
		}
		if sum != p.CompressedSize {
			return fmt.Errorf("payload %q: layers hold %d bytes, config says %d", p.Name, sum, p.CompressedSize)
		}
	}
	if i != len(layers) {
		return fmt.Errorf("%d layers belong to no payload", len(layers)-i)
	}
	return nil
}

func (r *Reader) readSignatures(d ocispec.Descriptor) error {
	name := blobName(d.Digest)
	raw, err := r.member("signature manifest", name, d.Size, d.Digest, MaxSigManifestSize)
	if err != nil {
		return err
	}
	// Blobs come in the order ParseSignatures asks for them.
	r.sigs, err = ParseSignatures(raw, func(what string, desc ocispec.Descriptor, max int64) ([]byte, error) {
		return r.member(what, blobName(desc.Digest), desc.Size, desc.Digest, max)
	})
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			err = &Error{What: "signature manifest", Member: name, Offset: -1, Err: err}
		}
	}
	return err
}

// ParseSignatures decodes a cosign signature manifest. blob fetches (and
// must check against its descriptor) the signature config and then each
// distinct simple-signing payload, in that order; what names the blob for
// error messages and max bounds its size.
func ParseSignatures(manifest []byte, blob func(what string, d ocispec.Descriptor, max int64) ([]byte, error)) ([]Signature, error) {
	var m ocispec.Manifest
	if err := strictUnmarshal(manifest, &m); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if m.SchemaVersion != 2 || m.MediaType != ManifestMediaType {
		return nil, fmt.Errorf("schemaVersion %d mediaType %q: want 2 and %q", m.SchemaVersion, m.MediaType, ManifestMediaType)
	}
	if err := checkDescriptor(m.Config, SigConfigMediaType, MaxSigConfigSize); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if len(m.Layers) > MaxSignatures {
		return nil, fmt.Errorf("%d signatures, at most %d allowed", len(m.Layers), MaxSignatures)
	}
	if _, err := blob("signature config", m.Config, MaxSigConfigSize); err != nil {
		return nil, err
	}
	var sigs []Signature
	payloads := map[digest.Digest][]byte{}
	for i, l := range m.Layers {
		what := fmt.Sprintf("signature %d", i+1)
		if err := checkDescriptor(l, SimpleSigningType, MaxSigPayloadSize); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		sig, err := decodeSig(l.Annotations[CosignSigAnnotation])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		p, ok := payloads[l.Digest]
		if !ok {
			if p, err = blob(what, l, MaxSigPayloadSize); err != nil {
				return nil, err
			}
			payloads[l.Digest] = p
		}
		ann := map[string]string{}
		for k, v := range l.Annotations {
			if k != CosignSigAnnotation {
				ann[k] = v
			}
		}
		sigs = append(sigs, Signature{Payload: p, Sig: sig, Annotations: ann})
	}
	return sigs, nil
}

// SignatureArtifact is the cosign signature manifest for a set of
// signatures and the blobs it references, ready to push to a registry
// under SignatureTag(manifest).
type SignatureArtifact struct {
	Manifest []byte
	Blobs    map[digest.Digest][]byte
}

// NewSignatureArtifact builds the cosign signature manifest for sigs.
func NewSignatureArtifact(sigs []Signature) (*SignatureArtifact, error) {
	m, rest, err := (&head{sigs: sigs}).signatureBlobs()
	if err != nil {
		return nil, err
	}
	a := &SignatureArtifact{Manifest: m.data, Blobs: map[digest.Digest][]byte{}}
	for _, b := range rest {
		a.Blobs[b.desc.Digest] = b.data
	}
	return a, nil
}

// nextHeader advances to the next regular member, skipping pax global
// headers (the writer's padding) and directory entries.
func (r *Reader) nextHeader(what, want string) (*tar.Header, int64, error) {
	for {
		off := r.nextOff
		hdr, err := r.tr.Next()
		if err == io.EOF {
			return nil, off, &Error{What: what, Member: want, Offset: off, Err: fmt.Errorf("archive ends here: %w", ErrTruncated)}
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = fmt.Errorf("%w: %v", ErrTruncated, err)
			}
			return nil, off, &Error{What: what, Member: want, Offset: off, Err: err}
		}
		r.setNextOff(hdr)
		switch hdr.Typeflag {
		case tar.TypeXGlobalHeader, tar.TypeDir:
			if err := checkSkipped(hdr); err != nil {
				return nil, off, &Error{What: what, Member: hdr.Name, Offset: off, Err: err}
			}
			r.skipped++
			r.skippedBytes += hdr.Size
			if r.skipped > MaxSkippedEntries || r.skippedBytes > MaxSkippedBytes {
				return nil, off, &Error{What: what, Member: hdr.Name, Offset: off, Err: fmt.Errorf("more than %d skipped entries or %d bytes of them", MaxSkippedEntries, MaxSkippedBytes)}
			}
			continue
		case tar.TypeReg:
			return hdr, off, nil
		default:
			return nil, off, &Error{What: what, Member: hdr.Name, Offset: off, Err: fmt.Errorf("tar entry of type %q, want a regular file", hdr.Typeflag)}
		}
	}
}

// setNextOff notes where the entry after hdr starts: after its data, which
// archive/tar has consumed already for a pax global header, and which it
// may seek over (Archive) for a member.
func (r *Reader) setNextOff(hdr *tar.Header) {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		r.nextOff = roundUp(r.src.n)
	} else {
		r.nextOff = roundUp(r.src.n + hdr.Size)
	}
}

// checkSkipped allows only the entries FORMAT.md §3.3 lets a reader skip
// and that no other tar reader can take for content: directories of the
// layout itself, without data, and pax global headers holding only a
// comment (GNU tar would apply a global path or size to later members).
func checkSkipped(hdr *tar.Header) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		for k := range hdr.PAXRecords {
			if k != "comment" {
				return fmt.Errorf("%w: pax global header sets %q; only a comment is allowed", ErrUnaccounted, k)
			}
		}
		return nil
	}
	switch strings.TrimSuffix(strings.TrimPrefix(hdr.Name, "./"), "/") {
	case "", ".", "blobs", "blobs/sha256":
	default:
		return fmt.Errorf("%w: directory %q is not one of the layout's (., blobs/, blobs/sha256/)", ErrUnaccounted, hdr.Name)
	}
	if hdr.Size != 0 {
		return fmt.Errorf("%w: directory entry holds %d bytes of data", ErrUnaccounted, hdr.Size)
	}
	return nil
}

// member reads the next member whole, checking its name, its size (exact
// when size >= 0, else at most max) and its digest (when d is set).
func (r *Reader) member(what, name string, size int64, d digest.Digest, max int64) ([]byte, error) {
	hdr, off, err := r.nextHeader(what, name)
	if err != nil {
		return nil, err
	}
	fail := func(err error) error { return &Error{What: what, Member: hdr.Name, Offset: off, Err: err} }
	if strings.TrimPrefix(hdr.Name, "./") != name {
		return nil, fail(fmt.Errorf("unexpected member, want %s (members must come in the order FORMAT.md gives)", name))
	}
	if size >= 0 && hdr.Size != size {
		return nil, fail(fmt.Errorf("member holds %d bytes, descriptor says %d", hdr.Size, size))
	}
	if hdr.Size > max {
		return nil, fail(fmt.Errorf("member of %d bytes exceeds the limit of %d", hdr.Size, max))
	}
	if d == "" {
		b := make([]byte, hdr.Size)
		if _, err := io.ReadFull(r.tr, b); err != nil {
			return nil, fail(truncated(err))
		}
		return b, nil
	}
	b, err := verifyio.ReadAll(r.tr, hdr.Size, d)
	if err != nil {
		return nil, fail(truncated(err))
	}
	return b, nil
}

func truncated(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, verifyio.ErrTruncated) {
		return fmt.Errorf("%w: %v", ErrTruncated, err)
	}
	return err
}

// Next returns the next payload, or io.EOF after the last one. Whatever is
// left of the previous payload is read and checked first.
func (r *Reader) Next() (*PayloadReader, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.cur != nil {
		if err := r.cur.Discard(); err != nil {
			r.err = err
			return nil, err
		}
		r.cur = nil
	}
	if r.next == len(r.config.Payloads) {
		if !r.ended {
			if err := r.readEnd(); err != nil {
				r.err = err
				return nil, err
			}
			r.ended = true
		}
		return nil, io.EOF
	}
	first := len(r.config.Attachments)
	for _, p := range r.config.Payloads[:r.next] {
		first += p.Parts
	}
	p := r.config.Payloads[r.next]
	r.next++
	r.cur = &PayloadReader{
		Payload: p,
		Layers:  r.manifest.Layers[first : first+p.Parts],
		r:       r,
	}
	if r.omitted[p.Name] {
		r.cur.Omitted = true
		r.cur.part = p.Parts
		r.cur.err = &Error{What: fmt.Sprintf("payload %q content", p.Name), Offset: -1, Err: ErrOmitted}
	}
	return r.cur, nil
}

// Finish reads what is left of the bundle: the remaining payloads, each
// checked against its signed layer digests without being decompressed, and
// the end of the archive (FORMAT.md §3.5). A bundle is verified only once
// Finish (or Next, by returning io.EOF) has returned without error.
func (r *Reader) Finish() error {
	for {
		p, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err == nil {
			err = p.Discard()
		}
		if err != nil {
			return err
		}
	}
}

// PayloadError is how a consumer of a payload's content (a tar reader, an
// update module) reports its own failure err. A damaged payload often
// breaks the consumer (an invalid tar header) before the payload's digests
// are checked at its end, so PayloadError reads the rest of r (the
// payload, or a reader over it) and returns the payload's own *Error when
// the payload is at fault: the same damage gives the same verdict whatever
// the payload's type. Otherwise it returns err.
func PayloadError(r io.Reader, err error) error {
	var be *Error
	if err == nil || errors.As(err, &be) {
		return err
	}
	if _, derr := io.Copy(io.Discard, r); errors.As(derr, &be) {
		return derr
	}
	return err
}

// readEnd reads the rest of the archive after the last part: it must be
// the end-of-archive marker (two zero blocks) followed by nothing but zero
// bytes, at most MaxTrailerSize of them (tar record padding). A member, a
// non-zero byte or endless zeros are refused: another tar reader would see
// them, ferry has not verified them.
func (r *Reader) readEnd() error {
	const what = "end of archive"
	off := r.nextOff
	hdr, err := r.tr.Next()
	switch {
	case err == nil:
		return &Error{What: what, Member: hdr.Name, Offset: off, Err: fmt.Errorf("%w: member after the last part", ErrUnaccounted)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &Error{What: what, Offset: off, Err: fmt.Errorf("%w: %v", ErrTruncated, err)}
	case err != io.EOF:
		return &Error{What: what, Offset: off, Err: fmt.Errorf("%w: data after the last part is not an end-of-archive marker (%v)", ErrUnaccounted, err)}
	case r.src.n < off+2*512:
		return &Error{What: what, Offset: off, Err: fmt.Errorf("no end-of-archive marker (two zero blocks) after the last part: %w", ErrTruncated)}
	}
	start := r.src.n
	buf := make([]byte, 32<<10)
	for {
		n, err := r.src.Read(buf)
		for i, c := range buf[:n] {
			if c != 0 {
				return &Error{What: what, Offset: r.src.n - int64(n) + int64(i), Err: fmt.Errorf("%w: non-zero data after the end-of-archive marker", ErrUnaccounted)}
			}
		}
		if r.src.n-start > MaxTrailerSize {
			return &Error{What: what, Offset: start, Err: fmt.Errorf("%w: more than %d bytes after the end-of-archive marker", ErrUnaccounted, MaxTrailerSize)}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return &Error{What: what, Offset: r.src.n, Err: err}
		}
	}
}

// Close releases the decompressor of the current payload, if any.
func (r *Reader) Close() error {
	if r.cur != nil {
		r.cur.closeDecoder()
	}
	return nil
}

// PayloadReader streams one payload. Read returns the decompressed content;
// every part is checked against its signed layer digest and the whole
// against the config's size and digest. A mismatch is an error from Read,
// never a short read, and more data than the signed size is refused.
type PayloadReader struct {
	Payload
	Layers []ocispec.Descriptor
	// Omitted is set when the stream leaves the parts out
	// (ReaderOptions.Omitted): Read fails with ErrOmitted.
	Omitted bool

	r    *Reader
	part int              // next part to open
	raw  *verifyio.Reader // current part
	dec  io.ReadCloser    // decompressor over the parts
	out  *verifyio.Reader // decompressed, checked
	err  error
}

// Read implements io.Reader over the decompressed payload.
func (p *PayloadReader) Read(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	if p.out == nil {
		src, err := p.content()
		if err != nil {
			p.err = err
			return 0, err
		}
		dec, err := zstd.NewReader(src)
		if err != nil {
			p.err = err
			return 0, err
		}
		p.dec = dec
		if p.out, err = verifyio.NewReader(dec, p.Size, p.Digest); err != nil {
			p.err = err
			return 0, err
		}
	}
	n, err := p.out.Read(b)
	if err != nil && err != io.EOF {
		err = p.wrapContent(err)
		p.err = err
	}
	if err == io.EOF {
		p.closeDecoder()
	}
	return n, err
}

func (p *PayloadReader) wrapContent(err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err // a part's own error, already located
	}
	// The decompressor or the content check failed. If a part was
	// altered, its digest says so more precisely: read the rest of the
	// parts and report a part's error first.
	p.closeDecoder()
	if _, rerr := io.Copy(io.Discard, rawReader{p}); rerr != nil {
		return rerr
	}
	return &Error{What: fmt.Sprintf("payload %q content", p.Name), Offset: -1, Err: err}
}

// Discard reads the rest of the payload's parts without decompressing them,
// checking each part's digest. It is how verify checks a bundle at the speed
// of SHA-256.
func (p *PayloadReader) Discard() error {
	if p.Omitted {
		return nil
	}
	if p.err != nil {
		return p.err
	}
	p.closeDecoder()
	// io.Copy would read through io.Discard's 8 KiB buffer, one read
	// system call per 8 KiB; hiding Discard's ReadFrom makes it use ours.
	buf := make([]byte, discardBuf)
	_, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, rawReader{p}, buf)
	if err != nil {
		p.err = err
	}
	return err
}

// discardBuf is how much Discard reads at a time.
const discardBuf = 256 << 10

func (p *PayloadReader) closeDecoder() {
	if p.dec != nil {
		p.dec.Close()
		p.dec = nil
	}
}

// rawReader concatenates a payload's parts, each checked at its end.
type rawReader struct{ p *PayloadReader }

func (rr rawReader) Read(b []byte) (int, error) {
	p := rr.p
	for {
		if p.raw == nil {
			if p.part == len(p.Layers) {
				return 0, io.EOF
			}
			if err := p.openPart(); err != nil {
				return 0, err
			}
		}
		n, err := p.raw.Read(b)
		if err == io.EOF {
			p.raw = nil
			p.part++
			if n > 0 {
				return n, nil
			}
			continue
		}
		if err != nil {
			return n, &Error{What: p.partName(p.part), Member: blobName(p.Layers[p.part].Digest), Offset: -1, Err: truncated(err)}
		}
		return n, nil
	}
}

func (p *PayloadReader) partName(i int) string {
	return fmt.Sprintf("payload %q part %d of %d", p.Name, i+1, len(p.Layers))
}

func (p *PayloadReader) openPart() error {
	l := p.Layers[p.part]
	what := p.partName(p.part)
	name := blobName(l.Digest)
	hdr, off, err := p.r.nextHeader(what, name)
	if err != nil {
		return err
	}
	if strings.TrimPrefix(hdr.Name, "./") != name {
		return &Error{What: what, Member: hdr.Name, Offset: off, Err: fmt.Errorf("unexpected member, want %s", name)}
	}
	if hdr.Size != l.Size {
		return &Error{What: what, Member: hdr.Name, Offset: off, Err: fmt.Errorf("member holds %d bytes, manifest says %d", hdr.Size, l.Size)}
	}
	p.raw, err = verifyio.NewReader(p.r.tr, l.Size, l.Digest)
	return err
}

// skipParts opens each remaining part member, checked as openPart checks
// it, and reports where its data lies without reading it (archive/tar seeks
// over it when the source is a file).
func (p *PayloadReader) skipParts(at func(l ocispec.Descriptor, dataOff int64)) error {
	for ; p.part < len(p.Layers); p.part++ {
		if err := p.openPart(); err != nil {
			p.err = err
			return err
		}
		at(p.Layers[p.part], p.r.src.n)
		p.raw = nil
	}
	return nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// Seek lets archive/tar seek over member data it is told to skip, when the
// source can seek (a file). Only relative seeks are offered.
func (c *countingReader) Seek(off int64, whence int) (int64, error) {
	s, ok := c.r.(io.Seeker)
	if !ok || whence != io.SeekCurrent {
		return 0, errors.ErrUnsupported
	}
	pos, err := s.Seek(off, whence)
	if err == nil {
		c.n += off
	}
	return pos, err
}

func roundUp(n int64) int64 { return (n + 511) &^ 511 }

func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}
