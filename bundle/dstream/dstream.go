// Package dstream reads and writes delta streams (bundle/FORMAT.md
// §15.9): for one chunked payload and one base (a chunked payload a
// device holds, named by the digest of its chunk index), the payload's
// chunk index compressed against the base's index, then, for each
// distinct chunk the base lacks, its content as a zstd frame compressed
// against the base's bytes around where the chunk sits, or its plain
// frame when that is smaller.
//
// A stream is not signed and needs no signature: Reader checks the index
// it decodes against the signed index digest the caller names, and every
// chunk it decodes against its ID in that index; a caller uses nothing
// else from it, and fetches a chunk whose record fails by its frame
// instead. Write makes a stream with flat memory, chunk by chunk; a
// mirror serves it (mirror.Store.DeltaStream), a device reads it as it
// writes the new slot (agent/delta.go).
package dstream

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/zstd"
)

const (
	// MediaType is the media type of a delta stream served over HTTP.
	MediaType = "application/vnd.ferry.delta-stream.v1"
	magic     = "ferryds1"
	// headerSize: magic, two SHA-256 digests, the index frame's length
	// and the record count.
	headerSize = 8 + 32 + 32 + 4 + 4
	// MaxMargin bounds how far a record's dictionary may reach beyond its
	// chunk's size on each side: a dictionary holds at most the chunk's
	// size + 2 × MaxMargin bytes.
	MaxMargin = 64 << 10
	// DefaultMargin is how many base bytes Write puts on each side of the
	// place a new chunk sits at: chunk boundaries move by up to a few
	// KiB around a change.
	DefaultMargin = 8 << 10
	// maxFrameOverhead bounds a record's frame beyond its chunk's size,
	// as for the frames of a chunked payload (§15.4).
	maxFrameOverhead = 1 << 10
)

// ErrStream is wrapped by every error about a malformed delta stream or
// one that does not match the indexes it is read against.
var ErrStream = errors.New("bad delta stream")

func bad(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrStream, fmt.Sprintf(format, args...))
}

// Payload is one chunked payload a stream is made from or against: its
// raw chunk index and a way to read the frame of each chunk (from the
// payload's parts).
type Payload struct {
	Index []byte
	// Frame appends chunk i's frame to dst.
	Frame func(dst []byte, i int) ([]byte, error)
}

// Stats says what Write wrote.
type Stats struct {
	// Bytes is the stream's length, IndexFrame its index frame's.
	Bytes, IndexFrame int64
	// Records is the number of chunks in the stream, Dict those of them
	// compressed against the base (the others are plain frames).
	Records, Dict int
	// Content is the records' content, Frames their frames.
	Content, Frames int64
}

