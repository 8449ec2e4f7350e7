package dstream

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/zstd"
)

// payload is chunked content in memory: chunks cut at every size bytes,
// and at the places in cuts, so that two versions can be cut apart.
type payload struct {
	content []byte
	ix      *bundle.ChunkIndex
	frames  [][]byte
}

func chunked(t testing.TB, content []byte, size int) *payload {
	enc, err := zstd.NewFrameEncoder()
	if err != nil {
		t.Fatal(err)
	}
	p := &payload{content: content, ix: &bundle.ChunkIndex{}}
	for off := 0; off < len(content); off += size {
		c := content[off:min(off+size, len(content))]
		f, err := enc.EncodeFrame(nil, c)
		if err != nil {
			t.Fatal(err)
		}
		p.frames = append(p.frames, f)
		p.ix.Chunks = append(p.ix.Chunks, bundle.Chunk{Size: uint32(len(c)), CompressedSize: uint32(len(f)), ID: bundle.ChunkIDOf(c)})
	}
	return p
}

func (p *payload) data() Payload {
	return Payload{Index: p.ix.Marshal(), Frame: func(dst []byte, i int) ([]byte, error) { return append(dst, p.frames[i]...), nil }}
}

// testPair: v1 is half random, half text; v2 changes small stretches of
// it in place, so the chunks around each change hold mostly old bytes.
func testPair(t testing.TB) (v1, v2 *payload) {
	a := make([]byte, 1<<20)
	rng := rand.NewChaCha8([32]byte{5})
	_, _ = rng.Read(a[:1<<19])
	for i := 1 << 19; i < len(a); i++ {
		a[i] = "ferry delta stream "[i%19]
	}
	b := bytes.Clone(a)
	for _, off := range []int{10_000, 300_000, 700_000, 1_000_000} {
		_, _ = rng.Read(b[off : off+500])
	}
	return chunked(t, a, 16<<10), chunked(t, b, 16<<10)
}

// apply rebuilds the target from the base's content and the stream.
func apply(t testing.TB, stream []byte, base *payload, target digest.Digest) ([]byte, *Reader, error) {
	r, err := NewReader(bytes.NewReader(stream), base.ix.Marshal(), target)
	if err != nil {
		return nil, nil, err
	}
	ix, err := bundle.ParseChunkIndex(r.Index())
	if err != nil {
		return nil, nil, err
	}
	have := map[bundle.ChunkID][]byte{}
	off := 0
	for _, c := range base.ix.Chunks {
		have[c.ID] = base.content[off : off+int(c.Size)]
		off += int(c.Size)
	}
	recs := map[int][]byte{}
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, r, err
		}
		dict := base.content[rec.DictOffset : rec.DictOffset+rec.DictLength]
		data, err := r.Decode(nil, rec, dict)
		if err != nil {
			return nil, r, err
		}
		recs[rec.Chunk] = data
		have[ix.Chunks[rec.Chunk].ID] = data
	}
	var out []byte
	for _, c := range ix.Chunks {
		data, ok := have[c.ID]
		if !ok {
			return nil, r, errors.New("chunk missing")
		}
		out = append(out, data...)
	}
	return out, r, nil
}

// TestRoundTrip: the stream rebuilds v2 from v1 and is much smaller than
// the new chunks' frames and the index.
func TestRoundTrip(t *testing.T) {
	v1, v2 := testPair(t)
	var buf bytes.Buffer
	st, err := Write(&buf, v1.data(), v2.data())
	if err != nil {
		t.Fatal(err)
	}
	if int64(buf.Len()) != st.Bytes {
		t.Errorf("stats say %d bytes, wrote %d", st.Bytes, buf.Len())
	}
	got, _, err := apply(t, buf.Bytes(), v1, digest.FromBytes(v2.ix.Marshal()))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, v2.content) {
		t.Fatal("the stream did not rebuild v2")
	}
	diff := bundle.Diff(v1.ix, v2.ix)
	frames := diff.NewCompressedBytes + int64(len(v2.ix.Marshal()))
	if st.Records != diff.NewChunks || st.Dict == 0 || st.Bytes*2 > frames {
		t.Errorf("stream %+v against %d bytes of new frames and index (%d new chunks)", st, frames, diff.NewChunks)
	}
	t.Logf("stream %d bytes (index frame %d), frames and index %d", st.Bytes, st.IndexFrame, frames)
}

