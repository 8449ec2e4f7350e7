package bundle

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Chunked payloads (FORMAT.md §15): a rootfs payload whose content is cut
// into content-defined chunks, each compressed as its own zstd frame, with
// a signed index of the chunks carried as an attachment. A device that
// holds the content of an earlier version fetches only the chunks it
// lacks, by byte range, from the payload's parts.
const (
	// ChunkIndexMediaType is the media type of a chunk index attachment
	// (§15.4, version 2: varint sizes, 12-byte IDs), the one writers
	// write.
	ChunkIndexMediaType = "application/vnd.ferry.chunk-index.v2"
	// ChunkIndexV1MediaType is version 1 of the chunk index (fixed
	// 24-byte entries with 16-byte IDs), which readers still read.
	ChunkIndexV1MediaType = "application/vnd.ferry.chunk-index.v1"
	// ChunkerRabin names the chunker of §15.2: restic's Rabin
	// fingerprint chunker with the polynomial ChunkPolynomial.
	ChunkerRabin = "rabin"
	// ChunkPolynomial is the irreducible polynomial of the chunker, fixed
	// so that equal content cuts into equal chunks in every bundle.
	ChunkPolynomial = 0x3DA3358B4DC173
	// DefaultChunkAvgBits makes chunks of about 16 KiB: on the bench's
	// in-place pair (scripts/bench-delta.sh, FORMAT.md §15.6) it fetched
	// 5 % less than 64 KiB chunks, and 8 KiB ones (measured again with
	// minimums of 512 and 256 bytes) saved in unchanged content about
	// what their larger index cost.
	DefaultChunkAvgBits = 14
	// MinChunkAvgBits and MaxChunkAvgBits bound avgBits (4 KiB to 4 MiB).
	MinChunkAvgBits = 12
	MaxChunkAvgBits = 22
	// MaxChunkSize bounds a chunk's content: what a device holds in
	// memory per chunk.
	MaxChunkSize = 16 << 20
	// PackContentBits: a part of a chunked payload holds about
	// 2^PackContentBits bytes of content (§15.3), at most MaxPacks parts
	// when the writer knows the content's size.
	PackContentBits = 22
	MaxPacks        = 512
	// chunkIndexMagic opens every chunk index of version 2,
	// chunkIndexV1Magic every one of version 1.
	chunkIndexMagic   = "ferrycx2"
	chunkIndexV1Magic = "ferrycx1"
	chunkIndexHeader  = 16
	// A version 2 entry takes chunkEntryMin to chunkEntryMax bytes (two
	// varints of 1 to 4 bytes and the ID), a version 1 entry
	// chunkEntryV1.
	chunkEntryMin = 2*1 + ChunkIDSize
	chunkEntryMax = 2*4 + ChunkIDSize
	chunkEntryV1  = 24
	// maxFrameOverhead bounds a chunk's frame beyond its content: zstd's
	// worst case is a few bytes per 128 KiB block plus the frame header.
	maxFrameOverhead = 1 << 10
)

// Chunks describes a payload's chunking in the config (FORMAT.md §15.1).
type Chunks struct {
	// Index names the attachment holding the chunk index.
	Index string `json:"index"`
	// Chunker, MinSize, AvgBits and MaxSize say how the content was cut
	// (ChunkerRabin, §15.2). Devices do not re-cut anything; the values
	// let a writer cut the next version the same way.
	Chunker string `json:"chunker"`
	MinSize int    `json:"minSize"`
	AvgBits int    `json:"avgBits"`
	MaxSize int    `json:"maxSize"`
	// Count is the number of chunks.
	Count int `json:"count"`
}

// ChunkParams returns the chunker bounds for avgBits: a minimum of 1/16
// and a maximum of 4 times 2^avgBits. A small minimum lets the cut points
// after a change fall back in step with the old ones sooner: on the
// bench's in-place pair, minimums of 1/16, 1/8 and 1/4 of 16 KiB left
// 7.1, 10.1 and 15.5 MiB of unchanged content in the new chunks.
func ChunkParams(avgBits int) (minSize, maxSize int, err error) {
	if avgBits < MinChunkAvgBits || avgBits > MaxChunkAvgBits {
		return 0, 0, fmt.Errorf("chunk size 2^%d: want 2^%d to 2^%d bytes", avgBits, MinChunkAvgBits, MaxChunkAvgBits)
	}
	return 1 << (avgBits - 4), 1 << (avgBits + 2), nil
}

