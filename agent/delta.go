package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/bundle/dstream"
	"github.com/ferry-update/ferry/internal/atomicfile"
	"github.com/ferry-update/ferry/internal/verifyio"
	"github.com/ferry-update/ferry/internal/zstd"
	"github.com/ferry-update/ferry/transport"
)

// Delta installs (bundle/FORMAT.md §15.5). The agent keeps the chunk
// index of every chunked rootfs payload it wrote, per target and slot, in
// STATE_DIR/chunks/TARGET.SLOT.idx: removed before the slot is written,
// written (durably) once the slot holds the payload's verified content.
// When a bundle's rootfs payload is chunked and the booted slot's index
// is kept, the agent builds the new content from the booted slot's
// chunks, each re-hashed before use, and fetches the others by range.

// chunksDir holds the kept chunk indexes.
const chunksDir = "chunks"

// minSharedFraction: a delta that would reuse less than this fraction of
// the content is installed whole instead (one stream beats many ranges).
const minSharedFraction = 0.1

func (a *Agent) chunksPath(target, slot string) string {
	return filepath.Join(a.path(chunksDir), fmt.Sprintf("%s.%s.idx", filepath.Base(target), slot))
}

// forgetChunks removes the kept index of a slot about to be written.
func (a *Agent) forgetChunks(target, slot string) error {
	p := a.chunksPath(target, slot)
	err := os.Remove(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil {
		err = atomicfile.SyncDir(filepath.Dir(p))
	}
	if err != nil {
		return fmt.Errorf("forget chunk index: %w", err)
	}
	return nil
}

// keepChunks records the index of what a slot now holds.
func (a *Agent) keepChunks(target, slot string, index []byte) error {
	if err := os.MkdirAll(a.path(chunksDir), 0o700); err != nil {
		return fmt.Errorf("keep chunk index: %w", err)
	}
	if err := atomicfile.WriteFile(a.chunksPath(target, slot), index, 0o600); err != nil {
		return fmt.Errorf("keep chunk index: %w", err)
	}
	return nil
}

// chunkIndexData returns the raw chunk index of payload p from the
// bundle's attachments, or nil when p is not chunked.
func chunkIndexData(br *bundle.Reader, p bundle.Payload) []byte {
	if p.Chunks == nil {
		return nil
	}
	for _, at := range br.Attachments() {
		if at.Name == p.Chunks.Index && bundle.IsChunkIndex(at.MediaType) {
			return at.Data
		}
	}
	return nil
}

// Delta says which payloads an install assembles from chunks and where
// their chunks come from. InstallFrom makes it.
type Delta struct {
	blobs *transport.Blobs
	bases map[string]*deltaBase // by payload name
}

// deltaBase is the booted slot a payload's chunks are reused from.
type deltaBase struct {
	slot, device string
	at           map[bundle.ChunkID]int64 // chunk ID → offset in the slot
	shared       bundle.ChunkDiff
	// need are the payload's parts that hold the chunks the slot lacks.
	need []ocispec.Descriptor
	// stream, when the source is a ferry mirror that made one, is the
	// delta stream from the slot's index to the payload's (§15.9).
	stream *deltaStream
}

// deltaStream is an open delta stream and the bytes read of it.
type deltaStream struct {
	r    *dstream.Reader
	body io.ReadCloser
	read int64
}

func (s *deltaStream) Read(b []byte) (int, error) {
	n, err := s.body.Read(b)
	s.read += int64(n)
	return n, err
}

// close closes the delta streams of d's bases.
func (d *Delta) close() {
	if d == nil {
		return
	}
	for _, b := range d.bases {
		if b.stream != nil {
			b.stream.body.Close()
		}
	}
}

// omitted names the payloads whose parts the stream leaves out.
func (d *Delta) omitted() map[string]bool {
	if d == nil {
		return nil
	}
	m := map[string]bool{}
	for name := range d.bases {
		m[name] = true
	}
	return m
}

// InstallFrom installs the one bundle at where (OpenSource's places): from
// a registry, a ferry mirror or a stick, each chunked rootfs payload whose
// booted slot's chunk index is kept is assembled from that slot's chunks
// and the chunks fetched by range (a delta install); everything else, and
// every other place, is read as one stream, as Install does. Why a
// payload is installed whole is logged.
func (a *Agent) InstallFrom(ctx context.Context, where string, stdin io.Reader, o InstallOptions) (*Result, error) {
	return a.installFrom(ctx, where, a.transportOptions(stdin), o)
}

func (a *Agent) installFrom(ctx context.Context, where string, topts transport.Options, o InstallOptions) (*Result, error) {
	var stream io.ReadCloser
	blobs, err := transport.OpenBlobs(ctx, where, topts)
	switch {
	case errors.Is(err, transport.ErrNoBlobs):
		if stream, err = transport.OpenBundle(ctx, where, topts); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	default:
		defer blobs.Close()
		return a.installBlobs(ctx, blobs, where, o)
	}
	defer stream.Close()
	return a.InstallWith(ctx, o.wrap(stream), where, o)
}

// installBlobs installs the bundle blobs reads, as a delta where
// planDelta finds a base.
func (a *Agent) installBlobs(ctx context.Context, blobs *transport.Blobs, origin string, o InstallOptions) (*Result, error) {
	return a.installPlanned(ctx, blobs, a.planDelta(ctx, blobs), origin, o)
}

// installPlanned installs the bundle blobs reads with the delta plan d.
func (a *Agent) installPlanned(ctx context.Context, blobs *transport.Blobs, d *Delta, origin string, o InstallOptions) (*Result, error) {
	o.Delta = d
	defer d.close()
	stream := blobs.Stream(ctx, o.Delta.omitted())
	defer stream.Close()
	return a.InstallWith(ctx, o.wrap(stream), origin, o)
}

func (o InstallOptions) wrap(r io.Reader) io.Reader {
	if o.Stream != nil {
		return o.Stream(r)
	}
	return r
}

// planDelta decides, from the bundle's unjudged head, which payloads to
// assemble from chunks. Nothing here is trusted yet: the head's
// signatures are judged before a byte is written, the chunk index then
// comes from the judged head, and every chunk is checked against it.
func (a *Agent) planDelta(ctx context.Context, blobs *transport.Blobs) *Delta {
	cfg, err := bundle.ParseConfig(blobs.Head.Config)
	if err != nil {
		return nil // the install refuses it
	}
	d := &Delta{blobs: blobs, bases: map[string]*deltaBase{}}
	for i, p := range cfg.Payloads {
		if p.Type != bundle.Rootfs || p.Chunks == nil {
			continue
		}
		base, why := a.deltaBase(ctx, blobs, cfg, i)
		if base == nil {
			a.logf("payload %s: %s: installing it whole", p.Name, why)
			continue
		}
		a.logf("payload %s: delta from slot %s: %d of %d chunks (%.1f %%) reused, %d chunks to fetch (%d bytes)",
			p.Name, base.slot, base.shared.SharedChunks, base.shared.Chunks, 100*float64(base.shared.SharedBytes)/float64(max(base.shared.Bytes, 1)),
			base.shared.NewChunks, base.shared.NewCompressedBytes)
		d.bases[p.Name] = base
	}
	return d
}

// deltaBase finds the booted slot's kept index for payload i and checks
// that a delta is worth it; otherwise it says why not.
func (a *Agent) deltaBase(ctx context.Context, blobs *transport.Blobs, cfg *bundle.Config, i int) (*deltaBase, string) {
	p := cfg.Payloads[i]
	slot, ok := a.cfg.Slots[p.Target]
	if !ok || !slot.isPair() {
		return nil, "no A/B target " + p.Target
	}
	st, err := a.boot.State()
	if err != nil {
		return nil, fmt.Sprintf("boot state: %v", err)
	}
	booted, _, err := a.bootedSlot(st)
	if err != nil {
		return nil, fmt.Sprintf("booted slot: %v", err)
	}
	raw, err := os.ReadFile(a.chunksPath(p.Target, booted))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Sprintf("no chunk index is kept for slot %s (it was not installed from a chunked bundle)", booted)
	}
	if err != nil {
		return nil, fmt.Sprintf("kept chunk index of slot %s: %v", booted, err)
	}
	old, err := bundle.ParseChunkIndex(raw)
	if err != nil {
		return nil, fmt.Sprintf("kept chunk index of slot %s: %v", booted, err)
	}
	ds := a.openDeltaStream(ctx, blobs, cfg, i, raw)
	used := false
	defer func() {
		if ds != nil && !used {
			ds.body.Close()
		}
	}()
	newRaw, err := blobs.Attachment(ctx, cfg, p.Chunks.Index)
	if err != nil {
		return nil, fmt.Sprintf("chunk index: %v", err)
	}
	nix, err := bundle.ParseChunkIndex(newRaw)
	if err != nil {
		return nil, err.Error()
	}
	diff := bundle.Diff(old, nix)
	if float64(diff.SharedBytes) < minSharedFraction*float64(diff.Bytes) {
		return nil, fmt.Sprintf("slot %s shares only %d of %d bytes with it (an unknown base)", booted, diff.SharedBytes, diff.Bytes)
	}
	parts, ok := payloadParts(cfg, blobs.Head.Parsed, i)
	if !ok {
		return nil, "the manifest lacks layers the config names" // refused when judged
	}
	locs, err := nix.Locate(&p, parts)
	if err != nil {
		return nil, err.Error()
	}
	at := make(map[bundle.ChunkID]int64, len(old.Chunks))
	var off int64
	for _, c := range old.Chunks {
		if _, dup := at[c.ID]; !dup {
			at[c.ID] = off
		}
		off += int64(c.Size)
	}
	var need []ocispec.Descriptor
	for j, c := range nix.Chunks {
		part := parts[locs[j].Part]
		if _, have := at[c.ID]; !have && (len(need) == 0 || need[len(need)-1].Digest != part.Digest) {
			need = append(need, part)
		}
	}
	used = true
	return &deltaBase{slot: booted, device: slot.Device(booted), at: at, shared: diff, need: need, stream: ds}, ""
}

