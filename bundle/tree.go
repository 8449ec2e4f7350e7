package bundle

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// TarTree streams the directory tree under dir as a tar archive, the content
// of a files or module payload. Entries come in lexical order; regular
// files, directories and symbolic links are kept with their modes, numeric
// owners and modification times (whole seconds; no access or change times);
// anything else (devices, sockets) is an error. A non-zero clamp caps every
// modification time, as SOURCE_DATE_EPOCH asks, so a tree checked out at
// another time packs to the same bytes.
func TarTree(dir string, clamp time.Time) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(writeTree(pw, dir, clamp))
	}()
	return pr
}

func writeTree(w io.Writer, dir string, clamp time.Time) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		var link string
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		} else if !info.Mode().IsRegular() && !info.IsDir() {
			return fmt.Errorf("%s: %s is not a regular file, directory or symlink", p, info.Mode().Type())
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		hdr.Name = filepath.ToSlash(rel)
		if info.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
		hdr.ModTime = hdr.ModTime.Truncate(time.Second)
		if !clamp.IsZero() && hdr.ModTime.After(clamp) {
			hdr.ModTime = clamp
		}
		hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if info.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pack %s: %w", dir, err)
	}
	return tw.Close()
}

// ExtractTree unpacks a tar stream made by TarTree into dir, which must
// exist. Every entry stays inside dir: absolute names, ".." and links that
// would lead out are refused (the root is opened with os.OpenRoot, so even a
// symlink planted earlier in the stream cannot be followed outside). Sparse
// entries are refused, so a small stream cannot expand into a huge file.
// Ownership is kept only when running as root. Directory modes and times
// are applied last, deepest first, so a read-only directory is still filled.
func ExtractTree(r io.Reader, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("extract into %s: %w", dir, err)
	}
	defer root.Close()
	tr := tar.NewReader(r)
	x := &extractor{root: root, asRoot: os.Geteuid() == 0}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("extract into %s: %w", dir, err)
		}
		name, err := cleanName(hdr.Name)
		if err != nil {
			return fmt.Errorf("extract into %s: %w", dir, err)
		}
		if name == "." {
			continue
		}
		if err := x.entry(tr, hdr, name); err != nil {
			return fmt.Errorf("extract %s into %s: %w", name, dir, err)
		}
	}
	if err := x.finishDirs(); err != nil {
		return fmt.Errorf("extract into %s: %w", dir, err)
	}
	return nil
}

func cleanName(n string) (string, error) {
	if strings.HasPrefix(n, "/") || strings.Contains(n, "\\") {
		return "", fmt.Errorf("entry %q: absolute or non-portable name", n)
	}
	c := path.Clean(n)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("entry %q leads outside the tree", n)
	}
	return c, nil
}

type extractor struct {
	root   *os.Root
	asRoot bool
	dirs   []*tar.Header // applied by finishDirs
}

func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

func (x *extractor) entry(tr *tar.Reader, hdr *tar.Header, name string) error {
	if isSparse(hdr) {
		return errors.New("sparse entries are not allowed in a files payload")
	}
	if dir := path.Dir(name); dir != "." {
		if err := x.root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := x.root.Mkdir(name, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		h := *hdr
		h.Name = name
		x.dirs = append(x.dirs, &h)
		return nil
	case tar.TypeReg:
		f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if err := copySync(f, tr); err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := x.root.Symlink(hdr.Linkname, name); err != nil {
			return err
		}
		if x.asRoot {
			return x.root.Lchown(name, hdr.Uid, hdr.Gid)
		}
		return nil
	default:
		return fmt.Errorf("tar entry type %q not allowed in a files payload", hdr.Typeflag)
	}
	return x.setAttrs(hdr, name)
}

func (x *extractor) setAttrs(hdr *tar.Header, name string) error {
	if x.asRoot {
		if err := x.root.Lchown(name, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
	}
	// FileInfo().Mode() maps tar's 04000/02000/01000 to Go's setuid,
	// setgid and sticky bits; chmod after chown, which clears them.
	mode := hdr.FileInfo().Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	if err := x.root.Chmod(name, mode); err != nil {
		return err
	}
	return x.root.Chtimes(name, hdr.ModTime, hdr.ModTime)
}

func (x *extractor) finishDirs() error {
	// Deepest first, so setting a parent's time is the last change in it.
	slices.SortStableFunc(x.dirs, func(a, b *tar.Header) int {
		return strings.Count(b.Name, "/") - strings.Count(a.Name, "/")
	})
	for _, h := range x.dirs {
		if err := x.setAttrs(h, h.Name); err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
	}
	return nil
}