// Write writes the delta stream of target against base to w. Memory
// stays flat: both indexes, and a few chunks at a time.
func Write(w io.Writer, base, target Payload) (*Stats, error) {
	bix, err := bundle.ParseChunkIndex(base.Index)
	if err != nil {
		return nil, fmt.Errorf("base: %w", err)
	}
	tix, err := bundle.ParseChunkIndex(target.Index)
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	enc, err := zstd.NewDictEncoder()
	if err != nil {
		return nil, err
	}
	ixFrame, err := enc.EncodeFrame(nil, target.Index, base.Index)
	if err != nil {
		return nil, err
	}
	if len(ixFrame) > bundle.MaxAttachmentSize {
		return nil, fmt.Errorf("index frame of %d bytes", len(ixFrame))
	}
	bc, err := newBaseContent(bix, base.Frame)
	if err != nil {
		return nil, err
	}
	// at: where the base holds each chunk, -1 for a chunk it holds more
	// than once (zeros, repeated blocks), which says nothing about where
	// the content around it sits; next[i]: the first chunk from i on
	// that the base holds once (len when none).
	at := make(map[bundle.ChunkID]int64, len(bix.Chunks))
	for j, c := range bix.Chunks {
		if _, dup := at[c.ID]; dup {
			at[c.ID] = -1
		} else {
			at[c.ID] = bc.offs[j]
		}
	}
	anchor := func(i int) bool { off, ok := at[tix.Chunks[i].ID]; return ok && off >= 0 }
	next := make([]int32, len(tix.Chunks)+1)
	next[len(tix.Chunks)] = int32(len(tix.Chunks))
	for i := len(tix.Chunks) - 1; i >= 0; i-- {
		next[i] = next[i+1]
		if anchor(i) {
			next[i] = int32(i)
		}
	}
	toffs := offsets(tix)
	seen := map[bundle.ChunkID]bool{}
	var records int
	for _, c := range tix.Chunks {
		if _, ok := at[c.ID]; !ok && !seen[c.ID] {
			seen[c.ID] = true
			records++
		}
	}
	clear(seen)

	bw := bufio.NewWriterSize(w, 1<<16)
	st := &Stats{IndexFrame: int64(len(ixFrame)), Records: records}
	hdr := make([]byte, 0, headerSize)
	hdr = append(hdr, magic...)
	bsum, tsum := sha256.Sum256(base.Index), sha256.Sum256(target.Index)
	hdr = append(hdr, bsum[:]...)
	hdr = append(hdr, tsum[:]...)
	hdr = binary.BigEndian.AppendUint32(hdr, uint32(len(ixFrame)))
	hdr = binary.BigEndian.AppendUint32(hdr, uint32(records))
	bw.Write(hdr)
	bw.Write(ixFrame)
	st.Bytes = int64(len(hdr) + len(ixFrame))

	dec, err := zstd.NewFrameDecoder(bundle.MaxChunkSize)
	if err != nil {
		return nil, err
	}
	var plain, content, frame, rec []byte
	prev, prevShared := -1, -1
	for i, c := range tix.Chunks {
		if _, ok := at[c.ID]; ok {
			if anchor(i) {
				prevShared = i
			}
			continue
		}
		if seen[c.ID] {
			continue
		}
		seen[c.ID] = true
		if plain, err = target.Frame(plain[:0], i); err != nil {
			return nil, fmt.Errorf("target chunk %d: %w", i, err)
		}
		if content, err = dec.DecodeFrame(content[:0], plain); err != nil || len(content) != int(c.Size) || bundle.ChunkIDOf(content) != c.ID {
			return nil, fmt.Errorf("target chunk %d: its frame does not hold it (%v)", i, err)
		}
		// The base bytes at the place of the chunk, aligned by the
		// nearest chunk before it that the base holds once (else after
		// it).
		var dictOff, dictLen int64
		ref := prevShared
		if ref < 0 && next[i] < int32(len(tix.Chunks)) {
			ref = int(next[i])
		}
		if ref >= 0 {
			start := at[tix.Chunks[ref].ID] + toffs[i] - toffs[ref] - DefaultMargin
			end := start + int64(c.Size) + 2*DefaultMargin
			start, end = max(start, 0), min(end, bc.size)
			if start < end {
				dictOff, dictLen = start, end-start
			}
		}
		use := plain
		if dictLen > 0 {
			dict, err := bc.read(dictOff, dictLen)
			if err != nil {
				return nil, err
			}
			if frame, err = enc.EncodeFrame(frame[:0], content, dict); err != nil {
				return nil, err
			}
			if len(frame) < len(plain) {
				use = frame
				st.Dict++
			} else {
				dictLen = 0
			}
		}
		rec = binary.AppendUvarint(rec[:0], uint64(i-prev-1))
		rec = binary.AppendUvarint(rec, uint64(dictLen))
		if dictLen > 0 {
			rec = binary.AppendUvarint(rec, uint64(dictOff))
		}
		rec = binary.AppendUvarint(rec, uint64(len(use)))
		bw.Write(rec)
		if _, err := bw.Write(use); err != nil {
			return nil, err
		}
		st.Bytes += int64(len(rec) + len(use))
		st.Content += int64(c.Size)
		st.Frames += int64(len(use))
		prev = i
	}
	return st, bw.Flush()
}

// offsets returns where each chunk of ix starts, and the content's size
// last.
func offsets(ix *bundle.ChunkIndex) []int64 {
	offs := make([]int64, len(ix.Chunks)+1)
	for i, c := range ix.Chunks {
		offs[i+1] = offs[i] + int64(c.Size)
	}
	return offs
}

// baseContent reads a range of the base's content by decoding the frames
// that hold it, keeping the last few chunks decoded.
type baseContent struct {
	ix    *bundle.ChunkIndex
	offs  []int64
	size  int64
	frame func(dst []byte, i int) ([]byte, error)
	dec   *zstd.FrameDecoder
	buf   []byte
	cache [4]struct {
		i    int
		data []byte
	}
	turn int
	out  []byte
}

func newBaseContent(ix *bundle.ChunkIndex, frame func(dst []byte, i int) ([]byte, error)) (*baseContent, error) {
	dec, err := zstd.NewFrameDecoder(bundle.MaxChunkSize)
	if err != nil {
		return nil, err
	}
	offs := offsets(ix)
	b := &baseContent{ix: ix, offs: offs, size: offs[len(ix.Chunks)], frame: frame, dec: dec}
	for k := range b.cache {
		b.cache[k].i = -1
	}
	return b, nil
}