// TestRefused: a stream read against another base or for another index,
// or whose records or dictionaries were changed, fails with ErrStream and
// never yields content that does not match the index.
func TestRefused(t *testing.T) {
	v1, v2 := testPair(t)
	var buf bytes.Buffer
	if _, err := Write(&buf, v1.data(), v2.data()); err != nil {
		t.Fatal(err)
	}
	stream := buf.Bytes()
	want := digest.FromBytes(v2.ix.Marshal())
	other := chunked(t, v2.content[:1<<19], 16<<10)
	flip := func(at int) []byte {
		b := bytes.Clone(stream)
		b[at] ^= 0x40
		return b
	}
	rotted := *v1
	rotted.content = bytes.Clone(v1.content)
	for i := range rotted.content {
		if i%4096 == 100 {
			rotted.content[i] ^= 1
		}
	}
	for name, tc := range map[string]struct {
		stream []byte
		base   *payload
		target digest.Digest
	}{
		"another base":        {stream, other, want},
		"another target":      {stream, v1, digest.FromBytes(v1.ix.Marshal())},
		"index frame flipped": {flip(headerSize + 20), v1, want},
		"record flipped":      {flip(len(stream) - 100), v1, want},
		"truncated":           {stream[:len(stream)-10], v1, want},
		"truncated header":    {stream[:50], v1, want},
		"count too high":      {func() []byte { b := bytes.Clone(stream); b[76] = 0x7f; return b }(), v1, want},
		"rotted base bytes":   {stream, &rotted, want},
	} {
		t.Run(name, func(t *testing.T) {
			got, _, err := apply(t, tc.stream, tc.base, tc.target)
			if err == nil {
				t.Fatalf("rebuilt %d bytes (v2: %v)", len(got), bytes.Equal(got, v2.content))
			}
			if !errors.Is(err, ErrStream) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, bundle.ErrChunkIndex) {
				t.Errorf("error %v: want ErrStream or a truncation", err)
			}
			t.Log(err)
		})
	}
}

// FuzzReader: whatever the stream, Reader never panics, bounds what it
// allocates, and Decode returns only content that matches the index.
func FuzzReader(f *testing.F) {
	v1, v2 := testPair(f)
	var buf bytes.Buffer
	if _, err := Write(&buf, v1.data(), v2.data()); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	small1 := chunked(f, v1.content[:40_000], 4096)
	small2 := chunked(f, append(bytes.Clone(v1.content[:20_000]), v2.content[10_000:30_000]...), 4096)
	buf.Reset()
	if _, err := Write(&buf, small1.data(), small2.data()); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	want := digest.FromBytes(small2.ix.Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b), small1.ix.Marshal(), want)
		if err != nil {
			return
		}
		ix, err := bundle.ParseChunkIndex(r.Index())
		if err != nil || digest.FromBytes(r.Index()) != want {
			t.Fatalf("index accepted that is not the signed one: %v", err)
		}
		for {
			rec, err := r.Next()
			if err != nil {
				return
			}
			if rec.DictOffset+rec.DictLength > int64(len(small1.content)) {
				t.Fatalf("dictionary %d+%d beyond the base", rec.DictOffset, rec.DictLength)
			}
			data, err := r.Decode([]byte("x"), rec, small1.content[rec.DictOffset:rec.DictOffset+rec.DictLength])
			if err != nil {
				continue
			}
			if c := ix.Chunks[rec.Chunk]; bundle.ChunkIDOf(data[1:]) != c.ID {
				t.Fatalf("chunk %d decoded to content that is not its own", rec.Chunk)
			}
		}
	})
}
