//go:build unix

package atomicfile_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/ferry-update/ferry/internal/atomicfile"
)

// TestCreateTempPerm: shared artifacts get perm less the umask (this test
// process's umask is set to 022 and 027 in turn), not CreateTemp's 0600.
func TestCreateTempPerm(t *testing.T) {
	for _, tc := range []struct {
		umask int
		want  os.FileMode
	}{{0o022, 0o644}, {0o027, 0o640}, {0o077, 0o600}} {
		old := syscall.Umask(tc.umask)
		dir := t.TempDir()
		p := filepath.Join(dir, "b.ferry")
		f, err := atomicfile.CreateTempPerm(p, 0o644)
		syscall.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Dir(f.Name()) != dir || f.Name() == p {
			t.Errorf("temporary file %s: want one beside %s", f.Name(), p)
		}
		if err := atomicfile.Commit(f, p); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != tc.want {
			t.Errorf("umask %03o: mode %v, want %v", tc.umask, fi.Mode().Perm(), tc.want)
		}
	}
}
