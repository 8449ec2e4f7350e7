package stick

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/mountinfo"
)

// Stick is a mounted stick, or a directory holding a copy of one: the
// directory that contains ferry/.
type Stick struct {
	*Layout
	// Root is the stick's mount point (the directory holding ferry/).
	Root string

	fs  writeFS
	now func() time.Time
}

// OpenDir opens the stick whose filesystem is mounted at (or copied to)
// root.
func OpenDir(root string) (*Stick, error) {
	l, err := NewLayout(stickFS{root: root, dir: Dir}, root)
	if err != nil {
		return nil, err
	}
	return &Stick{Layout: l, Root: root, fs: osFS{}, now: time.Now}, nil
}

// OpenLayout opens the layout in directory dir itself (a mirror store, or
// a stick's ferry/ directory), read as hostile input as OpenDir reads a
// stick.
func OpenLayout(dir string) (*Layout, error) {
	return NewLayout(stickFS{root: dir, dir: "."}, dir)
}

// ErrNotFound is wrapped by Find's error when no stick is there.
var ErrNotFound = errors.New("no ferry stick found")

// Find returns the first stick found: at one of mountPoints (each checked
// for a ferry/ layout, in order), else by filesystem label, looked up as
// /dev/disk/by-label/LABEL and found mounted in /proc/self/mountinfo.
// Either may be empty. Its error wraps ErrNotFound when no stick is
// mounted, and says so when the labelled stick is plugged in but not
// mounted.
func Find(mountPoints []string, label string) (*Stick, error) {
	return finder{byLabel: "/dev/disk/by-label", mountinfo: mountinfo.Path}.find(mountPoints, label)
}

type finder struct {
	byLabel   string // directory of label symlinks
	mountinfo string
}

func (f finder) find(mountPoints []string, label string) (*Stick, error) {
	for _, mp := range mountPoints {
		if s, err := OpenDir(mp); err == nil {
			return s, nil
		}
	}
	where := strings.Join(mountPoints, ", ")
	if label == "" {
		if where == "" {
			return nil, fmt.Errorf("%w: no mount points or label to look at", ErrNotFound)
		}
		return nil, fmt.Errorf("%w at %s", ErrNotFound, where)
	}
	if where != "" {
		where += "; "
	}
	link := filepath.Join(f.byLabel, escapeLabel(label))
	dev, err := filepath.EvalSymlinks(link)
	if err != nil {
		return nil, fmt.Errorf("%w: %sno filesystem labelled %q is plugged in (%s)", ErrNotFound, where, label, link)
	}
	mounts, err := mountinfo.Read(f.mountinfo)
	if err != nil {
		return nil, fmt.Errorf("find stick %q: %w", label, err)
	}
	for _, m := range mounts {
		if !sameDevice(m, dev) {
			continue
		}
		s, err := OpenDir(m.MountPoint)
		if err != nil {
			return nil, fmt.Errorf("stick %q (%s) mounted at %s: %w", label, dev, m.MountPoint, err)
		}
		return s, nil
	}
	return nil, fmt.Errorf("%w: %sthe stick labelled %q (%s) is plugged in but not mounted", ErrNotFound, where, label, dev)
}

// sameDevice reports whether mount m is of the device node dev: by its
// source path, or by its device number.
func sameDevice(m mountinfo.Mount, dev string) bool {
	if m.Source == dev {
		return true
	}
	if src, err := filepath.EvalSymlinks(m.Source); err == nil && src == dev {
		return true
	}
	maj, min, ok := deviceNumber(dev)
	return ok && maj == m.Major && min == m.Minor
}

