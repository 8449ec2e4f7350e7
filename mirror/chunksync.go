package mirror

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/verifyio"
)

// Chunk-level sync (bundle/FORMAT.md §15.8). A part of a chunked payload
// is a run of zstd frames, one per chunk, and the signed chunk index
// says which chunk each frame holds and how long it is. When the store
// lacks a part, Sync rebuilds it: frames of chunks the store already
// holds in a part of another version of the same bundle (same chunk ID,
// same frame length) are copied from there, the others are fetched by
// range from the source, runs of adjacent ones in one request. The
// rebuilt part must match its signed digest like any blob; if it does not
// (a writer compressed the same chunk differently), the part is fetched
// whole. So parts stay byte-identical to the signed ones, and a sync
// moves about the chunks that are new rather than every part that holds
// one.

// rangeFunc opens n bytes of blob d of the source from byte off.
type rangeFunc func(d ocispec.Descriptor, off, n int64) (io.ReadCloser, error)

// heldFrame is where the store holds a chunk's frame.
type heldFrame struct {
	blob digest.Digest
	off  int64
	size uint32
}

// frameSpan is one frame of a part to rebuild: at off in the part, held
// by the store (held.blob set) or to be fetched.
type frameSpan struct {
	off, size int64
	held      heldFrame
}

// partPlans returns, for each part of a chunked payload of the bundle
// (cfg, m) that holds a frame the store has, the frames that make it.
// Indexes that cannot be read are left out: those parts are fetched
// whole.
func (s *Store) partPlans(cfg *bundle.Config, m *ocispec.Manifest, idx *ocispec.Index) map[digest.Digest][]frameSpan {
	var held map[bundle.ChunkID]heldFrame
	plans := map[digest.Digest][]frameSpan{}
	for i := range cfg.Payloads {
		ix, locs, parts := s.chunkIndex(cfg, m, i)
		if ix == nil {
			continue
		}
		if held == nil {
			held = s.heldFrames(cfg.Name, idx)
		}
		for j, c := range ix.Chunks {
			part := parts[locs[j].Part]
			f := frameSpan{off: locs[j].PartOffset, size: int64(c.CompressedSize)}
			if h, ok := held[c.ID]; ok && h.size == c.CompressedSize {
				f.held = h
			}
			plans[part.Digest] = append(plans[part.Digest], f)
		}
	}
	for d, fs := range plans {
		reuse := false
		for _, f := range fs {
			reuse = reuse || f.held.blob != ""
		}
		if !reuse {
			delete(plans, d)
		}
	}
	return plans
}

// chunkIndex reads the chunk index of payload i of a bundle whose
// attachments the store holds, located against its parts; nil when the
// payload is not chunked or the index is not usable.
func (s *Store) chunkIndex(cfg *bundle.Config, m *ocispec.Manifest, i int) (*bundle.ChunkIndex, []bundle.ChunkLoc, []ocispec.Descriptor) {
	c := s.chunked(cfg, m, i)
	if c == nil {
		return nil, nil, nil
	}
	return c.ix, c.locs, c.parts
}

// chunkedPayload is a chunked payload of a stored bundle: its index (raw
// and parsed, from layer layer) located against its parts.
type chunkedPayload struct {
	layer ocispec.Descriptor
	raw   []byte
	ix    *bundle.ChunkIndex
	locs  []bundle.ChunkLoc
	parts []ocispec.Descriptor
}

// chunked reads payload i's chunk index as chunkIndex does.
func (s *Store) chunked(cfg *bundle.Config, m *ocispec.Manifest, i int) *chunkedPayload {
	l, ok := chunkIndexLayer(cfg, m, i)
	if !ok {
		return nil
	}
	raw, err := s.readBlob(l.Digest, bundle.MaxAttachmentSize)
	if err != nil {
		return nil
	}
	ix, err := bundle.ParseChunkIndex(raw)
	if err != nil {
		return nil
	}
	p := cfg.Payloads[i]
	parts := bundle.PayloadLayers(cfg, *m, i)
	locs, err := ix.Locate(&p, parts)
	if err != nil {
		return nil
	}
	return &chunkedPayload{layer: l, raw: raw, ix: ix, locs: locs, parts: parts}
}

// chunkIndexLayer returns the layer of chunked payload i's index, false
// when the payload is not chunked or the manifest does not fit the
// config.
func chunkIndexLayer(cfg *bundle.Config, m *ocispec.Manifest, i int) (ocispec.Descriptor, bool) {
	p := cfg.Payloads[i]
	n := len(cfg.Attachments)
	for _, q := range cfg.Payloads {
		n += q.Parts
	}
	if p.Chunks == nil || len(m.Layers) != n {
		return ocispec.Descriptor{}, false
	}
	for k, a := range cfg.Attachments {
		if a.Name == p.Chunks.Index {
			return m.Layers[k], true
		}
	}
	return ocispec.Descriptor{}, false
}

