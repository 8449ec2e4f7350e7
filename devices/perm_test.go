//go:build unix

package devices

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-update/ferry/transport/checkin"
)

// TestDevicesFileMode: the check-in database, with its -wal and -shm
// files, is not readable by other users even under a permissive umask,
// and an older world-readable one is narrowed when opened.
func TestDevicesFileMode(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	for _, tc := range []struct {
		name string
		pre  os.FileMode // 0: no database yet
	}{{"new", 0}, {"made world-readable by an older ferry", 0o644}} {
		path := filepath.Join(t.TempDir(), File)
		if tc.pre != 0 {
			d, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			d.Close()
			for _, p := range []string{path, path + "-wal", path + "-shm"} {
				if err := os.Chmod(p, tc.pre); err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
			}
		}
		d, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		r := &checkin.Report{DeviceID: "gw-0001", DeviceType: "board-a", Bundle: "gateway", Version: "1.0.0", Result: "committed", Time: time.Now()}
		if err := d.Record(r, time.Now(), "127.0.0.1"); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s: %s has mode %v, want no access for group and others", tc.name, filepath.Base(p), fi.Mode().Perm())
			}
		}
		d.Close()
	}
}