func (b *baseContent) chunk(i int) ([]byte, error) {
	for _, c := range b.cache {
		if c.i == i {
			return c.data, nil
		}
	}
	var err error
	if b.buf, err = b.frame(b.buf[:0], i); err != nil {
		return nil, fmt.Errorf("base chunk %d: %w", i, err)
	}
	c := &b.cache[b.turn%len(b.cache)]
	b.turn++
	c.i = -1
	if c.data, err = b.dec.DecodeFrame(c.data[:0], b.buf); err != nil {
		return nil, fmt.Errorf("base chunk %d: %w", i, err)
	}
	if len(c.data) != int(b.ix.Chunks[i].Size) {
		return nil, fmt.Errorf("base chunk %d: %d bytes, the index says %d", i, len(c.data), b.ix.Chunks[i].Size)
	}
	c.i = i
	return c.data, nil
}

// read returns n bytes of the base's content from off (within it).
func (b *baseContent) read(off, n int64) ([]byte, error) {
	b.out = b.out[:0]
	i := sort.Search(len(b.ix.Chunks), func(i int) bool { return b.offs[i+1] > off })
	for end := off + n; off < end; i++ {
		data, err := b.chunk(i)
		if err != nil {
			return nil, err
		}
		from, to := off-b.offs[i], min(end, b.offs[i+1])-b.offs[i]
		b.out = append(b.out, data[from:to]...)
		off = b.offs[i] + to
	}
	return b.out, nil
}

// Reader reads a delta stream against a base index and the signed digest
// of the target index.
type Reader struct {
	r        *bufio.Reader
	index    []byte
	ix       *bundle.ChunkIndex
	baseSize int64
	left     int // records not read yet
	next     int // the smallest chunk number the next record may name
	plain    *zstd.FrameDecoder
	dict     *zstd.DictDecoder
	frame    []byte
}

// NewReader reads the head of a delta stream from r: it checks that the
// stream is made against baseIndex (the raw index of what the device
// holds) for the index whose SHA-256 is target (from the signed
// manifest), and decodes that index and checks its digest, before it
// returns.
func NewReader(r io.Reader, baseIndex []byte, target digest.Digest) (*Reader, error) {
	bix, err := bundle.ParseChunkIndex(baseIndex)
	if err != nil {
		return nil, fmt.Errorf("base: %w", err)
	}
	br := bufio.NewReaderSize(r, 1<<16)
	hdr := make([]byte, headerSize)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return nil, fmt.Errorf("delta stream header: %w", err)
	}
	if string(hdr[:8]) != magic {
		return nil, bad("not a delta stream (want %q at byte 0)", magic)
	}
	if bsum := sha256.Sum256(baseIndex); string(hdr[8:40]) != string(bsum[:]) {
		return nil, bad("made against another base index")
	}
	if target.Algorithm() != digest.SHA256 || target.Validate() != nil || digest.NewDigestFromBytes(digest.SHA256, hdr[40:72]) != target {
		return nil, bad("made for another index than %s", target)
	}
	n, count := binary.BigEndian.Uint32(hdr[72:]), binary.BigEndian.Uint32(hdr[76:])
	if n == 0 || n > bundle.MaxAttachmentSize {
		return nil, bad("index frame of %d bytes", n)
	}
	frame := make([]byte, n)
	if _, err := io.ReadFull(br, frame); err != nil {
		return nil, fmt.Errorf("delta stream index: %w", err)
	}
	if size, ok := zstd.ContentSize(frame); !ok || size > bundle.MaxAttachmentSize {
		return nil, bad("index frame declares no size or more than %d bytes", bundle.MaxAttachmentSize)
	}
	ixDec, err := zstd.NewDictDecoder(bundle.MaxAttachmentSize, len(baseIndex))
	if err != nil {
		return nil, err
	}
	index, err := ixDec.DecodeFrame(nil, frame, baseIndex)
	if err != nil {
		return nil, bad("index frame: %v", err)
	}
	if digest.FromBytes(index) != target {
		return nil, bad("the index it holds is not %s", target)
	}
	ix, err := bundle.ParseChunkIndex(index)
	if err != nil {
		return nil, err
	}
	if int(count) > len(ix.Chunks) {
		return nil, bad("%d records for %d chunks", count, len(ix.Chunks))
	}
	plain, err := zstd.NewFrameDecoder(bundle.MaxChunkSize)
	if err != nil {
		return nil, err
	}
	dict, err := zstd.NewDictDecoder(bundle.MaxChunkSize, bundle.MaxChunkSize+2*MaxMargin)
	if err != nil {
		return nil, err
	}
	return &Reader{r: br, index: index, ix: ix, baseSize: offsets(bix)[len(bix.Chunks)], left: int(count), plain: plain, dict: dict}, nil
}