// errChunkedEncrypted refuses chunks on an encrypted payload.
var errChunkedEncrypted = errors.New("an encrypted payload cannot be chunked: a device cannot read a chunk of ciphertext by range")

func (c *Chunks) validate(p *Payload, atts []Attachment) error {
	if p.Type != Rootfs {
		return fmt.Errorf("chunks: only rootfs payloads are chunked, not %s", p.Type)
	}
	if p.Encryption != "" {
		return fmt.Errorf("chunks: %w", errChunkedEncrypted)
	}
	if c.Chunker != ChunkerRabin {
		return fmt.Errorf("chunks: chunker %q: want %q", c.Chunker, ChunkerRabin)
	}
	min, max, err := ChunkParams(c.AvgBits)
	if err != nil {
		return fmt.Errorf("chunks: %w", err)
	}
	if c.MinSize != min || c.MaxSize != max {
		return fmt.Errorf("chunks: sizes %d to %d: want %d to %d for avgBits %d", c.MinSize, c.MaxSize, min, max, c.AvgBits)
	}
	if c.Count < 1 || int64(c.Count) > p.Size {
		return fmt.Errorf("chunks: count %d for %d bytes of content", c.Count, p.Size)
	}
	for _, a := range atts {
		if a.Name != c.Index {
			continue
		}
		if !IsChunkIndex(a.MediaType) {
			return fmt.Errorf("chunks: attachment %s is a %s, not a chunk index", a.Name, a.MediaType)
		}
		if lo, hi := chunkIndexSizes(a.MediaType, int64(c.Count)); a.Size < lo || a.Size > hi {
			return fmt.Errorf("chunks: index %s of %d bytes: %d chunks take %d to %d", a.Name, a.Size, c.Count, lo, hi)
		}
		return nil
	}
	return fmt.Errorf("chunks: index %q is not an attachment of the bundle", c.Index)
}

// IsChunkIndex says whether mediaType is a chunk index's, of either
// version.
func IsChunkIndex(mediaType string) bool {
	return mediaType == ChunkIndexMediaType || mediaType == ChunkIndexV1MediaType
}

// chunkIndexSizes bounds the size of an index of n chunks.
func chunkIndexSizes(mediaType string, n int64) (lo, hi int64) {
	if mediaType == ChunkIndexV1MediaType {
		lo = chunkIndexHeader + chunkEntryV1*n
		return lo, lo
	}
	return chunkIndexHeader + chunkEntryMin*n, chunkIndexHeader + chunkEntryMax*n
}

// ChunkIndexName is the attachment name of payload's chunk index.
func ChunkIndexName(payload string) string { return payload + ".chunks" }

// ChunkIDSize is the length of a chunk ID.
const ChunkIDSize = 12

// ChunkID identifies a chunk's content: the first 12 bytes of its SHA-256
// (§15.4; a version 1 index holds 16, of which readers use the first 12).
type ChunkID [ChunkIDSize]byte

// ChunkIDOf returns the ID of content b.
func ChunkIDOf(b []byte) ChunkID {
	sum := sha256.Sum256(b)
	return ChunkID(sum[:ChunkIDSize])
}

// String is the ID in hex, for messages.
func (id ChunkID) String() string { return hex.EncodeToString(id[:]) }

// Chunk is one entry of a chunk index.
type Chunk struct {
	// Size is the content's length, CompressedSize its frame's.
	Size, CompressedSize uint32
	// ID identifies the content.
	ID ChunkID
}

// ChunkIndex lists a chunked payload's chunks in content order.
type ChunkIndex struct {
	Chunks []Chunk
}

// ErrChunkIndex is wrapped by every error about a malformed chunk index
// or one that does not fit its payload.
var ErrChunkIndex = errors.New("bad chunk index")

