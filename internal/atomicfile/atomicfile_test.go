package atomicfile_test

import (
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