// Index returns the target's chunk index, checked against the digest
// NewReader was given.
func (r *Reader) Index() []byte { return r.index }

// Record is one chunk of the stream. Frame is valid until the next call
// of Next.
type Record struct {
	// Chunk is the chunk's number in the target index.
	Chunk int
	// DictOffset and DictLength: the base's content the frame is
	// compressed against (DictLength 0: a plain frame).
	DictOffset, DictLength int64
	Frame                  []byte
}

// Next reads the next record; io.EOF after the last. Any other error
// leaves the stream unusable from there on.
func (r *Reader) Next() (*Record, error) {
	if r.left == 0 {
		return nil, io.EOF
	}
	gap, err := binary.ReadUvarint(r.r)
	if err != nil {
		return nil, r.eof("record", err)
	}
	if gap >= uint64(len(r.ix.Chunks)-r.next) {
		return nil, bad("record names chunk %d+%d of %d", r.next, gap, len(r.ix.Chunks))
	}
	rec := &Record{Chunk: r.next + int(gap)}
	c := r.ix.Chunks[rec.Chunk]
	dl, err := binary.ReadUvarint(r.r)
	if err != nil {
		return nil, r.eof("record", err)
	}
	if dl > uint64(c.Size)+2*MaxMargin {
		return nil, bad("chunk %d: dictionary of %d bytes for %d bytes of content", rec.Chunk, dl, c.Size)
	}
	rec.DictLength = int64(dl)
	if dl > 0 {
		off, err := binary.ReadUvarint(r.r)
		if err != nil {
			return nil, r.eof("record", err)
		}
		if off > uint64(r.baseSize) || dl > uint64(r.baseSize)-off {
			return nil, bad("chunk %d: dictionary at %d+%d beyond the base's %d bytes", rec.Chunk, off, dl, r.baseSize)
		}
		rec.DictOffset = int64(off)
	}
	fl, err := binary.ReadUvarint(r.r)
	if err != nil {
		return nil, r.eof("record", err)
	}
	if fl == 0 || fl > uint64(c.Size)+maxFrameOverhead {
		return nil, bad("chunk %d: frame of %d bytes for %d bytes of content", rec.Chunk, fl, c.Size)
	}
	if cap(r.frame) < int(fl) {
		r.frame = make([]byte, fl)
	}
	rec.Frame = r.frame[:fl]
	if _, err := io.ReadFull(r.r, rec.Frame); err != nil {
		return nil, r.eof("frame", err)
	}
	r.left--
	r.next = rec.Chunk + 1
	return rec, nil
}

func (r *Reader) eof(what string, err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	r.left = 0
	return fmt.Errorf("delta stream %s: %w", what, err)
}

// Decode appends record rec's content to dst, decoded against dict (the
// DictLength bytes of the base's content at DictOffset, as the device
// holds them), and checks it against the chunk's size and ID in the
// target index. A mismatch (a base that rotted, a hostile stream) is an
// error wrapping ErrStream; the caller then fetches the chunk by its
// frame.
func (r *Reader) Decode(dst []byte, rec *Record, dict []byte) ([]byte, error) {
	c := r.ix.Chunks[rec.Chunk]
	if n, ok := zstd.ContentSize(rec.Frame); !ok || n != uint64(c.Size) {
		return nil, bad("chunk %d: the frame does not declare the chunk's %d bytes", rec.Chunk, c.Size)
	}
	var out []byte
	var err error
	if rec.DictLength == 0 {
		out, err = r.plain.DecodeFrame(dst, rec.Frame)
	} else {
		if int64(len(dict)) != rec.DictLength {
			return nil, bad("chunk %d: dictionary of %d bytes, the record says %d", rec.Chunk, len(dict), rec.DictLength)
		}
		out, err = r.dict.DecodeFrame(dst, rec.Frame, dict)
	}
	if err != nil {
		return nil, bad("chunk %d: %v", rec.Chunk, err)
	}
	if got := out[len(dst):]; len(got) != int(c.Size) || bundle.ChunkIDOf(got) != c.ID {
		return nil, bad("chunk %d: %d bytes decoded do not match the index (%d bytes, %s)", rec.Chunk, len(got), c.Size, c.ID)
	}
	return out, nil
}