// ParseChunkIndex decodes a chunk index (FORMAT.md §15.4) of either
// version. It checks the encoding and each entry's bounds; Locate checks
// it against a payload.
func ParseChunkIndex(b []byte) (*ChunkIndex, error) {
	bad := func(format string, args ...any) (*ChunkIndex, error) {
		return nil, fmt.Errorf("%w: %s", ErrChunkIndex, fmt.Sprintf(format, args...))
	}
	if len(b) < chunkIndexHeader || (string(b[:8]) != chunkIndexMagic && string(b[:8]) != chunkIndexV1Magic) {
		return bad("not a chunk index (want %q at byte 0)", chunkIndexMagic)
	}
	v1 := string(b[:8]) == chunkIndexV1Magic
	n := binary.BigEndian.Uint32(b[8:])
	if r := binary.BigEndian.Uint32(b[12:]); r != 0 {
		return bad("reserved field is %d, want 0", r)
	}
	mt := ChunkIndexMediaType
	if v1 {
		mt = ChunkIndexV1MediaType
	}
	if lo, hi := chunkIndexSizes(mt, int64(n)); n == 0 || int64(len(b)) < lo || int64(len(b)) > hi {
		return bad("%d bytes for %d chunks (want %d to %d)", len(b), n, lo, hi)
	}
	ix := &ChunkIndex{Chunks: make([]Chunk, n)}
	e := b[chunkIndexHeader:]
	for i := range ix.Chunks {
		c := &ix.Chunks[i]
		if v1 {
			c.Size = binary.BigEndian.Uint32(e)
			c.CompressedSize = binary.BigEndian.Uint32(e[4:])
			copy(c.ID[:], e[8:8+ChunkIDSize])
			e = e[chunkEntryV1:]
		} else {
			var ok bool
			if c.Size, e, ok = chunkVarint(e); !ok {
				return bad("chunk %d: bad size", i)
			}
			if c.CompressedSize, e, ok = chunkVarint(e); !ok || len(e) < ChunkIDSize {
				return bad("chunk %d: bad frame size or truncated", i)
			}
			e = e[copy(c.ID[:], e):]
		}
		if c.Size == 0 || c.Size > MaxChunkSize {
			return bad("chunk %d: size %d: want 1 to %d", i, c.Size, MaxChunkSize)
		}
		if c.CompressedSize == 0 || c.CompressedSize > c.Size+maxFrameOverhead {
			return bad("chunk %d: frame of %d bytes for %d bytes of content", i, c.CompressedSize, c.Size)
		}
	}
	if len(e) != 0 {
		return bad("%d bytes after chunk %d", len(e), n-1)
	}
	return ix, nil
}

// chunkVarint reads one size of a version 2 entry: an unsigned LEB128
// varint (encoding/binary's Uvarint) in its shortest form, 1 to 4 bytes.
func chunkVarint(b []byte) (uint32, []byte, bool) {
	v, n := binary.Uvarint(b)
	if n < 1 || n > 4 || n != len(binary.AppendUvarint(nil, v)) {
		return 0, nil, false
	}
	return uint32(v), b[n:], true
}

// Marshal encodes the index (FORMAT.md §15.4, version 2).
func (ix *ChunkIndex) Marshal() []byte {
	b := make([]byte, chunkIndexHeader, chunkIndexHeader+chunkEntryMax*len(ix.Chunks))
	copy(b, chunkIndexMagic)
	binary.BigEndian.PutUint32(b[8:], uint32(len(ix.Chunks)))
	for _, c := range ix.Chunks {
		b = binary.AppendUvarint(b, uint64(c.Size))
		b = binary.AppendUvarint(b, uint64(c.CompressedSize))
		b = append(b, c.ID[:]...)
	}
	return b
}

// ChunkLoc says where a chunk is: its content at Offset of the payload,
// its frame at PartOffset of the payload's part Part.
type ChunkLoc struct {
	Offset     int64
	Part       int
	PartOffset int64
}

