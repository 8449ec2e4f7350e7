package bootenv

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFileEnv(t *testing.T) {
	f := &FileEnv{Path: filepath.Join(t.TempDir(), "env")}
	if _, err := f.Load(); !errors.Is(err, ErrNoValidEnv) {
		t.Fatalf("missing: %v", err)
	}
	vars := map[string]string{"b": " spaced = value ", "a": "1", "e": ""}
	mustSave(t, f, vars)
	b, _ := os.ReadFile(f.Path)
	if want := "a=1\nb= spaced = value \ne=\n"; string(b) != want {
		t.Errorf("file = %q, want %q", b, want)
	}
	if got := mustLoad(t, f); !maps.Equal(got, vars) {
		t.Errorf("got %q", got)
	}
	for _, bad := range []map[string]string{{"a": "x\ny"}, {"#a": "1"}, {"a=b": ""}, {"": "1"}} {
		if err := f.Save(bad); !errors.Is(err, ErrInvalidVar) {
			t.Errorf("Save(%q): %v, want ErrInvalidVar", bad, err)
		}
	}
}

func TestDecodeFileEnv(t *testing.T) {
	tests := []struct {
		in   string
		want map[string]string
		err  string
	}{
		{"", map[string]string{}, ""},
		{"# c\n\na=1\nb=x=y", map[string]string{"a": "1", "b": "x=y"}, ""},
		{"a=1\na=2\n", map[string]string{"a": "2"}, ""},
		{"a=1\nbogus\n", nil, "line 2"},
		{"=1\n", nil, "line 1"},
		{"a=\x00\n", nil, "line 1"},
	}
	for _, tt := range tests {
		got, err := decodeFileEnv(tt.in)
		if tt.err != "" {
			if !errors.Is(err, ErrNoValidEnv) || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: err = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || !maps.Equal(got, tt.want) {
			t.Errorf("%q: %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}