// openDeltaStream opens the delta stream from the kept index raw to
// payload i's index when the source makes one (a ferry mirror), reads
// its head and checks the index it holds against the manifest's digest
// of the index, which it then keeps in blobs (so it is not fetched
// again; the head it comes from is judged before any of it is used).
// Why there is none is logged: the chunks are then fetched by range.
func (a *Agent) openDeltaStream(ctx context.Context, blobs *transport.Blobs, cfg *bundle.Config, i int, raw []byte) *deltaStream {
	p := cfg.Payloads[i]
	var layer ocispec.Descriptor
	for k, at := range cfg.Attachments {
		if at.Name == p.Chunks.Index && k < len(blobs.Head.Parsed.Layers) {
			layer = blobs.Head.Parsed.Layers[k]
		}
	}
	if layer.Digest == "" {
		return nil // refused when judged
	}
	body, err := blobs.DeltaStream(ctx, layer.Digest, digest.FromBytes(raw))
	if err != nil {
		a.logf("payload %s: no delta stream (%v): fetching the chunks by range", p.Name, err)
		return nil
	}
	ds := &deltaStream{body: body}
	if ds.r, err = dstream.NewReader(ds, raw, layer.Digest); err == nil && !blobs.Keep(layer, ds.r.Index()) {
		err = errors.New("its index does not fit the manifest")
	}
	if err != nil {
		body.Close()
		a.logf("payload %s: delta stream refused: %v: fetching the chunks by range", p.Name, err)
		return nil
	}
	a.logf("payload %s: delta stream from the mirror", p.Name)
	return ds
}