// escapeLabel encodes a label as udev names it under /dev/disk/by-label:
// bytes other than letters, digits and #+-.:=@_ as \xHH.
func escapeLabel(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("#+-.:=@_", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	return b.String()
}

// Best returns the bundle with the highest version among the readable
// bundles that fit deviceType, and false if none does. Whether it may be
// installed (version policy, signatures) is for the caller to judge.
func Best(bundles []Bundle, deviceType string) (Bundle, bool) {
	var best Bundle
	found := false
	for _, b := range bundles {
		if b.Err != nil || b.Config == nil || !b.Config.Fits(deviceType) {
			continue
		}
		if !found || bundle.CompareVersions(b.Version, best.Version) > 0 {
			best, found = b, true
		}
	}
	return best, found
}

// WriteReport writes r as a new file in ferry/reports/ and returns its
// path. The file is complete and on the stick when it returns: written to
// a temporary file, synced, renamed into place, and the directory synced.
// On error nothing but possibly an empty ferry/reports/ is left behind.
func (s *Stick) WriteReport(r Report) (string, error) {
	return s.putReport(r, "")
}

// ReplaceReport writes r over the report file name in ferry/reports/ (a
// name WriteReport returned, on this stick or another), as WriteReport
// does: a report that was pending gets its outcome. The file is created
// if the stick lacks it.
func (s *Stick) ReplaceReport(name string, r Report) (string, error) {
	if name == "" || name != filepath.Base(name) || !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
		return "", fmt.Errorf("report file %q: want a NAME.json in %s/", name, ReportsDir)
	}
	return s.putReport(r, name)
}

func (s *Stick) putReport(r Report, name string) (string, error) {
	if err := r.Validate(); err != nil {
		return "", err
	}
	data, err := json.MarshalIndent(&r, "", "  ")
	if err != nil {
		return "", err
	}
	data = append(data, '\n')
	dir := filepath.Join(s.Root, Dir, ReportsDir)
	p, err := s.writeReport(dir, r.fileName(s.now()), name, data)
	if err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			return "", fmt.Errorf("write report to %s: the stick is full: %w", dir, err)
		}
		return "", fmt.Errorf("write report to %s: %w", dir, err)
	}
	return p, nil
}

// writeReport writes data to dir/replace, or to a new file named after
// base when replace is empty.
func (s *Stick) writeReport(dir, base, replace string, data []byte) (string, error) {
	// Never write through a link: ferry/ and ferry/reports/ must be
	// directories themselves (a hostile stick could make reports/ lead
	// into the device's own filesystem).
	if err := s.fs.Mkdir(filepath.Dir(dir)); err != nil {
		return "", err
	}
	if err := s.fs.Mkdir(dir); err != nil {
		return "", err
	}
	name := filepath.Join(dir, replace)
	if replace == "" {
		name = filepath.Join(dir, base+".json")
		for i := 2; s.fs.Exists(name); i++ {
			name = filepath.Join(dir, fmt.Sprintf("%s-%d.json", base, i))
		}
	}
	f, err := s.fs.CreateTemp(dir, ".report-*.tmp")
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	fail := func(err error) (string, error) {
		f.Close()
		s.fs.Remove(tmp)
		return "", err
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		s.fs.Remove(tmp)
		return "", err
	}
	if err := s.fs.Rename(tmp, name); err != nil {
		s.fs.Remove(tmp)
		return "", err
	}
	if err := s.fs.SyncDir(dir); err != nil {
		return "", err
	}
	return name, nil
}

// writeFS is what WriteReport needs of the filesystem; tests fail it (a
// full stick) without a real one.
type writeFS interface {
	// Mkdir makes dir, whose parent exists, unless it is there; it fails
	// unless dir is a directory itself, not a link to one.
	Mkdir(dir string) error
	Exists(name string) bool
	CreateTemp(dir, pattern string) (tempFile, error)
	Rename(from, to string) error
	Remove(name string) error
	SyncDir(dir string) error
}

type tempFile interface {
	io.Writer
	Name() string
	Sync() error
	Close() error
}

type osFS struct{}

func (osFS) Mkdir(dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is %s, not a directory: refusing to write through it", dir, fileType(fi.Mode()))
	}
	return nil
}
func (osFS) Exists(name string) bool {
	_, err := os.Lstat(name)
	return !errors.Is(err, fs.ErrNotExist)
}
func (osFS) CreateTemp(dir, pattern string) (tempFile, error) { return os.CreateTemp(dir, pattern) }
func (osFS) Rename(from, to string) error                     { return os.Rename(from, to) }
func (osFS) Remove(name string) error                         { return os.Remove(name) }

// SyncDir makes a rename durable. Filesystems that cannot sync a
// directory (EINVAL) have nothing more to flush.
func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return err
	}
	return nil
}
