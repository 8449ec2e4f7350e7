package agent

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/atomicfile"
)

// plan maps every payload of the bundle to its target and checks the
// targets, before anything is written, each through the handler of its
// type. Payloads this device cannot take are refused (*RefusedError); a
// missing or wrong slot device is an error.
func (a *Agent) plan(cfg *bundle.Config, j *Journal) ([]target, error) {
	var ts []target
	for i, p := range cfg.Payloads {
		h, ok := payloadHandlers[p.Type]
		if !ok {
			h = unknownHandler{}
		}
		t, err := h.plan(a, cfg, j, i)
		if err != nil {
			return nil, err
		}
		t.handler = h
		ts = append(ts, t)
	}
	return ts, nil
}

// checkSlotDevice refuses a device that is missing, is not a block device,
// character device or regular file, is the booted slot's device, or (for a
// block device) is smaller than the payload.
func checkSlotDevice(name, slot, dev, bootedDev string, size int64) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("slot %s %s (%s): %w: %s", name, slot, dev, ErrSlotDevice, fmt.Sprintf(format, args...))
	}
	fi, err := os.Stat(dev)
	if errors.Is(err, fs.ErrNotExist) {
		return fail("does not exist; check [slots.%s] in the config and that the device is present", name)
	}
	if err != nil {
		return fail("%v", err)
	}
	mode := fi.Mode()
	if !mode.IsRegular() && mode&fs.ModeDevice == 0 {
		return fail("is a %s, want a block device or a regular file", mode.Type())
	}
	if bfi, err := os.Stat(bootedDev); err == nil && os.SameFile(fi, bfi) {
		return fail("is the device of the booted slot; refusing to overwrite the running system")
	}
	if mode&fs.ModeDevice != 0 && mode&fs.ModeCharDevice == 0 {
		f, err := os.Open(dev)
		if err != nil {
			return fail("%v", err)
		}
		n, err := f.Seek(0, io.SeekEnd)
		f.Close()
		if err == nil && n < size {
			return fail("holds %d bytes, the payload needs %d", n, size)
		}
	}
	return nil
}

// writeSlot streams r into an A/B slot device and syncs it. A regular file
// is truncated first; a device is overwritten in place, never truncated,
// and a block device is opened O_EXCL, which Linux refuses (EBUSY) while
// it is mounted.
func writeSlot(dev string, r io.Reader) error {
	flags := os.O_WRONLY
	if fi, err := os.Stat(dev); err == nil {
		switch m := fi.Mode(); {
		case m.IsRegular():
			flags |= os.O_TRUNC
		case m&fs.ModeDevice != 0 && m&fs.ModeCharDevice == 0:
			flags |= os.O_EXCL
		}
	}
	f, err := os.OpenFile(dev, flags, 0)
	if err != nil {
		return fmt.Errorf("open slot: %w", err)
	}
	err = copyPayload(f, r)
	if err == nil {
		if err = f.Sync(); err != nil {
			err = fmt.Errorf("sync slot: %w", err)
		}
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close slot: %w", cerr)
	}
	return err
}

// copyPayload copies a verified payload stream to w. Write errors are told
// from read errors (which are the bundle's), and a full target says so.
func copyPayload(w io.Writer, r io.Reader) error {
	buf := make([]byte, 1<<20)
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			if werr == nil && m < n {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				if errors.Is(werr, syscall.ENOSPC) || errors.Is(werr, io.ErrShortWrite) {
					return fmt.Errorf("target is full: %w", werr)
				}
				return fmt.Errorf("write: %w", werr)
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// Files targets are laid out as
//
//	DIR/current  -> releases/NAME   the tree in use
//	DIR/previous -> releases/OLD    the tree before it, kept for rollback
//	DIR/releases/NAME               one directory per installed tree
const (
	currentLink  = "current"
	previousLink = "previous"
	releasesDir  = "releases"
)

func releaseOf(dir, link string) string {
	t, err := os.Readlink(filepath.Join(dir, link))
	if err != nil {
		return ""
	}
	return strings.TrimPrefix(filepath.ToSlash(t), releasesDir+"/")
}

func currentRelease(dir string) string { return releaseOf(dir, currentLink) }

// planTree names the new release after its version and content digest,
// never the name of the current or previous tree.
func planTree(name, dir, version string, p bundle.Payload) *TreeSwitch {
	old, prev := currentRelease(dir), releaseOf(dir, previousLink)
	base := version + "-" + p.Digest.Encoded()[:12]
	rel := base
	for i := 1; rel == old || rel == prev; i++ {
		rel = fmt.Sprintf("%s.%d", base, i)
	}
	return &TreeSwitch{Target: name, Dir: dir, Old: old, New: rel}
}

// extractTree unpacks a files payload beside the trees in use: into a
// partial directory that is renamed into place only once the payload's
// digest has been checked and every file and directory is synced.
func extractTree(ts *TreeSwitch, r io.Reader) error {
	rel := filepath.Join(ts.Dir, releasesDir)
	if err := os.MkdirAll(rel, 0o755); err != nil {
		return err
	}
	final := filepath.Join(rel, ts.New)
	tmp := filepath.Join(rel, "."+ts.New+".partial")
	for _, p := range []string{final, tmp} {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return err
	}
	err := bundle.ExtractTree(r, tmp)
	if err != nil {
		// A damaged payload may break the tar stream before its
		// digests are checked: the payload's own error is the verdict.
		err = bundle.PayloadError(r, err)
	}
	if err == nil {
		// The tar stream may end before the payload does; reading to EOF
		// is what checks the digest.
		_, err = io.Copy(io.Discard, r)
	}
	if err == nil {
		err = syncTree(tmp)
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err == nil {
		err = atomicfile.SyncDir(rel)
	}
	if err != nil {
		os.RemoveAll(tmp)
	}
	return err
}

func syncTree(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		return atomicfile.SyncDir(p)
	})
}

// setLink points DIR/link at releases/release atomically (a new symlink
// renamed over the old one), or removes it when release is "".
func setLink(dir, link, release string) error {
	path := filepath.Join(dir, link)
	if release == "" {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return atomicfile.SyncDir(dir)
	}
	if releaseOf(dir, link) == release {
		return nil
	}
	tmp := filepath.Join(dir, "."+link+".tmp")
	os.Remove(tmp)
	if err := os.Symlink(releasesDir+"/"+release, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return atomicfile.SyncDir(dir)
}

// pruneReleases removes every release but the ones kept, and any partial
// extraction left by an interrupted install.
func pruneReleases(dir string, keep ...string) error {
	rel := filepath.Join(dir, releasesDir)
	entries, err := os.ReadDir(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if !slices.Contains(keep, e.Name()) {
			errs = append(errs, os.RemoveAll(filepath.Join(rel, e.Name())))
		}
	}
	return errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