// payloadParts returns the part layers of payload i from an unjudged
// manifest, or false when it has too few layers.
func payloadParts(cfg *bundle.Config, m *ocispec.Manifest, i int) ([]ocispec.Descriptor, bool) {
	n := len(cfg.Attachments)
	for _, p := range cfg.Payloads {
		n += p.Parts
	}
	if m == nil || len(m.Layers) < n {
		return nil, false
	}
	return bundle.PayloadLayers(cfg, *m, i), true
}

// missingParts counts, of the parts an install with plan d reads, those
// blobs lacks (a stick built as a delta for other bases), and all of
// them.
func (d *Delta) missingParts(cfg *bundle.Config) (missing, parts int) {
	for i, p := range cfg.Payloads {
		var want []ocispec.Descriptor
		if base := d.bases[p.Name]; base != nil {
			want = base.need
		} else if want, _ = payloadParts(cfg, d.blobs.Head.Parsed, i); want == nil {
			return 0, 0 // refused when judged
		}
		for _, l := range want {
			parts++
			if !d.blobs.Has(l) {
				missing++
			}
		}
	}
	return missing, parts
}

// deltaContent returns payload p's content assembled from the base slot
// and fetched chunks, checked chunk by chunk against the judged chunk
// index and as a whole against the payload's signed size and digest.
func (in *installRun) deltaContent(ctx context.Context, p *bundle.PayloadReader) (io.Reader, func() error, error) {
	d := in.delta
	base := d.bases[p.Name]
	if base == nil {
		return nil, nil, fmt.Errorf("payload %s: omitted from the stream without a delta plan", p.Name)
	}
	if base.slot != in.j.FromSlot {
		return nil, nil, fmt.Errorf("payload %s: the delta was planned from slot %s, the device runs %s", p.Name, base.slot, in.j.FromSlot)
	}
	ix, locs, err := bundle.ChunkIndexOf(in.br, p.Name)
	if err == nil && ix == nil {
		err = errors.New("no chunk index")
	}
	if err != nil {
		return nil, nil, &bundle.Error{What: fmt.Sprintf("payload %q chunk index", p.Name), Offset: -1, Err: err}
	}
	f, err := os.Open(base.device)
	if err != nil {
		return nil, nil, fmt.Errorf("payload %s: open base slot: %w", p.Name, err)
	}
	dec, err := zstd.NewFrameDecoder(bundle.MaxChunkSize)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	cr := &chunkReader{ctx: ctx, a: in.a, blobs: d.blobs, name: p.Name, parts: p.Layers, ix: ix, locs: locs, base: f, at: base.at, dec: dec,
		again: repeatedNew(ix, base.at), targetPath: in.a.cfg.Slots[p.Target].Device(in.j.ToSlot)}
	if base.stream != nil {
		cr.ds = base.stream.r
	}
	vr, err := verifyio.NewReader(cr, p.Size, p.Digest)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	done := func() error {
		if base.stream != nil {
			in.a.logf("payload %s: %d chunks decoded from the delta stream of %d bytes, %d of its records did not match and were fetched",
				p.Name, cr.streamed, base.stream.read, cr.streamBad)
		}
		in.a.logf("payload %s: %d chunks reused from slot %s, %d fetched (%d bytes), %d read again from slot %s, %d in the slot did not match and were fetched",
			p.Name, cr.reused, base.slot, cr.fetched, cr.fetchedBytes, cr.copied, in.j.ToSlot, cr.rotted)
		cr.closeRun()
		if cr.target != nil {
			cr.target.Close()
		}
		return f.Close()
	}
	return contentReader{vr, p.Name}, done, nil
}

