package qemu

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ferry-update/ferry/internal/testtool"
)

// TestGenimageLayout runs Buildroot's genimage on genimage.cfg with the
// partition images mkimage.sh built, and requires the same disk as
// mkimage.sh disk: the same partitions (number, start, size, type, GUID,
// name) holding the same bytes.
func TestGenimageLayout(t *testing.T) {
	testtool.Require(t, "genimage", "genimage")
	f := getFixture(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	for _, d := range []string{in, filepath.Join(dir, "root"), filepath.Join(dir, "tmp")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i, name := range []string{"esp.img", "rootfs-a.img", "rootfs-b.img", "data.img"} {
		if err := os.Symlink(f.parts[i], filepath.Join(in, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := run(dir, nil, "genimage", "--config", here("genimage.cfg"), "--inputpath", in,
		"--outputpath", filepath.Join(dir, "out"), "--rootpath", filepath.Join(dir, "root"),
		"--tmppath", filepath.Join(dir, "tmp")); err != nil {
		t.Fatal(err)
	}
	got := filepath.Join(dir, "out", "disk.img")
	for n := 1; n <= 4; n++ {
		want := partInfo(t, f.disk, n)
		if g := partInfo(t, got, n); !bytes.Equal(g, want) {
			t.Errorf("partition %d: genimage made\n%s\nmkimage.sh made\n%s", n, g, want)
		}
	}
	// The contents: each partition's bytes at the same offset.
	a, err := os.ReadFile(f.disk)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	const first, last = 1 << 20, 161 << 20 // the partitions' span
	if len(b) < last || !bytes.Equal(a[first:last], b[first:last]) {
		t.Error("the partitions' contents differ between genimage and mkimage.sh")
	}
}

// partInfo is sgdisk's description of partition n of a disk image.
func partInfo(t *testing.T, disk string, n int) []byte {
	t.Helper()
	out, err := exec.Command("sgdisk", "-i", fmt.Sprint(n), disk).Output()
	if err != nil {
		t.Fatalf("sgdisk -i %d %s: %v", n, disk, err)
	}
	return out
}
