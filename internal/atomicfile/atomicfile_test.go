package atomicfile_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferry-update/ferry/internal/atomicfile"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	tests := []struct {
		name     string
		data     string
		perm     os.FileMode
		wantPerm os.FileMode
	}{
		{"new file gets perm", "one", 0o600, 0o600},
		{"replacing keeps the old perm", "two", 0o644, 0o600},
	}
	for _, tt := range tests {
		if err := atomicfile.WriteFile(p, []byte(tt.data), tt.perm); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		got, _ := os.ReadFile(p)
		fi, _ := os.Stat(p)
		if string(got) != tt.data || fi.Mode().Perm() != tt.wantPerm {
			t.Errorf("%s: content %q perm %v, want %q %v", tt.name, got, fi.Mode().Perm(), tt.data, tt.wantPerm)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestWriteFileMissingDir(t *testing.T) {
	err := atomicfile.WriteFile(filepath.Join(t.TempDir(), "no", "such", "file"), []byte("x"), 0o644)
	if err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}

// A temporary file left by a power cut is removed; files of other names,
// directories and symbolic links (even ones of the pattern) are left.
func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	f, err := atomicfile.CreateTemp(filepath.Join(dir, "journal.json"))
	if err != nil {
		t.Fatal(err)
	}
	f.Close() // the power cut: never committed
	stale := filepath.Base(f.Name())
	target := filepath.Join(t.TempDir(), "elsewhere.1.tmp")
	os.WriteFile(target, []byte("not ours"), 0o600)
	keep := []string{"journal.json", ".journal.json.tmp", "x.123.tmp", ".lock", ".dir.42.tmp", ".link.7.tmp"}
	os.WriteFile(filepath.Join(dir, "journal.json"), []byte("{}"), 0o600)
	os.WriteFile(filepath.Join(dir, ".journal.json.tmp"), nil, 0o600)
	os.WriteFile(filepath.Join(dir, "x.123.tmp"), nil, 0o600)
	os.WriteFile(filepath.Join(dir, ".lock"), nil, 0o600)
	os.Mkdir(filepath.Join(dir, ".dir.42.tmp"), 0o700)
	os.Symlink(target, filepath.Join(dir, ".link.7.tmp"))

	removed, err := atomicfile.RemoveStale(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != stale {
		t.Errorf("removed %q, want [%s]", removed, stale)
	}
	for _, n := range keep {
		if _, err := os.Lstat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	if _, err := os.Stat(target); err != nil {
		t.Errorf("the link's target: %v", err)
	}
	if removed, err := atomicfile.RemoveStale(filepath.Join(dir, "missing")); err != nil || removed != nil {
		t.Errorf("missing dir: %q, %v", removed, err)
	}
}

// TestWriteNew: a new file gets the data and mode; an existing one is
// refused with fs.ErrExist and left as it was.
func TestWriteNew(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "k.key")
	if err := atomicfile.WriteNew(p, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "secret" {
		t.Fatalf("read back %q, %v", b, err)
	}
	if st, err := os.Stat(p); err != nil || st.Mode().Perm()&0o077 != 0 {
		t.Errorf("mode %v, %v: want no group or other bits", st.Mode(), err)
	}
	err := atomicfile.WriteNew(p, []byte("other"), 0o644)
	if !errors.Is(err, fs.ErrExist) {
		t.Errorf("WriteNew over an existing file: %v, want fs.ErrExist", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "secret" {
		t.Errorf("the existing file became %q", b)
	}
	if err := atomicfile.WriteNew(filepath.Join(dir, "missing", "x"), nil, 0o644); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("WriteNew in a missing directory: %v", err)
	}
}