// contentReader locates a content mismatch in the payload, as the
// stream reader does, so that it counts as a refused bundle.
type contentReader struct {
	r    io.Reader
	name string
}

func (c contentReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	var be *bundle.Error
	if err != nil && err != io.EOF && !errors.As(err, &be) && !errors.Is(err, errFetch) {
		err = &bundle.Error{What: fmt.Sprintf("payload %q content", c.name), Offset: -1, Err: err}
	}
	return n, err
}

// errFetch marks a chunk that could not be fetched (a missing blob, a
// broken link): a failure, not a refusal.
var errFetch = errors.New("fetch chunk")

// repeatedNew maps each chunk ID that the base lacks and that occurs more
// than once in ix to the index of its first occurrence.
func repeatedNew(ix *bundle.ChunkIndex, base map[bundle.ChunkID]int64) map[bundle.ChunkID]int {
	first := map[bundle.ChunkID]int{}
	again := map[bundle.ChunkID]int{}
	for i, c := range ix.Chunks {
		if _, ok := base[c.ID]; ok {
			continue
		}
		if j, seen := first[c.ID]; seen {
			again[c.ID] = j
		} else {
			first[c.ID] = i
		}
	}
	return again
}

// chunkReader yields a chunked payload's content chunk by chunk: from the
// base slot when it holds the chunk and it still hashes right; a chunk
// the base lacks that occurred before in the payload, from where it was
// written in the target slot (re-hashed too); else fetched by range,
// decompressed and checked. Runs of fetched chunks that are adjacent in
// one part share one range request.
type chunkReader struct {
	ctx   context.Context
	a     *Agent
	blobs *transport.Blobs
	name  string
	parts []ocispec.Descriptor
	ix    *bundle.ChunkIndex
	locs  []bundle.ChunkLoc
	base  *os.File
	at    map[bundle.ChunkID]int64
	dec   *zstd.FrameDecoder
	// again: chunks the base lacks that occur more than once, by the
	// index of their first occurrence; target is the slot being written
	// (at targetPath), opened when a chunk is first read back from it.
	again      map[bundle.ChunkID]int
	targetPath string
	target     *os.File

	next    int    // next chunk
	pending []byte // rest of the current chunk
	buf     []byte
	frame   []byte

	run    io.ReadCloser // open range over chunks [next, runEnd)
	runEnd int

	// ds is the delta stream the chunks the base lacks come from, nil
	// without one or once it failed; rec is its record read ahead, dict
	// the base's bytes a record is decoded against.
	ds   *dstream.Reader
	rec  *dstream.Record
	dict []byte

	reused, fetched, copied, rotted, streamed, streamBad int
	fetchedBytes                                         int64
}

