package bundle

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"os"
	"strconv"
	"time"

	"filippo.io/age"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/internal/atomicfile"
	"github.com/ferry-update/ferry/internal/zstd"
)

// headReserve is the space the writer leaves in front of the payloads for
// the head it can only write once the payload digests are known. A head that
// does not fit costs one extra copy of the payloads, nothing else.
const headReserve = 64 << 10

// Source is one payload to pack: its decompressed content and its metadata.
type Source struct {
	Name    string
	Type    PayloadType
	Target  string // where the agent installs it; defaults to Type
	Content io.Reader
	// Size is the content's length if known (0: unknown); a chunked
	// payload uses it to choose its part sizes (FORMAT.md §15.3).
	Size int64
}

// Options say what bundle Create makes.
type Options struct {
	Name        string
	Version     string
	DeviceTypes []string
	Description string
	Annotations map[string]string
	// Provides and Depends are the bundle's components besides itself
	// and the constraints it puts on the device's (FORMAT.md §6.2).
	Provides map[string]string
	Depends  []string
	// Created is recorded in the config and as every member's mtime;
	// zero means now. Set it (e.g. from SOURCE_DATE_EPOCH) for
	// reproducible bundles.
	Created time.Time
	// PartSize splits a payload's compressed stream into layers of at most
	// this many bytes; zero means DefaultPartSize.
	PartSize int64
	// Workers is the compressor's thread count; zero means all CPUs.
	Workers int
	// Sign, when set, is called with the manifest digest once it is known;
	// its signatures are written into the bundle.
	Sign func(manifest digest.Digest) ([]Signature, error)
	// Progress, when set, is called with the number of payload bytes read
	// so far.
	Progress func(read int64)
	// Attachments are signed documents (SBOMs) stored in the head; each
	// needs Name, MediaType and Data (Digest and Size are computed).
	Attachments []AttachmentData
	// EncryptTo, when set, encrypts every payload to these age
	// recipients (FORMAT.md §6.3).
	EncryptTo []age.Recipient
	// ChunkAvgBits, if not zero, chunks every rootfs payload into chunks
	// of about 2^ChunkAvgBits bytes with a signed chunk index, for delta
	// updates (FORMAT.md §15); DefaultChunkAvgBits is the usual choice.
	// It excludes EncryptTo: a device cannot read a chunk of ciphertext
	// by range.
	ChunkAvgBits int
}

// Result describes a bundle that was written.
type Result struct {
	ManifestDigest digest.Digest
	Config         *Config
	Size           int64
}

