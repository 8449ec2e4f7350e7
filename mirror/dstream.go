package mirror

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ferry-update/ferry/bundle/dstream"
	"github.com/ferry-update/ferry/internal/atomicfile"
)

// Delta streams (bundle/FORMAT.md §15.9). A device that runs a chunked
// payload whose index has digest BASE asks for the delta stream of the
// payload whose index has digest TARGET; the store makes it from the
// bundles it holds (any stored version of the bundle whose chunk index
// is BASE, and the one whose index is TARGET) and keeps it in
// DIR/deltas/TARGET-BASE.fds, so the next device of the same version is
// served the file. The cache is bounded: after each new stream, the
// least recently served streams are removed while the directory holds
// more than DeltaCacheBytes (the new stream is kept whatever its size),
// and temporary files older than an hour (a generation cut by a crash).

// DeltasDir is the directory of cached delta streams in a store.
const DeltasDir = "deltas"

// DeltaCacheBytes bounds the cached delta streams of a store.
const DeltaCacheBytes = 2 << 30

// ErrNoDelta is wrapped by DeltaStream when the store holds no chunked
// payload of the repository with the target or the base index.
var ErrNoDelta = errors.New("no such chunked payload")

// DeltaStreamPath is where the store caches the delta stream from base
// to target.
func (s *Store) DeltaStreamPath(target, base digest.Digest) string {
	return filepath.Join(s.dir, DeltasDir, target.Encoded()+"-"+base.Encoded()+".fds")
}

// CachedDeltaStream opens the cached delta stream from base to target
// and marks it as served now; fs.ErrNotExist when there is none.
func (s *Store) CachedDeltaStream(target, base digest.Digest) (*os.File, error) {
	path := s.DeltaStreamPath(target, base)
	f, err := os.Open(path)
	if err == nil {
		now := time.Now()
		os.Chtimes(path, now, now)
	}
	return f, err
}

// WriteDeltaStream makes the delta stream from base to target, both
// digests of chunk indexes of payloads of bundles named repo in the
// store, writes it to w as it is made (w's errors are ignored: the
// stream is cached all the same) and caches it (atomically; see
// DeltasDir). It fails with ErrNoDelta before it writes anything when
// the store lacks either payload.
func (s *Store) WriteDeltaStream(repo string, target, base digest.Digest, w io.Writer) (*dstream.Stats, error) {
	var tp, bp *chunkedPayload
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	err = s.eachBundle(idx, func(b storedBundle) error {
		if b.config.Name != repo {
			return nil
		}
		for i := range b.config.Payloads {
			l, ok := chunkIndexLayer(b.config, b.manifest, i)
			if !ok || (l.Digest != target && l.Digest != base) || (l.Digest == target && tp != nil) || (l.Digest == base && bp != nil) {
				continue
			}
			if c := s.chunked(b.config, b.manifest, i); c != nil && s.hasParts(c.parts) {
				if l.Digest == target {
					tp = c
				}
				if l.Digest == base {
					bp = c
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	switch {
	case tp == nil:
		return nil, fmt.Errorf("%w: %s holds no chunked payload with index %s", ErrNoDelta, repo, target)
	case bp == nil:
		return nil, fmt.Errorf("%w: %s holds no chunked payload with index %s", ErrNoDelta, repo, base)
	}
	path := s.DeltaStreamPath(target, base)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := atomicfile.CreateTempPerm(path, 0o644)
	if err != nil {
		return nil, err
	}
	tr, br := s.frameReader(tp), s.frameReader(bp)
	defer tr.close()
	defer br.close()
	st, err := dstream.Write(io.MultiWriter(f, &ignoreErrors{w: w}), dstream.Payload{Index: bp.raw, Frame: br.frame}, dstream.Payload{Index: tp.raw, Frame: tr.frame})
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("delta stream %s from %s: %w", target, base, err)
	}
	if err := atomicfile.Commit(f, path); err != nil {
		return nil, fmt.Errorf("delta stream %s from %s: %w", target, base, err)
	}
	s.trimDeltas(path)
	return st, nil
}

// hasParts says whether the store holds every part.
func (s *Store) hasParts(parts []ocispec.Descriptor) bool {
	for _, p := range parts {
		if !s.hasBlob(p.Digest, p.Size) {
			return false
		}
	}
	return true
}

// trimDeltas applies the cache bound (see DeltasDir), keeping keep.
func (s *Store) trimDeltas(keep string) {
	dir := filepath.Join(s.dir, DeltasDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	type file struct {
		path string
		mod  time.Time
		size int64
	}
	var files []file
	var total int64
	for _, e := range ents {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if strings.HasSuffix(e.Name(), ".tmp") {
			if time.Since(info.ModTime()) > time.Hour {
				os.Remove(path)
			}
			continue
		}
		files = append(files, file{path, info.ModTime(), info.Size()})
		total += info.Size()
	}
	sort.Slice(files, func(i, j int) bool { return files[i].mod.Before(files[j].mod) })
	for _, f := range files {
		if total <= DeltaCacheBytes {
			break
		}
		if f.path == keep {
			continue
		}
		if err := os.Remove(f.path); err == nil || errors.Is(err, fs.ErrNotExist) {
			total -= f.size
		}
	}
}

// ignoreErrors writes to w until w fails, and then discards.
type ignoreErrors struct {
	w      io.Writer
	failed bool
}

func (e *ignoreErrors) Write(b []byte) (int, error) {
	if e.w != nil && !e.failed {
		_, err := e.w.Write(b)
		e.failed = err != nil
	}
	return len(b), nil
}

// frameReader reads the frames of a chunked payload from the store's
// part files, keeping the last part open.
type frameReader struct {
	s    *Store
	c    *chunkedPayload
	part int
	f    *os.File
}

func (s *Store) frameReader(c *chunkedPayload) *frameReader {
	return &frameReader{s: s, c: c, part: -1}
}

func (r *frameReader) frame(dst []byte, i int) ([]byte, error) {
	loc := r.c.locs[i]
	if loc.Part != r.part {
		r.close()
		f, err := os.Open(r.s.blobPath(r.c.parts[loc.Part].Digest))
		if err != nil {
			return nil, err
		}
		r.f, r.part = f, loc.Part
	}
	n := int(r.c.ix.Chunks[i].CompressedSize)
	dst = slices.Grow(dst, n)
	b := dst[len(dst) : len(dst)+n]
	if _, err := r.f.ReadAt(b, loc.PartOffset); err != nil {
		return nil, fmt.Errorf("part %s at byte %d: %w", r.c.parts[loc.Part].Digest, loc.PartOffset, err)
	}
	return dst[:len(dst)+n], nil
}

func (r *frameReader) close() {
	if r.f != nil {
		r.f.Close()
		r.f, r.part = nil, -1
	}
}
