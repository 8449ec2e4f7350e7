package bundle

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/internal/atomicfile"
)

// ExtractPayload writes a payload into dir only once all of it has been
// checked: a rootfs payload as <name>.img, a module payload as <name>.tar,
// a files payload as the tree <name>/. It writes beside the final name and
// renames at the end, so a failed check leaves nothing behind. Extract also
// waits for the end of the archive.
func ExtractPayload(p *PayloadReader, dir string) (string, error) {
	s, err := stagePayload(p, dir, nil)
	if err != nil {
		return "", err
	}
	if err := s.commit(); err != nil {
		return "", err
	}
	return s.final, atomicfile.SyncDir(dir)
}

// Extracted is a payload Extract wrote.
type Extracted struct {
	Name   string
	Path   string
	Digest digest.Digest
}

// Extract writes every remaining payload of r into dir, named as
// ExtractPayload names them, but puts none of them in place before the
// whole archive has been read and checked, its end included (FORMAT.md
// §3.5): a bundle with a damaged or unaccounted byte anywhere leaves
// nothing behind in dir.
func Extract(r *Reader, dir string) ([]Extracted, error) {
	var staged []*staged
	defer func() {
		for _, s := range staged {
			os.RemoveAll(s.tmp)
		}
	}()
	taken := map[string]bool{}
	for {
		p, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		s, err := stagePayload(p, dir, taken)
		if err != nil {
			return nil, err
		}
		staged = append(staged, s)
	}
	var out []Extracted
	for _, s := range staged {
		if err := s.commit(); err != nil {
			return out, err
		}
		out = append(out, Extracted{Name: s.name, Path: s.final, Digest: s.digest})
	}
	staged = nil
	return out, atomicfile.SyncDir(dir)
}

// staged is a payload written and checked under a temporary name.
type staged struct {
	name       string
	digest     digest.Digest
	tmp, final string
}

func (s *staged) commit() error {
	if err := os.Rename(s.tmp, s.final); err != nil {
		os.RemoveAll(s.tmp)
		return fmt.Errorf("extract %s: %w", s.name, err)
	}
	return nil
}

// stagePayload writes and checks a payload beside its final name in dir.
// taken holds the final names already staged, if any.
func stagePayload(p *PayloadReader, dir string, taken map[string]bool) (*staged, error) {
	var final string
	switch p.Type {
	case Rootfs:
		final = filepath.Join(dir, p.Name+".img")
	case Module:
		final = filepath.Join(dir, p.Name+".tar")
	default:
		final = filepath.Join(dir, p.Name)
	}
	if _, err := os.Lstat(final); err == nil || taken[final] {
		return nil, fmt.Errorf("extract %s: %s already exists", p.Name, final)
	}
	tmp := filepath.Join(dir, "."+filepath.Base(final)+".partial")
	os.RemoveAll(tmp)
	var err error
	if p.Type == Files {
		err = extractTreeTo(p, tmp)
	} else {
		err = extractFileTo(p, tmp)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("extract %s: %w", p.Name, err)
	}
	if taken != nil {
		taken[final] = true
	}
	return &staged{name: p.Name, digest: p.Digest, tmp: tmp, final: final}, nil
}

func extractFileTo(p *PayloadReader, path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	return copySync(f, p)
}

// copySync copies r into the new file f, syncs it to disk and closes it.
func copySync(f *os.File, r io.Reader) error {
	_, err := io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func extractTreeTo(p *PayloadReader, dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	if err := ExtractTree(p, dir); err != nil {
		// A damaged payload often shows first as a broken tar stream;
		// reading on to the end names the part that does not match.
		return PayloadError(p, err)
	}
	// The tar stream may end before the payload's last bytes (padding);
	// reading to EOF is what checks the digest.
	_, err := io.Copy(io.Discard, p)
	return err
}
