package bootenv

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEncodeGrubEnv(t *testing.T) {
	tests := []struct {
		name string
		vars map[string]string
		want string // after the header, before the padding
		err  error
	}{
		{"empty", nil, "", nil},
		{"sorted", map[string]string{"b": "2", "a": "1"}, "a=1\nb=2\n", nil},
		{"escapes", map[string]string{"v": "a\\b\nc"}, "v=a\\\\b\\\nc\n", nil},
		{"spaces, = and #", map[string]string{"v": " x = y # z "}, "v= x = y # z \n", nil},
		{"empty value", map[string]string{"e": ""}, "e=\n", nil},
		{"trailing backslash", map[string]string{"v": "x\\"}, "v=x\\\\\n", nil},
		{"newline in name", map[string]string{"a\nb": "1"}, "", ErrInvalidVar},
		{"comment name", map[string]string{"#a": "1"}, "", ErrInvalidVar},
		{"= in name", map[string]string{"a=b": "1"}, "", ErrInvalidVar},
		{"NUL in value", map[string]string{"a": "\x00"}, "", ErrInvalidVar},
		{"too large", map[string]string{"a": strings.Repeat("x", 1024)}, "", ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := encodeGrubEnv(tt.vars, DefaultGrubEnvSize)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if len(b) != DefaultGrubEnvSize {
				t.Fatalf("size %d", len(b))
			}
			want := grubEnvHeader + tt.want
			if got := string(b[:len(want)]); got != want {
				t.Errorf("got %q, want %q", got, want)
			}
			if pad := strings.Trim(string(b[len(want):]), "#"); pad != "" {
				t.Errorf("padding contains %q", pad)
			}
			vars, err := decodeGrubEnv(b)
			if err != nil {
				t.Fatal(err)
			}
			if len(tt.vars) != 0 && !maps.Equal(vars, tt.vars) {
				t.Errorf("round trip = %q, want %q", vars, tt.vars)
			}
		})
	}
	// Exactly full: no padding at all is still a valid block.
	full := map[string]string{"a": strings.Repeat("x", DefaultGrubEnvSize-len(grubEnvHeader)-3)}
	b, err := encodeGrubEnv(full, DefaultGrubEnvSize)
	if err != nil || b[len(b)-1] != '\n' {
		t.Fatalf("full block: %v", err)
	}
	if vars, _ := decodeGrubEnv(b); !maps.Equal(vars, full) {
		t.Error("full block does not round-trip")
	}
}

func TestDecodeGrubEnv(t *testing.T) {
	sig := grubEnvSignature
	tests := []struct {
		name  string
		block string
		want  map[string]string
		err   error
	}{
		{"vars and comments", sig + "# c\na=1\nb=x=y\n####", map[string]string{"a": "1", "b": "x=y"}, nil},
		{"escapes", sig + "a=x\\\\y\\\nz\\q\n", map[string]string{"a": "x\\y\nzq"}, nil},
		{"duplicate: last wins", sig + "a=1\na=2\n", map[string]string{"a": "2"}, nil},
		{"escaped newline in comment", sig + "# c\\\na=1\nb=2\n", map[string]string{"b": "2"}, nil},
		{"name across lines", sig + "x\ny=1\n", map[string]string{"x\ny": "1"}, nil},
		{"cut off entry ignored", sig + "a=1\nb=2", map[string]string{"a": "1"}, nil},
		{"cut off escape", sig + "a=1\\", map[string]string{}, nil},
		{"no =", sig + "abc", map[string]string{}, nil},
		{"NUL ends strings", sig + "a\x00b=1\x002\n", map[string]string{"a": "1"}, nil},
		{"empty name skipped", sig + "=1\n", map[string]string{}, nil},
		{"signature only", sig, nil, ErrNoValidEnv},
		{"no signature", "a=1\n", nil, ErrNoValidEnv},
		{"empty", "", nil, ErrNoValidEnv},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars, err := decodeGrubEnv([]byte(tt.block))
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err == nil && !maps.Equal(vars, tt.want) {
				t.Errorf("got %q, want %q", vars, tt.want)
			}
		})
	}
}

func TestGrubEnvFile(t *testing.T) {
	dir := t.TempDir()
	g := &GrubEnv{Path: filepath.Join(dir, "grubenv")}
	if _, err := g.Load(); !errors.Is(err, ErrNoValidEnv) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
	mustSave(t, g, map[string]string{"a": "1"})
	if got := mustLoad(t, g); !maps.Equal(got, map[string]string{"a": "1"}) {
		t.Errorf("got %q", got)
	}
	// An existing block is overwritten in place, as GRUB's save_env does:
	// the same file (a rename on the FAT ESP is not durable; see Save).
	before, _ := os.Stat(g.Path)
	mustSave(t, g, map[string]string{"a": "2"})
	if after, _ := os.Stat(g.Path); !os.SameFile(before, after) {
		t.Error("Save replaced the block's file instead of writing it in place")
	}
	if got := mustLoad(t, g); !maps.Equal(got, map[string]string{"a": "2"}) {
		t.Errorf("got %q", got)
	}
	// An existing block keeps its size.
	os.WriteFile(g.Path, []byte(grubEnvSignature+strings.Repeat("#", 2048-len(grubEnvSignature))), 0o600)
	os.Chmod(g.Path, 0o600)
	mustSave(t, g, map[string]string{"a": strings.Repeat("x", 1500)})
	fi, _ := os.Stat(g.Path)
	if fi.Size() != 2048 || fi.Mode().Perm() != 0o600 {
		t.Errorf("size %d mode %v, want 2048 and 0600 kept", fi.Size(), fi.Mode())
	}
	err := g.Save(map[string]string{"a": strings.Repeat("x", 3000)})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), g.Path) {
		t.Errorf("too large: %v", err)
	}
	if len(mustLoad(t, g)["a"]) != 1500 {
		t.Error("a failed save changed the block")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
}
