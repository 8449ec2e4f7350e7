package bundle

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"filippo.io/age"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/internal/zstd"
)

// chunkTestImage is size bytes of random data with a run of zeros in the
// middle, like a filesystem image with free space.
func chunkTestImage(size int, seed uint64) []byte {
	b := make([]byte, size)
	rng := rand.NewChaCha8([32]byte{byte(seed)})
	_, _ = rng.Read(b)
	clear(b[size/3 : size/2])
	return b
}

func createChunked(t *testing.T, dir, version string, content []byte, partSize int64) (*Reader, func()) {
	t.Helper()
	path := filepath.Join(dir, version+".ferry")
	_, err := Create(path, Options{
		Name: "os", Version: version, DeviceTypes: []string{"board"}, Created: time.Unix(1700000000, 0),
		ChunkAvgBits: MinChunkAvgBits, PartSize: partSize,
	}, Source{Name: "rootfs", Type: Rootfs, Content: bytes.NewReader(content)})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	return r, func() { r.Close(); f.Close() }
}

// TestChunkedPayload: a chunked payload reads back as its content through
// the ordinary reader (its frames are one zstd stream), and its index
// locates every chunk's frame in the parts, each decoding to content of
// the chunk's digest.
func TestChunkedPayload(t *testing.T) {
	dir := t.TempDir()
	content := chunkTestImage(1<<20, 1)
	r, done := createChunked(t, dir, "1.0.0", content, 64<<10)
	defer done()
	p := r.Config().Payloads[0]
	if p.Chunks == nil || p.Chunks.Index != "rootfs.chunks" || p.Chunks.Count < 10 {
		t.Fatalf("chunks = %+v", p.Chunks)
	}
	if p.Parts < 2 {
		t.Fatalf("%d parts: want the 64 KiB part size to split the payload", p.Parts)
	}
	ix, locs, err := ChunkIndexOf(r, "rootfs")
	if err != nil {
		t.Fatal(err)
	}
	zeros := 0
	for _, c := range ix.Chunks {
		if c.Size > 1<<(MinChunkAvgBits+2) {
			t.Fatalf("chunk of %d bytes above the maximum", c.Size)
		}
		if c.ID == ChunkIDOf(make([]byte, c.Size)) {
			zeros++
		}
	}
	// The zero run is merged into chunks of the maximum size (§15.2).
	if want := (len(content)/2 - len(content)/3) / (1 << (MinChunkAvgBits + 2)); zeros < want-1 || zeros > want+2 {
		t.Errorf("%d zero chunks, want about %d", zeros, want)
	}

	// The parts, fetched by range as a device does, give every chunk.
	parts := PayloadLayers(r.Config(), r.Manifest(), 0)
	var partData [][]byte
	pr, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(pr)
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("read back %d bytes (%v), want the content", len(got), err)
	}
	a, err := OpenArchive(filepath.Join(dir, "1.0.0.ferry"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for _, l := range parts {
		br, _, err := a.Blob(l.Digest)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(br)
		partData = append(partData, b)
	}
	dec, err := zstd.NewFrameDecoder(MaxChunkSize)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range ix.Chunks {
		l := locs[i]
		frame := partData[l.Part][l.PartOffset : l.PartOffset+int64(c.CompressedSize)]
		out, err := dec.DecodeFrame(nil, frame)
		if err != nil || ChunkIDOf(out) != c.ID || !bytes.Equal(out, content[l.Offset:l.Offset+int64(c.Size)]) {
			t.Fatalf("chunk %d at %+v: %d bytes, %v: not its content", i, l, len(out), err)
		}
	}
}

// TestChunkDiff: a changed region costs the chunks around it; the rest is
// shared, and so are the parts far from the change.
func TestChunkDiff(t *testing.T) {
	if PackBits(MinChunkAvgBits, 0) != 10 || PackBits(MinChunkAvgBits, 8<<30) != 12 || PackBits(14, 0) != 8 {
		t.Fatalf("PackBits: %d %d %d", PackBits(MinChunkAvgBits, 0), PackBits(MinChunkAvgBits, 8<<30), PackBits(14, 0))
	}
	dir := t.TempDir()
	v1 := chunkTestImage(2<<20, 1)
	v2 := bytes.Clone(v1)
	copy(v2[1<<20:], chunkTestImage(20000, 2))
	r1, done1 := createChunked(t, dir, "1.0.0", v1, DefaultPartSize)
	defer done1()
	r2, done2 := createChunked(t, dir, "2.0.0", v2, DefaultPartSize)
	defer done2()
	ds, err := DiffBundles(r1, r2)
	if err != nil {
		t.Fatal(err)
	}
	d := ds[0]
	if !d.Chunked || d.Bytes != int64(len(v2)) || d.NewBytes < 20000 || d.NewBytes > 20000+4*(1<<(MinChunkAvgBits+2)) {
		t.Fatalf("diff = %+v", d)
	}
	if d.SharedBytes+d.NewBytes > d.Bytes || d.SharedBytes < d.Bytes-d.NewBytes-(1<<(MinChunkAvgBits+3)) {
		t.Fatalf("shared %d + new %d of %d", d.SharedBytes, d.NewBytes, d.Bytes)
	}
	if d.SharedParts == 0 || d.SharedParts == d.Parts {
		t.Errorf("%d of %d parts shared: want the packs away from the change shared", d.SharedParts, d.Parts)
	}
	if d.Fetch != d.NewCompressedBytes+d.IndexBytes || d.Fetch >= d.Full {
		t.Errorf("fetch %d, full %d", d.Fetch, d.Full)
	}
}

func TestParseChunkIndex(t *testing.T) {
	id := ChunkIDOf([]byte("a chunk"))
	good := (&ChunkIndex{Chunks: []Chunk{{Size: 100, CompressedSize: 50, ID: id}, {Size: 70_000, CompressedSize: 16}}}).Marshal()
	if want := 16 + (1 + 1 + 12) + (3 + 1 + 12); len(good) != want {
		t.Fatalf("index of %d bytes, want %d (varint sizes, 12-byte IDs)", len(good), want)
	}
	ix, err := ParseChunkIndex(good)
	if err != nil || len(ix.Chunks) != 2 || ix.Chunks[0].ID != id || ix.Chunks[1].Size != 70_000 || ix.Chunks[1].CompressedSize != 16 {
		t.Fatalf("ParseChunkIndex(good) = %+v, %v", ix, err)
	}
	// Version 1: fixed entries with 16-byte IDs, of which the first 12
	// are used.
	v1 := chunkIndexV1(Chunk{Size: 100, CompressedSize: 50, ID: id}, Chunk{Size: 70_000, CompressedSize: 16})
	if ix1, err := ParseChunkIndex(v1); err != nil || !reflect.DeepEqual(ix1, ix) {
		t.Fatalf("ParseChunkIndex(v1) = %+v, %v; want %+v", ix1, err, ix)
	}
	edit := func(b []byte, f func(b []byte) []byte) []byte { return f(bytes.Clone(b)) }
	one := func(size, frame uint32) []byte {
		return (&ChunkIndex{Chunks: []Chunk{{Size: size, CompressedSize: frame}}}).Marshal()
	}
	header := func(n byte) []byte { return append([]byte(chunkIndexMagic), 0, 0, 0, n, 0, 0, 0, 0) }
	for name, b := range map[string][]byte{
		"empty":           nil,
		"magic":           edit(good, func(b []byte) []byte { b[0] = 'F'; return b }),
		"version 3":       edit(good, func(b []byte) []byte { b[7] = '3'; return b }),
		"reserved":        edit(good, func(b []byte) []byte { b[15] = 1; return b }),
		"count high":      edit(good, func(b []byte) []byte { b[11] = 3; return b }),
		"count low":       edit(good, func(b []byte) []byte { b[11] = 1; return b }),
		"count zero":      edit(good, func(b []byte) []byte { b[11] = 0; return b[:16] }),
		"trailing":        append(bytes.Clone(good), 0),
		"zero size":       one(0, 10),
		"huge chunk":      one(MaxChunkSize+1, 50),
		"huge frame":      one(100, 100+maxFrameOverhead+1),
		"zero frame":      one(100, 0),
		"overlong varint": append(append(header(1), 0xe4, 0x00, 0x32), id[:]...),
		"five-byte size":  append(append(header(1), 0x80, 0x80, 0x80, 0x80, 0x01, 0x32), id[:]...),
		"truncated":       good[:len(good)-1],
		"header only":     good[:16],
		"short header":    good[:10],
		"v1 truncated":    v1[:len(v1)-1],
		"v1 trailing":     append(bytes.Clone(v1), 0),
		"v1 reserved":     edit(v1, func(b []byte) []byte { b[14] = 1; return b }),
		"v1 zero frame":   edit(v1, func(b []byte) []byte { clear(b[20:24]); return b }),
	} {
		if _, err := ParseChunkIndex(b); !errors.Is(err, ErrChunkIndex) {
			t.Errorf("%s: err = %v, want ErrChunkIndex", name, err)
		}
	}
}

// chunkIndexV1 encodes chunks as a version 1 index (§15.4), with the
// last 4 bytes of each 16-byte ID set.
func chunkIndexV1(chunks ...Chunk) []byte {
	b := append([]byte(chunkIndexV1Magic), 0, 0, 0, byte(len(chunks)), 0, 0, 0, 0)
	for _, c := range chunks {
		b = binary.BigEndian.AppendUint32(b, c.Size)
		b = binary.BigEndian.AppendUint32(b, c.CompressedSize)
		b = append(append(b, c.ID[:]...), 0xf, 0xe, 0xd, 0xc)
	}
	return b
}

// TestChunkIndexLocate: the index must fill the parts exactly, frame by
// frame, and add up to the payload.
func TestChunkIndexLocate(t *testing.T) {
	ix := &ChunkIndex{Chunks: []Chunk{{Size: 100, CompressedSize: 50}, {Size: 100, CompressedSize: 30}, {Size: 10, CompressedSize: 20}}}
	p := &Payload{Size: 210, CompressedSize: 100, Parts: 2, Chunks: &Chunks{Count: 3}}
	for _, tc := range []struct {
		name  string
		sizes []int64
		size  int64
		ok    bool
	}{
		{"packs", []int64{80, 20}, 210, true},
		{"frame crosses parts", []int64{60, 40}, 210, false},
		{"parts too long", []int64{80, 30}, 210, false},
		{"parts too short", []int64{80, 10}, 210, false},
		{"content size", []int64{80, 20}, 211, false},
	} {
		p.Size = tc.size
		parts := layersOfSizes(tc.sizes)
		locs, err := ix.Locate(p, parts)
		if tc.ok != (err == nil) {
			t.Errorf("%s: err = %v", tc.name, err)
			continue
		}
		if tc.ok && (locs[2] != ChunkLoc{Offset: 200, Part: 1, PartOffset: 0}) {
			t.Errorf("%s: chunk 2 at %+v", tc.name, locs[2])
		}
	}
}

func layersOfSizes(sizes []int64) []ocispec.Descriptor {
	var ls []ocispec.Descriptor
	for _, n := range sizes {
		ls = append(ls, ocispec.Descriptor{Size: n})
	}
	return ls
}

func FuzzParseChunkIndex(f *testing.F) {
	f.Add((&ChunkIndex{Chunks: []Chunk{{Size: 100, CompressedSize: 50}, {Size: 70_000, CompressedSize: 900}}}).Marshal())
	f.Add([]byte(chunkIndexMagic + "\x00\x00\x00\x02\x00\x00\x00\x00"))
	f.Add(chunkIndexV1(Chunk{Size: 100, CompressedSize: 50}, Chunk{Size: 7, CompressedSize: 16}))
	f.Fuzz(func(t *testing.T, b []byte) {
		ix, err := ParseChunkIndex(b)
		if err != nil {
			if !errors.Is(err, ErrChunkIndex) {
				t.Fatalf("error %v does not wrap ErrChunkIndex", err)
			}
			return
		}
		if string(b[:8]) == chunkIndexV1Magic {
			// A version 1 index reads as its version 2 encoding does.
			if ix2, err := ParseChunkIndex(ix.Marshal()); err != nil || !reflect.DeepEqual(ix2, ix) {
				t.Fatalf("version 1 index re-encoded reads differently: %+v, %v", ix2, err)
			}
		} else if !bytes.Equal(ix.Marshal(), b) {
			t.Fatal("parse and marshal differ: the index reads two ways")
		}
		var size, csize int64
		for _, c := range ix.Chunks {
			size += int64(c.Size)
			csize += int64(c.CompressedSize)
		}
		p := &Payload{Size: size, CompressedSize: csize, Parts: 1, Chunks: &Chunks{Count: len(ix.Chunks)}}
		if _, err := ix.Locate(p, layersOfSizes([]int64{csize})); err != nil {
			t.Fatalf("a consistent index fails Locate: %v", err)
		}
	})
}

// TestChunkedNotEncrypted: chunks and encryption exclude each other, at
// creation and in a config.
func TestChunkedNotEncrypted(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	_, err = Create(filepath.Join(t.TempDir(), "b.ferry"), Options{
		Name: "os", Version: "1.0.0", DeviceTypes: []string{"board"}, ChunkAvgBits: DefaultChunkAvgBits, EncryptTo: []age.Recipient{id.Recipient()},
	}, Source{Name: "rootfs", Type: Rootfs, Content: bytes.NewReader(make([]byte, 1000))})
	if !errors.Is(err, errChunkedEncrypted) {
		t.Errorf("Create: %v, want errChunkedEncrypted", err)
	}
	p := &Payload{Type: Rootfs, Size: 100, Encryption: "age"}
	c := &Chunks{Index: "rootfs.chunks", Chunker: ChunkerRabin, AvgBits: 12, MinSize: 256, MaxSize: 16384, Count: 1}
	if err := c.validate(p, nil); !errors.Is(err, errChunkedEncrypted) {
		t.Errorf("validate: %v, want errChunkedEncrypted", err)
	}
}
