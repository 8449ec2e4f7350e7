//go:build unix

package media

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestArtifactModes: bundles and stick images are ordinary files, made
// with 0644 less the umask (not 0600), so they can be shared without a
// chmod.
func TestArtifactModes(t *testing.T) {
	for _, tc := range []struct {
		umask int
		want  os.FileMode
	}{{0o022, 0o644}, {0o027, 0o640}} {
		old := syscall.Umask(tc.umask)
		dir := t.TempDir()
		key := newKey(t, dir, "release")
		b := makeBundle(t, dir, "gateway", "1.0.0", []string{"board-a"}, 4<<10, 0, key)
		img := filepath.Join(dir, "stick.img")
		_, err := Build(img, []string{b}, BuildOptions{})
		syscall.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{b, img} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != tc.want {
				t.Errorf("umask %03o: %s has mode %v, want %v", tc.umask, filepath.Base(p), fi.Mode().Perm(), tc.want)
			}
		}
	}
}
