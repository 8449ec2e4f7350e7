package bundle

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"runtime"

	"github.com/opencontainers/go-digest"
	"github.com/restic/chunker"

	"github.com/ferry-update/ferry/internal/zstd"
)

// chunkJob is one chunk on its way through the compressors; done is
// closed once frame is set.
type chunkJob struct {
	data  []byte
	frame []byte
	id    ChunkID
	err   error
	done  chan struct{}
}

// writeChunkedPayload cuts content into chunks (FORMAT.md §15.2),
// compresses each into its own frame on workers goroutines, and writes the
// frames in order, ending a part after a chunk that ends a pack (§15.3) or
// before one that would overflow the part size. It fills in p (Chunks.Index
// and Count included) and returns the chunk index.
func (w *partWriter) writeChunkedPayload(p *Payload, content io.Reader, contentSize int64, avgBits, workers int, progress func(int64)) (*ChunkIndex, error) {
	minSize, maxSize, err := ChunkParams(avgBits)
	if err != nil {
		return nil, err
	}
	if w.partSize < int64(maxSize)+maxFrameOverhead {
		return nil, fmt.Errorf("part size %d is below the largest chunk's frame (%d bytes)", w.partSize, maxSize+maxFrameOverhead)
	}
	if workers <= 0 {
		workers = min(runtime.GOMAXPROCS(0), zstd.DefaultMaxWorkers)
	}
	w.startPayload(p)
	first := len(w.layers)
	packBits := PackBits(avgBits, contentSize)

	work := make(chan *chunkJob, workers)
	order := make(chan *chunkJob, 2*workers)
	stop := make(chan struct{})
	defer close(stop)
	for range workers {
		enc, err := zstd.NewFrameEncoder()
		if err != nil {
			return nil, err
		}
		go func() {
			for j := range work {
				j.frame, j.err = enc.EncodeFrame(nil, j.data)
				j.id = ChunkIDOf(j.data)
				close(j.done)
			}
		}()
	}
	readErr := make(chan error, 1)
	go func() {
		defer close(work)
		defer close(order)
		send := func(data []byte) bool {
			j := &chunkJob{data: data, done: make(chan struct{})}
			select {
			case order <- j:
			case <-stop:
				return false
			}
			work <- j
			return true
		}
		c := chunker.NewWithBoundaries(content, chunker.Pol(ChunkPolynomial), uint(minSize), uint(maxSize))
		c.SetAverageBits(avgBits)
		// zeros holds a run of all-zero chunks being merged (§15.2): the
		// chunker cuts zeros at every minSize bytes.
		var zeros []byte
		for {
			ch, err := c.Next(make([]byte, maxSize))
			if err != nil && err != io.EOF {
				readErr <- fmt.Errorf("read content: %w", err)
				return
			}
			if err == nil && allZero(ch.Data) && len(zeros)+len(ch.Data) <= maxSize {
				zeros = append(zeros, ch.Data...)
				continue
			}
			if len(zeros) > 0 && !send(zeros) {
				readErr <- nil
				return
			}
			zeros = nil
			if err == io.EOF {
				readErr <- nil
				return
			}
			if allZero(ch.Data) {
				zeros = ch.Data
				continue
			}
			if !send(ch.Data) {
				readErr <- nil
				return
			}
		}
	}()

	ix := &ChunkIndex{}
	sum := sha256.New()
	var size int64
	for j := range order {
		<-j.done
		if j.err != nil {
			return nil, j.err
		}
		if w.open && w.n+int64(len(j.frame)) > w.partSize {
			if err := w.finishPart(); err != nil {
				return nil, err
			}
		}
		if _, err := w.Write(j.frame); err != nil {
			return nil, err
		}
		if endsPack(j.id, packBits) {
			if err := w.finishPart(); err != nil {
				return nil, err
			}
		}
		sum.Write(j.data)
		size += int64(len(j.data))
		ix.Chunks = append(ix.Chunks, Chunk{Size: uint32(len(j.data)), CompressedSize: uint32(len(j.frame)), ID: j.id})
		progress(int64(len(j.data)))
	}
	if err := <-readErr; err != nil {
		return nil, err
	}
	if len(ix.Chunks) == 0 {
		return nil, errors.New("empty content cannot be chunked")
	}
	if err := w.finishPart(); err != nil {
		return nil, err
	}
	p.Size = size
	p.Digest = digest.NewDigest(digest.SHA256, sum)
	p.CompressedSize = w.written
	p.Parts = len(w.layers) - first
	p.Chunks = &Chunks{Index: ChunkIndexName(p.Name), Chunker: ChunkerRabin, MinSize: minSize, AvgBits: avgBits, MaxSize: maxSize, Count: len(ix.Chunks)}
	return ix, nil
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