// Create packs sources into a bundle at path in one streaming pass. The file
// appears atomically: it is written beside path, synced, then renamed.
func Create(path string, opts Options, sources ...Source) (*Result, error) {
	if opts.ChunkAvgBits != 0 && len(opts.EncryptTo) > 0 {
		return nil, fmt.Errorf("create %s: %w", path, errChunkedEncrypted)
	}
	var fileKey []byte
	if len(opts.EncryptTo) > 0 {
		header, fk, err := NewAgeHeader(opts.EncryptTo)
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", path, err)
		}
		fileKey = fk
		opts.Attachments = append(append([]AttachmentData(nil), opts.Attachments...), newAttachment(AgeHeaderName, AgeHeaderMediaType, header))
	}
	cfg, err := newConfig(opts, sources)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	partSize := opts.PartSize
	if partSize == 0 {
		partSize = DefaultPartSize
	}
	if partSize < 512 || partSize > MaxPartSize {
		return nil, fmt.Errorf("create %s: part size %d: want 512 to %d bytes", path, partSize, int64(MaxPartSize))
	}
	mtime := cfg.Created
	atts := attachmentData(cfg.Attachments, opts.Attachments)
	// The attachments are known now and go in the head: reserve room for
	// them as well, so the head still fits in front of the parts.
	reserve := int64(headReserve)
	for _, a := range atts {
		reserve += 512 + roundUp(a.Size)
	}

	f, err := atomicfile.CreateTempPerm(path, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	defer func() {
		if f != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()

	pw := &partWriter{f: f, off: reserve, partSize: partSize, mtime: mtime, fileKey: fileKey}
	var read int64
	progress := func(n int64) {
		read += n
		if opts.Progress != nil {
			opts.Progress(read)
		}
	}
	for i := range sources {
		s := &sources[i]
		p := &cfg.Payloads[i]
		if opts.ChunkAvgBits == 0 || s.Type != Rootfs {
			err = pw.writePayload(p, s.Content, opts.Workers, progress)
		} else {
			var ix *ChunkIndex
			if ix, err = pw.writeChunkedPayload(p, s.Content, s.Size, opts.ChunkAvgBits, opts.Workers, progress); err == nil {
				// The index is known only now: it joins the head's
				// attachments, after those given.
				a := AttachmentData{Data: ix.Marshal()}
				a.Attachment = Attachment{Name: p.Chunks.Index, MediaType: ChunkIndexMediaType, Digest: digest.FromBytes(a.Data), Size: int64(len(a.Data))}
				cfg.Attachments = append(cfg.Attachments, a.Attachment)
				atts = append(atts, a)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("create %s: payload %s: %w", path, s.Name, err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	end := pw.off
	if _, err := f.WriteAt(make([]byte, 1024), end); err != nil { // end-of-archive marker
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	end += 1024

	h, err := newHead(cfg, atts, pw.layers)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	if opts.Sign != nil {
		if h.sigs, err = opts.Sign(h.manifest.desc.Digest); err != nil {
			return nil, fmt.Errorf("create %s: sign: %w", path, err)
		}
	}
	headBytes, err := h.encode(mtime)
	if err == nil {
		err = checkHead(headBytes)
	}
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	out := f
	switch gap := reserve - int64(len(headBytes)); {
	case gap == 0:
	case gap >= 1024:
		pad, err := padMember(int(gap))
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", path, err)
		}
		headBytes = append(headBytes, pad...)
	default:
		// The head outgrew the reserve: write it in a fresh file and copy
		// the payloads behind it.
		if out, err = atomicfile.CreateTempPerm(path, 0o644); err != nil {
			return nil, fmt.Errorf("create %s: %w", path, err)
		}
		defer func() { out.Close(); os.Remove(out.Name()) }()
		if _, err := out.WriteAt(headBytes, 0); err != nil {
			return nil, fmt.Errorf("create %s: %w", path, err)
		}
		if err := copyRange(out, int64(len(headBytes)), f, reserve, end-reserve); err != nil {
			return nil, fmt.Errorf("create %s: %w", path, err)
		}
		end = int64(len(headBytes)) + end - reserve
		headBytes = nil
	}
	if headBytes != nil {
		if _, err := out.WriteAt(headBytes, 0); err != nil {
			return nil, fmt.Errorf("create %s: %w", path, err)
		}
	}
	if err := atomicfile.Commit(out, path); err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return &Result{ManifestDigest: h.manifest.desc.Digest, Config: cfg, Size: end}, nil
}

func newConfig(opts Options, sources []Source) (*Config, error) {
	created := opts.Created
	if created.IsZero() {
		created = time.Now()
	}
	version := 1
	switch {
	case len(opts.EncryptTo) > 0:
		version = EncryptedFormatVersion
	case len(opts.Depends) > 0:
		version = 2
	}
	encryption := ""
	if len(opts.EncryptTo) > 0 {
		encryption = EncryptionAge
	}
	cfg := &Config{
		FormatVersion: version,
		Name:          opts.Name,
		Version:       opts.Version,
		DeviceTypes:   opts.DeviceTypes,
		Created:       created.UTC().Truncate(time.Second),
		Description:   opts.Description,
		Annotations:   opts.Annotations,
		Provides:      opts.Provides,
		Depends:       opts.Depends,
	}
	for _, s := range sources {
		target := s.Target
		if target == "" {
			target = string(s.Type)
		}
		// Size and digests are filled in as the payload streams; these
		// placeholders only let Validate check the rest now.
		cfg.Payloads = append(cfg.Payloads, Payload{
			Name: s.Name, Type: s.Type, Target: target,
			Digest: digest.FromString(""), Compression: "zstd", Parts: 1,
			Encryption: encryption,
		})
	}
	for _, a := range opts.Attachments {
		cfg.Attachments = append(cfg.Attachments, newAttachment(a.Name, a.MediaType, a.Data).Attachment)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// attachmentData pairs the config's attachments with their content.
func attachmentData(as []Attachment, in []AttachmentData) []AttachmentData {
	out := make([]AttachmentData, len(as))
	for i, a := range as {
		out[i] = AttachmentData{Attachment: a, Data: in[i].Data}
	}
	return out
}

// partWriter receives a payload's compressed stream and lays it out as tar
// members of at most partSize bytes. Each member's header is written into the
// 512 bytes left in front of its data once the data's digest is known, so
// nothing is written twice.
type partWriter struct {
	f        *os.File
	off      int64 // where the next header goes
	partSize int64
	mtime    time.Time
	layers   []ocispec.Descriptor
	fileKey  []byte // encrypts every payload when set

	name      string // payload being written
	mediaType string // of its layers
	buf       *bufio.Writer
	hdrAt     int64
	n         int64 // bytes in the current part
	h         hash.Hash
	open      bool
	part      int   // index of the current part within the payload
	written   int64 // compressed bytes of the current payload
}

// startPayload readies the writer for the parts of payload p.
func (w *partWriter) startPayload(p *Payload) {
	w.name = p.Name
	w.mediaType = p.layerMediaType()
	w.written = 0
	w.part = 0
	w.buf = bufio.NewWriterSize(io.NewOffsetWriter(w.f, 0), 1<<20)
}

func (w *partWriter) writePayload(p *Payload, content io.Reader, workers int, progress func(int64)) error {
	w.startPayload(p)
	first := len(w.layers)
	var sink io.Writer = w
	var ew *encryptWriter
	if w.fileKey != nil {
		var err error
		if ew, err = newEncryptWriter(w, w.fileKey); err != nil {
			return fmt.Errorf("encrypt: %w", err)
		}
		sink = ew
	}
	enc, err := zstd.NewWriter(sink, workers)
	if err != nil {
		return err
	}
	sum := sha256.New()
	var size int64
	chunk := make([]byte, 1<<20)
	for {
		n, rerr := io.ReadFull(content, chunk)
		if n > 0 {
			sum.Write(chunk[:n])
			size += int64(n)
			if _, err := enc.Write(chunk[:n]); err != nil {
				return fmt.Errorf("compress: %w", err)
			}
			progress(int64(n))
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("read content: %w", rerr)
		}
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("compress: %w", err)
	}
	if ew != nil {
		if err := ew.Close(); err != nil {
			return fmt.Errorf("encrypt: %w", err)
		}
	}
	if err := w.finishPart(); err != nil {
		return err
	}
	p.Size = size
	p.Digest = digest.NewDigest(digest.SHA256, sum)
	p.CompressedSize = w.written
	p.Parts = len(w.layers) - first
	return nil
}

func (w *partWriter) Write(b []byte) (int, error) {
	total := len(b)
	for len(b) > 0 {
		if !w.open {
			w.hdrAt = w.off
			w.off += 512
			w.n = 0
			w.h = sha256.New()
			w.open = true
			// bufio writes through an OffsetWriter at w.off onwards.
			w.buf.Reset(io.NewOffsetWriter(w.f, w.off))
		}
		n := int64(len(b))
		if room := w.partSize - w.n; n > room {
			n = room
		}
		if _, err := w.buf.Write(b[:n]); err != nil {
			return 0, err
		}
		w.h.Write(b[:n])
		w.n += n
		w.written += n
		b = b[n:]
		if w.n == w.partSize {
			if err := w.finishPart(); err != nil {
				return 0, err
			}
		}
	}
	return total, nil
}

func (w *partWriter) finishPart() error {
	if !w.open {
		return nil
	}
	w.open = false
	if pad := (512 - w.n%512) % 512; pad > 0 {
		if _, err := w.buf.Write(make([]byte, pad)); err != nil {
			return err
		}
	}
	if err := w.buf.Flush(); err != nil {
		return err
	}
	d := digest.NewDigest(digest.SHA256, w.h)
	hdr, err := encodeHeader(blobName(d), w.n, w.mtime)
	if err != nil {
		return err
	}
	if _, err := w.f.WriteAt(hdr, w.hdrAt); err != nil {
		return err
	}
	w.layers = append(w.layers, ocispec.Descriptor{
		MediaType: w.mediaType,
		Digest:    d,
		Size:      w.n,
		Annotations: map[string]string{
			PayloadNameAnnotation: w.name,
			PartAnnotation:        strconv.Itoa(w.part),
		},
	})
	w.part++
	w.off += w.n + (512-w.n%512)%512
	return nil
}

// checkHead runs the reader's checks over a head about to be written, so no
// writer makes a bundle that readers refuse.
func checkHead(b []byte) error {
	_, err := NewReader(bytes.NewReader(b))
	return err
}

// copyRange copies n bytes from src at srcOff to dst at dstOff; on Linux the
// kernel does it (copy_file_range) without passing through user space.
func copyRange(dst *os.File, dstOff int64, src *os.File, srcOff, n int64) error {
	if _, err := dst.Seek(dstOff, io.SeekStart); err != nil {
		return err
	}
	if _, err := src.Seek(srcOff, io.SeekStart); err != nil {
		return err
	}
	copied, err := io.Copy(dst, io.LimitReader(src, n))
	if err != nil {
		return err
	}
	if copied != n {
		return fmt.Errorf("copy: %d of %d bytes", copied, n)
	}
	return nil
}
