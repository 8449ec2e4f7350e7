package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
)

// CreateTemp makes the temporary file for path, in path's directory, with
// mode 0600: for state and keys, which are nobody else's business.
func CreateTemp(path string) (*os.File, error) {
	return os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
}

// tempName matches the names CreateTemp makes: "." + base + "." +
// os.CreateTemp's decimal random part + ".tmp".
var tempName = regexp.MustCompile(`^\..+\.[0-9]+\.tmp$`)

// RemoveStale removes the temporary files CreateTemp left in dir when the
// process died (a power cut) before Commit: regular files of exactly that
// naming pattern, nothing else, and no symbolic link is followed. Only a
// caller that knows no writer is at work in dir (it holds dir's lock) may
// call it. It returns the names removed; a missing dir holds none.
func RemoveStale(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range ents {
		if !e.Type().IsRegular() || !tempName.MatchString(e.Name()) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, err
		}
		removed = append(removed, e.Name())
	}
	return removed, nil
}

// CreateTempPerm makes the temporary file for path, in path's directory,
// with mode perm less the process's umask, as a file created in place
// would get; its name is one RemoveStale knows. Artifacts that are meant
// to be shared (bundles, stick images,
// reports) are made with 0644, so the umask, not ferry, decides.
func CreateTempPerm(path string, perm fs.FileMode) (*os.File, error) {
	prefix := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".")
	for range 10000 {
		name := prefix + strconv.FormatUint(uint64(rand.Uint32()), 10) + ".tmp"
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, err
	}
	return nil, &fs.PathError{Op: "createtemp", Path: prefix + "*.tmp", Err: fs.ErrExist}
}

// Commit syncs and closes f (made by CreateTemp), renames it to path and
// syncs the directory. On error f is closed and removed.
func Commit(f *os.File, path string) (err error) {
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// WriteFile replaces path with data durably. perm applies to a new file; an
// existing file's permissions are kept.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	if fi, err := os.Stat(path); err == nil {
		perm = fi.Mode().Perm()
	}
	f, err := CreateTemp(path)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	return Commit(f, path)
}

// SyncDir fsyncs a directory, making renames and creations in it durable.
// Filesystems that cannot sync a directory (EINVAL) are tolerated.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) && !errors.Is(err, errEINVAL) {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// WriteNew writes data to path, which must not exist yet (keys and new
// trust roots are never replaced by accident): created exclusively with
// perm, written, synced, and its directory synced. An existing path is an
// error wrapping fs.ErrExist and is left untouched; a failed write removes
// the new file.
func WriteNew(path string, data []byte, perm fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return err
	}
	return SyncDir(filepath.Dir(path))
}