func (c *chunkReader) Read(b []byte) (int, error) {
	for len(c.pending) == 0 {
		if c.next == len(c.ix.Chunks) {
			return 0, io.EOF
		}
		if err := c.ctx.Err(); err != nil {
			return 0, err
		}
		data, err := c.chunk(c.next)
		if err != nil {
			return 0, err
		}
		c.pending = data
		c.next++
	}
	n := copy(b, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// chunk returns chunk i's checked content.
func (c *chunkReader) chunk(i int) ([]byte, error) {
	ch := c.ix.Chunks[i]
	if cap(c.buf) < int(ch.Size) {
		c.buf = make([]byte, ch.Size)
	}
	if off, ok := c.at[ch.ID]; ok && c.run == nil {
		data := c.buf[:ch.Size]
		if _, err := c.base.ReadAt(data, off); err == nil && bundle.ChunkIDOf(data) == ch.ID {
			c.reused++
			return data, nil
		}
		c.rotted++
		c.a.logf("payload %s: chunk %d (%s) in the base slot at byte %d does not match: fetching it", c.name, i, ch.ID, off)
	}
	if j, ok := c.again[ch.ID]; ok && j < i && c.run == nil {
		data, err := c.readBack(ch, c.locs[j].Offset)
		if err == nil {
			c.copied++
			return data, nil
		}
		c.a.logf("payload %s: chunk %d (%s) written at byte %d: %v: fetching it", c.name, i, ch.ID, c.locs[j].Offset, err)
	}
	if c.run == nil {
		if data, ok := c.fromStream(i); ok {
			return data, nil
		}
	}
	return c.fetch(i)
}

// fromStream returns chunk i's content from the delta stream, checked
// against the index, or false when the stream holds no record of it or
// its record does not decode to it (then the chunk is fetched). A stream
// that breaks (malformed, cut for good) is dropped: the chunks after are
// fetched by range.
func (c *chunkReader) fromStream(i int) ([]byte, bool) {
	for c.ds != nil {
		if c.rec == nil {
			rec, err := c.ds.Next()
			if err != nil {
				if err != io.EOF {
					c.a.logf("payload %s: delta stream: %v: fetching the chunks from %d by range", c.name, err, i)
				}
				c.ds = nil
				return nil, false
			}
			c.rec = rec
		}
		if c.rec.Chunk > i {
			return nil, false
		}
		rec := c.rec
		c.rec = nil
		if rec.Chunk < i {
			continue // a chunk that came from elsewhere
		}
		if cap(c.dict) < int(rec.DictLength) {
			c.dict = make([]byte, rec.DictLength)
		}
		dict := c.dict[:rec.DictLength]
		_, err := c.base.ReadAt(dict, rec.DictOffset)
		if err == nil {
			var data []byte
			if data, err = c.ds.Decode(c.buf[:0], rec, dict); err == nil {
				c.streamed++
				c.buf = data[:0]
				return data, true
			}
		}
		c.streamBad++
		c.a.logf("payload %s: chunk %d (%s) from the delta stream: %v: fetching it", c.name, i, c.ix.Chunks[i].ID, err)
		return nil, false
	}
	return nil, false
}

// readBack reads chunk ch from the target slot at off, where it was
// written before, and checks it.
func (c *chunkReader) readBack(ch bundle.Chunk, off int64) ([]byte, error) {
	if c.target == nil {
		f, err := os.Open(c.targetPath)
		if err != nil {
			return nil, fmt.Errorf("open target slot: %w", err)
		}
		c.target = f
	}
	data := c.buf[:ch.Size]
	if _, err := c.target.ReadAt(data, off); err != nil {
		return nil, fmt.Errorf("read target slot: %w", err)
	}
	if bundle.ChunkIDOf(data) != ch.ID {
		return nil, errors.New("does not read back")
	}
	return data, nil
}

// fetchable says whether chunk i is fetched (and so may join a range):
// neither the base holds it nor was it written before.
func (c *chunkReader) fetchable(i int) bool {
	if c.ds != nil {
		return false // it may come from the stream
	}
	id := c.ix.Chunks[i].ID
	if _, have := c.at[id]; have {
		return false
	}
	j, ok := c.again[id]
	return !ok || j >= i
}

// fetch reads chunk i's frame from its part, opening a range over it and
// the fetched chunks right after it in the same part.
func (c *chunkReader) fetch(i int) ([]byte, error) {
	ch, loc := c.ix.Chunks[i], c.locs[i]
	part := c.parts[loc.Part]
	if c.run == nil || i >= c.runEnd {
		c.closeRun()
		end, n := i+1, int64(ch.CompressedSize)
		for end < len(c.ix.Chunks) && c.locs[end].Part == loc.Part {
			if !c.fetchable(end) {
				break
			}
			n += int64(c.ix.Chunks[end].CompressedSize)
			end++
		}
		rc, err := c.blobs.Range(c.ctx, part, loc.PartOffset, n)
		if err != nil {
			return nil, fmt.Errorf("payload %s: %w %d (%s) from part %s at byte %d: %w", c.name, errFetch, i, ch.ID, part.Digest, loc.PartOffset, err)
		}
		c.run, c.runEnd = rc, end
	}
	if cap(c.frame) < int(ch.CompressedSize) {
		c.frame = make([]byte, ch.CompressedSize)
	}
	frame := c.frame[:ch.CompressedSize]
	if _, err := io.ReadFull(c.run, frame); err != nil {
		c.closeRun()
		return nil, fmt.Errorf("payload %s: %w %d (%s) from part %s at byte %d: %w", c.name, errFetch, i, ch.ID, part.Digest, loc.PartOffset, err)
	}
	if i+1 == c.runEnd {
		c.closeRun()
	}
	c.fetched++
	c.fetchedBytes += int64(ch.CompressedSize)
	data, err := c.dec.DecodeFrame(c.buf[:0], frame)
	if err == nil && (len(data) != int(ch.Size) || bundle.ChunkIDOf(data) != ch.ID) {
		err = fmt.Errorf("content of %d bytes does not match the chunk index (%d bytes, %s)", len(data), ch.Size, ch.ID)
	}
	if err != nil {
		return nil, &bundle.Error{What: fmt.Sprintf("payload %q chunk %d", c.name, i), Member: part.Digest.String(), Offset: loc.PartOffset, Err: err}
	}
	c.buf = data[:0]
	return data, nil
}

func (c *chunkReader) closeRun() {
	if c.run != nil {
		c.run.Close()
		c.run = nil
	}
}
