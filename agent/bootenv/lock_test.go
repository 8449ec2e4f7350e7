package bootenv

import (
	"os"
	"path/filepath"
	"testing"
)

// TestLockFileCreatesDir: a missing lock directory (/run/lock early in boot)
// is created rather than failing every read of the boot environment.
func TestLockFileCreatesDir(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "run", "lock")
	// As on Debian: /var/lock -> /run/lock, and /run/lock not made yet.
	if err := os.Mkdir(filepath.Join(root, "var"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../run/lock", filepath.Join(root, "var", "lock")); err != nil {
		t.Fatal(err)
	}
	unlock, err := lockFile(filepath.Join(root, "var", "lock", "fw_printenv.lock"))
	if err != nil {
		t.Fatalf("lock in a missing directory: %v", err)
	}
	unlock()
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&os.ModeSticky == 0 || st.Mode().Perm() != 0o777 {
		t.Errorf("lock directory mode %v, want sticky 0777 like /run/lock", st.Mode())
	}
}
