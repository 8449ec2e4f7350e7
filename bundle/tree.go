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
	"strings"
)

// TarTree streams the directory tree under dir as a tar archive, the content
// of a files or module payload. Entries come in lexical order; regular
// files, directories and symbolic links are kept with their modes, numeric
// owners and times; anything else (devices, sockets) is an error.
func TarTree(dir string) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(writeTree(pw, dir))
	}()
	return pr
}

func writeTree(w io.Writer, dir string) error {
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
// symlink planted earlier in the stream cannot be followed outside).
// Ownership is kept only when running as root.
func ExtractTree(r io.Reader, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("extract into %s: %w", dir, err)
	}
	defer root.Close()
	tr := tar.NewReader(r)
	asRoot := os.Geteuid() == 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
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
		if err := extractEntry(root, tr, hdr, name, asRoot); err != nil {
			return fmt.Errorf("extract %s into %s: %w", name, dir, err)
		}
	}
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

func extractEntry(root *os.Root, tr *tar.Reader, hdr *tar.Header, name string, asRoot bool) error {
	mode := fs.FileMode(hdr.Mode) & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	if dir := path.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := root.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	case tar.TypeReg:
		f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, tr)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := root.Symlink(hdr.Linkname, name); err != nil {
			return err
		}
		if asRoot {
			return root.Lchown(name, hdr.Uid, hdr.Gid)
		}
		return nil
	default:
		return fmt.Errorf("tar entry type %q not allowed in a files payload", hdr.Typeflag)
	}
	if asRoot {
		if err := root.Lchown(name, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
	}
	if err := root.Chmod(name, mode); err != nil {
		return err
	}
	return root.Chtimes(name, hdr.AccessTime, hdr.ModTime)
}
