package bundle

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ferry-update/ferry/internal/atomicfile"
)

// ExtractPayload writes a payload into dir only once all of it has been
// checked: a rootfs payload as <name>.img, a module payload as <name>.tar,
// a files payload as the tree <name>/. It writes beside the final name and
// renames at the end, so a failed check leaves nothing behind.
func ExtractPayload(p *PayloadReader, dir string) (string, error) {
	var final string
	switch p.Type {
	case Rootfs:
		final = filepath.Join(dir, p.Name+".img")
	case Module:
		final = filepath.Join(dir, p.Name+".tar")
	default:
		final = filepath.Join(dir, p.Name)
	}
	if _, err := os.Lstat(final); err == nil {
		return "", fmt.Errorf("extract %s: %s already exists", p.Name, final)
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
		return "", fmt.Errorf("extract %s: %w", p.Name, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("extract %s: %w", p.Name, err)
	}
	return final, atomicfile.SyncDir(dir)
}

func extractFileTo(p *PayloadReader, path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, p)
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
		if _, derr := io.Copy(io.Discard, p); derr != nil {
			return derr
		}
		return err
	}
	// The tar stream may end before the payload's last bytes (padding);
	// reading to EOF is what checks the digest.
	_, err := io.Copy(io.Discard, p)
	return err
}