// heldFrames maps the chunks the store holds in parts of the bundles
// named name to where their frames are.
func (s *Store) heldFrames(name string, idx *ocispec.Index) map[bundle.ChunkID]heldFrame {
	held := map[bundle.ChunkID]heldFrame{}
	s.eachBundle(idx, func(b storedBundle) error {
		if b.config.Name != name {
			return nil
		}
		for i := range b.config.Payloads {
			ix, locs, parts := s.chunkIndex(b.config, b.manifest, i)
			if ix == nil {
				continue
			}
			for j, c := range ix.Chunks {
				part := parts[locs[j].Part]
				if _, ok := held[c.ID]; !ok && s.hasBlob(part.Digest, part.Size) {
					held[c.ID] = heldFrame{blob: part.Digest, off: locs[j].PartOffset, size: c.CompressedSize}
				}
			}
		}
		return nil
	})
	return held
}

// rebuildPart writes part l from the frames the store holds and those
// fetched by rng, as writeBlob writes any blob (resumed, checked against
// its digest). It adds the bytes fetched and reused to res. A part that
// does not match its digest once rebuilt is an error wrapping
// verifyio.DigestError; the caller then fetches it whole.
func (s *Store) rebuildPart(l ocispec.Descriptor, frames []frameSpan, rng rangeFunc, res *AddResult) error {
	var n AddResult // what this part moved, reused only if it matches
	err := s.writeBlob(l, func(off int64) (io.ReadCloser, error) {
		return &partReader{s: s, part: l, frames: frames, at: off, rng: rng, res: &n}, nil
	})
	res.BytesFetched += n.BytesFetched
	if err == nil {
		res.BytesReused += n.BytesReused
	}
	return err
}

// partReader yields a part from byte at: held frames read from the
// store's blobs, runs of the others fetched in one range each.
type partReader struct {
	s      *Store
	part   ocispec.Descriptor
	frames []frameSpan
	at     int64 // next byte of the part
	rng    rangeFunc
	res    *AddResult

	cur    io.ReadCloser
	curEnd int64 // the part offset cur ends at
}

func (r *partReader) Read(b []byte) (int, error) {
	for r.cur == nil || r.at == r.curEnd {
		if r.cur != nil {
			r.cur.Close()
			r.cur = nil
		}
		if r.at >= r.part.Size {
			return 0, io.EOF
		}
		if err := r.open(); err != nil {
			return 0, err
		}
	}
	n, err := r.cur.Read(b[:min(int64(len(b)), r.curEnd-r.at)])
	r.at += int64(n)
	if err == io.EOF {
		if r.at < r.curEnd {
			err = io.ErrUnexpectedEOF
		} else {
			err = nil
		}
	}
	return n, err
}

// open opens the source of the frames from r.at: one held frame, or the
// run of frames to fetch that starts there.
func (r *partReader) open() error {
	i := 0
	for i < len(r.frames) && r.frames[i].off+r.frames[i].size <= r.at {
		i++
	}
	if i == len(r.frames) {
		return fmt.Errorf("part %s: no frame at byte %d", r.part.Digest, r.at)
	}
	f := r.frames[i]
	skip := r.at - f.off
	if f.held.blob != "" {
		fl, err := os.Open(r.s.blobPath(f.held.blob))
		if err != nil {
			return err
		}
		if _, err := fl.Seek(f.held.off+skip, io.SeekStart); err != nil {
			fl.Close()
			return err
		}
		r.cur, r.curEnd = readCloser{io.LimitReader(fl, f.size-skip), fl}, f.off+f.size
		r.res.BytesReused += f.size - skip
		return nil
	}
	end := f.off + f.size
	for j := i + 1; j < len(r.frames) && r.frames[j].held.blob == ""; j++ {
		end = r.frames[j].off + r.frames[j].size
	}
	rc, err := r.rng(r.part, r.at, end-r.at)
	if err != nil {
		return err
	}
	r.cur, r.curEnd = countingCloser{rc, &r.res.BytesFetched}, end
	return nil
}

func (r *partReader) Close() error {
	if r.cur != nil {
		return r.cur.Close()
	}
	return nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// countingCloser adds the bytes read to *n.
type countingCloser struct {
	io.ReadCloser
	n *int64
}

func (c countingCloser) Read(b []byte) (int, error) {
	k, err := c.ReadCloser.Read(b)
	*c.n += int64(k)
	return k, err
}

// isDigestError says whether err is a blob that did not match its digest.
func isDigestError(err error) bool {
	var de *verifyio.DigestError
	return errors.As(err, &de)
}
