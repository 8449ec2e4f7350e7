package media

import (
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/internal/display"
)

// WriteOptions are the settings of Write.
type WriteOptions struct {
	// Force writes even to a disk that is mounted or holds the system.
	Force bool
	// Sparse writes (and checks) only the image's data, skipping its
	// holes past the first 8 MiB and before the last MiB (where partition
	// tables and filesystem headers are, which always go whole so that no
	// trace of an earlier filesystem stays there). The free space of a
	// stick is then whatever the device held before, which FAT ignores.
	Sparse bool
	// Progress, if set, is called with the bytes written (and then read
	// back) so far and the total of each pass.
	Progress func(done, total int64)

	sys *sysInfo // tests
}

// WriteResult says what Write did.
type WriteResult struct {
	Device  string        `json:"device"`
	Bytes   int64         `json:"bytes"`  // written
	Digest  digest.Digest `json:"digest"` // SHA-256 of what was written, as read back
	Skipped int64         `json:"skipped,omitempty"`
}

// Write copies an image onto a block device (or a file), syncs it, then
// reads it back and compares its SHA-256 with what was written. A block
// device that is mounted, or holds the running system, is refused unless
// Force is set (see CheckTarget), and so is one smaller than the image.
func Write(img, device string, o WriteOptions) (*WriteResult, error) {
	res, err := write(img, device, o)
	if err != nil {
		return nil, fmt.Errorf("write %s to %s: %w", img, device, err)
	}
	return res, nil
}

// span is a region of the image to copy.
type span struct{ off, n int64 }

func write(img, device string, o WriteOptions) (*WriteResult, error) {
	si := hostSys
	if o.sys != nil {
		si = *o.sys
	}
	src, err := os.Open(img)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	isFile := false
	if dst, err := os.Stat(device); err == nil {
		isFile = dst.Mode().IsRegular()
	} else if errors.Is(err, os.ErrNotExist) {
		isFile = true // an image file to be
	} else {
		return nil, err
	}
	if !o.Force && !isFile {
		if err := si.checkTarget(device); err != nil {
			return nil, err
		}
	}
	flag := os.O_WRONLY
	if isFile {
		flag |= os.O_CREATE
	} else if !o.Force {
		flag |= os.O_EXCL // Linux: fails with EBUSY if the kernel has it in use
	}
	dst, err := os.OpenFile(device, flag, 0o644)
	if err != nil {
		return nil, err
	}
	defer dst.Close()
	if !isFile {
		devSize, err := dst.Seek(0, io.SeekEnd)
		if err != nil {
			return nil, err
		}
		if devSize < size {
			return nil, fmt.Errorf("the image (%s) is larger than the device (%s)", display.Bytes(size), display.Bytes(devSize))
		}
	} else if err := dst.Truncate(size); err != nil {
		return nil, err
	}
	spans := []span{{0, size}}
	if o.Sparse {
		spans = dataSpans(src, size)
	}
	var total int64
	for _, s := range spans {
		total += s.n
	}
	res := &WriteResult{Device: device, Bytes: total, Skipped: size - total}
	buf := make([]byte, 4<<20)
	h := sha256.New()
	if err := copySpans(dst, src, spans, buf, h, o.Progress, total); err != nil {
		return nil, err
	}
	if err := dst.Sync(); err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	want := digest.NewDigest(digest.SHA256, h)
	if err := dst.Close(); err != nil {
		return nil, err
	}

	// Read back, from the device rather than the page cache.
	back, err := os.Open(device)
	if err != nil {
		return nil, err
	}
	defer back.Close()
	dropCache(back)
	h.Reset()
	if err := copySpans(nil, back, spans, buf, h, o.Progress, total); err != nil {
		return nil, fmt.Errorf("read back: %w", err)
	}
	if got := digest.NewDigest(digest.SHA256, h); got != want {
		return nil, fmt.Errorf("read-back check failed: wrote %s, the device returned %s (a failing stick, or one smaller than it claims?)", want, got)
	}
	res.Digest = want
	return res, nil
}

// copySpans copies spans of src to the same offsets of dst (nil: only
// hash), hashing what it copies in order.
func copySpans(dst io.WriterAt, src io.ReaderAt, spans []span, buf []byte, h io.Writer, progress func(done, total int64), total int64) error {
	var done int64
	for _, s := range spans {
		for off := s.off; off < s.off+s.n; {
			n := min(int64(len(buf)), s.off+s.n-off)
			k, err := src.ReadAt(buf[:n], off)
			if int64(k) < n {
				if err == nil || err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return fmt.Errorf("read at %d: %w", off, err)
			}
			h.Write(buf[:n])
			if dst != nil {
				if _, err := dst.WriteAt(buf[:n], off); err != nil {
					return fmt.Errorf("write at %d: %w", off, err)
				}
			}
			off += n
			done += n
			if progress != nil {
				progress(done, total)
			}
		}
	}
	return nil
}

// dataSpans returns the regions of f that hold data (SEEK_DATA and
// SEEK_HOLE), always including the first 8 MiB and the last MiB, merged
// and in order. Where the filesystem cannot tell, it is all data.
func dataSpans(f *os.File, size int64) []span {
	const head, tail = 8 << 20, 1 << 20
	var raw []span
	raw = append(raw, span{0, min(head, size)})
	for off := int64(0); off < size; {
		d, err := f.Seek(off, seekData)
		if err != nil || d >= size {
			break
		}
		e, err := f.Seek(d, seekHole)
		if err != nil || e > size {
			e = size
		}
		raw = append(raw, span{d, e - d})
		off = e
	}
	if size > tail {
		raw = append(raw, span{size - tail, tail})
	}
	slices.SortFunc(raw, func(a, b span) int { return cmp.Compare(a.off, b.off) })
	var out []span
	for _, s := range raw {
		if n := len(out); n > 0 && s.off <= out[n-1].off+out[n-1].n {
			end := max(out[n-1].off+out[n-1].n, s.off+s.n)
			out[n-1].n = end - out[n-1].off
			continue
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return []span{{0, size}}
	}
	return out
}

// Whence values of lseek(2) for sparse files (Linux, the BSDs, macOS).
const (
	seekData = 3
	seekHole = 4
)

// DeviceSize returns the size of a block device or file.
func DeviceSize(device string) (int64, error) {
	f, err := os.Open(device)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return f.Seek(0, io.SeekEnd)
}
