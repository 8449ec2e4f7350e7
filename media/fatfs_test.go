package media

import (
	"errors"
	"io"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/ferry-update/ferry/transport/stick"
)

// TestFatFSNotExist: a missing file or directory on a stick image is
// fs.ErrNotExist, found through the directory listing rather than by
// reading go-diskfs's error text; an entry that exists but cannot be
// opened as asked is some other error; FAT names match without regard to
// case.
func TestFatFSNotExist(t *testing.T) {
	_, paths, _ := testBundles(t)
	img := filepath.Join(t.TempDir(), "stick.img")
	if _, err := Build(img, paths[:1], BuildOptions{}); err != nil {
		t.Fatal(err)
	}
	m, err := openImage(img)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	fsys := m.sub(stick.Dir).(fs.ReadDirFS)

	for _, name := range []string{"index.json", "INDEX.JSON", "blobs/sha256"} {
		if name == "blobs/sha256" {
			if _, err := fsys.ReadDir(name); err != nil {
				t.Errorf("ReadDir(%s): %v", name, err)
			}
			continue
		}
		f, err := fsys.Open(name)
		if err != nil {
			t.Errorf("Open(%s): %v", name, err)
			continue
		}
		if _, err := io.ReadAll(f); err != nil {
			t.Errorf("read %s: %v", name, err)
		}
		f.Close()
	}
	for _, tc := range []struct {
		op, name string
		missing  bool
	}{
		{"open", "nope.json", true},
		{"open", "nodir/x.json", true},
		{"open", "blobs/sha256/0000", true},
		{"readdir", "nodir", true},
		{"readdir", "blobs/nodir", true},
		{"readdir", "index.json", false}, // a file, not missing
	} {
		var err error
		if tc.op == "open" {
			_, err = fsys.Open(tc.name)
		} else {
			_, err = fsys.ReadDir(tc.name)
		}
		var pe *fs.PathError
		if err == nil || !errors.As(err, &pe) || pe.Op != tc.op || pe.Path != tc.name {
			t.Errorf("%s %s: %v, want a *fs.PathError for it", tc.op, tc.name, err)
		}
		if got := errors.Is(err, fs.ErrNotExist); got != tc.missing {
			t.Errorf("%s %s: %v; errors.Is(err, fs.ErrNotExist) = %v, want %v", tc.op, tc.name, err, got, tc.missing)
		}
	}
}