// Locate checks the index against its payload and the payload's part
// layers (in order) and returns where each chunk is: the sizes must add
// up to the payload's size and compressed size, and every part must
// begin and end at a frame boundary (§15.3).
func (ix *ChunkIndex) Locate(p *Payload, parts []ocispec.Descriptor) ([]ChunkLoc, error) {
	if p.Chunks == nil || len(ix.Chunks) != p.Chunks.Count {
		return nil, fmt.Errorf("%w: %d chunks, the config says %v", ErrChunkIndex, len(ix.Chunks), p.Chunks)
	}
	if len(parts) != p.Parts {
		return nil, fmt.Errorf("%w: %d part layers, the config says %d", ErrChunkIndex, len(parts), p.Parts)
	}
	locs := make([]ChunkLoc, len(ix.Chunks))
	var off, poff int64
	part := 0
	for i, c := range ix.Chunks {
		for part < len(parts) && poff == parts[part].Size {
			part, poff = part+1, 0
		}
		if part == len(parts) {
			return nil, fmt.Errorf("%w: chunk %d lies beyond the last part", ErrChunkIndex, i)
		}
		locs[i] = ChunkLoc{Offset: off, Part: part, PartOffset: poff}
		off += int64(c.Size)
		poff += int64(c.CompressedSize)
		if poff > parts[part].Size {
			return nil, fmt.Errorf("%w: chunk %d's frame crosses the end of part %d", ErrChunkIndex, i, part)
		}
	}
	if off != p.Size {
		return nil, fmt.Errorf("%w: chunks hold %d bytes, the payload %d", ErrChunkIndex, off, p.Size)
	}
	if part != len(parts)-1 || poff != parts[part].Size {
		return nil, fmt.Errorf("%w: the frames do not fill the parts exactly", ErrChunkIndex)
	}
	return locs, nil
}

// PackBits is how a writer cuts a chunked payload into parts (§15.3): a
// part ends after a chunk whose digest's first four bytes, big-endian,
// are a multiple of 2^PackBits, so parts hold about 2^PackContentBits
// bytes of content, or fewer and larger parts when size (the content's,
// 0 if unknown) would make more than MaxPacks.
func PackBits(avgBits int, size int64) int {
	bits := max(PackContentBits-avgBits, 0)
	for size>>(avgBits+bits) > MaxPacks && bits < 31 {
		bits++
	}
	return bits
}

// endsPack says whether the chunk with digest d ends its part.
func endsPack(d ChunkID, packBits int) bool {
	return binary.BigEndian.Uint32(d[:4])&(1<<packBits-1) == 0
}

// ChunkDiff says what a device holding the content of old lacks of new.
type ChunkDiff struct {
	// Chunks and Bytes: all of new's chunks and their content.
	Chunks int   `json:"chunks"`
	Bytes  int64 `json:"bytes"`
	// Shared: chunks of new that old holds too (by digest), and their
	// content.
	SharedChunks int   `json:"sharedChunks"`
	SharedBytes  int64 `json:"sharedBytes"`
	// New: the distinct chunks of new that old lacks, their content and
	// their frames, which a device fetches.
	NewChunks          int   `json:"newChunks"`
	NewBytes           int64 `json:"newBytes"`
	NewCompressedBytes int64 `json:"newCompressedBytes"`
}

// Diff compares new with old: which chunks of new a device holding old
// can reuse and which it must fetch (each distinct one once).
func Diff(old, new *ChunkIndex) ChunkDiff {
	have := make(map[ChunkID]bool, len(old.Chunks))
	for _, c := range old.Chunks {
		have[c.ID] = true
	}
	var d ChunkDiff
	fetched := map[ChunkID]bool{}
	for _, c := range new.Chunks {
		d.Chunks++
		d.Bytes += int64(c.Size)
		switch {
		case have[c.ID]:
			d.SharedChunks++
			d.SharedBytes += int64(c.Size)
		case !fetched[c.ID]:
			fetched[c.ID] = true
			d.NewChunks++
			d.NewBytes += int64(c.Size)
			d.NewCompressedBytes += int64(c.CompressedSize)
		}
	}
	return d
}
