package module

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxFiles is the most files a payload may hand a module.
const MaxFiles = 4096

// TarFiles reads the content of a module payload, a tar stream, as the
// sequence of files handed to the module. Only regular files at the top of
// the archive are payload files (a "./" prefix is dropped); a root directory
// entry and PAX global headers are skipped; any other entry (a
// subdirectory, a link, a device), an unsafe name, a repeated name or more
// than MaxFiles files is an error. After the end of the archive the rest of
// r is read and discarded, so that a verifying reader under it reaches
// end-of-file and checks its digest.
func TarFiles(r io.Reader) FileSource {
	return &tarFiles{r: r, tr: tar.NewReader(r), seen: map[string]bool{}}
}

type tarFiles struct {
	r    io.Reader
	tr   *tar.Reader
	seen map[string]bool
	err  error // sticky: io.EOF at the end, or the first error
}

func (t *tarFiles) Next() (File, io.Reader, error) {
	if t.err != nil {
		return File{}, nil, t.err
	}
	f, err := t.next()
	if err != nil {
		t.err = err
		return File{}, nil, err
	}
	return f, t.tr, nil
}

func (t *tarFiles) next() (File, error) {
	for {
		h, err := t.tr.Next()
		if err == io.EOF {
			if _, err := io.Copy(io.Discard, t.r); err != nil {
				return File{}, fmt.Errorf("reading past the end of the payload archive: %w", err)
			}
			return File{}, io.EOF
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return File{}, fmt.Errorf("payload archive is truncated: %w", err)
			}
			return File{}, fmt.Errorf("reading payload archive: %w", err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		switch h.Typeflag {
		case tar.TypeXGlobalHeader:
			continue
		case tar.TypeDir:
			if name == "" || name == "." || name == "./" {
				continue
			}
			return File{}, fmt.Errorf("payload archive entry %q is a directory: an update module gets plain files only", h.Name)
		case tar.TypeReg:
		default:
			return File{}, fmt.Errorf("payload archive entry %q has type %q: an update module gets plain files only", h.Name, h.Typeflag)
		}
		if err := checkFileName(name); err != nil {
			return File{}, fmt.Errorf("payload archive entry: %w", err)
		}
		if t.seen[name] {
			return File{}, fmt.Errorf("payload archive has %q twice", name)
		}
		if len(t.seen) >= MaxFiles {
			return File{}, fmt.Errorf("payload archive has more than %d files", MaxFiles)
		}
		t.seen[name] = true
		return File{Name: name, Size: h.Size}, nil
	}
}
