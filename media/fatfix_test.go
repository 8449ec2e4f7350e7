package media

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/partition/gpt"
)

// rawDiskfsImage formats a GPT image whose one partition is exactly fsSize
// bytes with go-diskfs alone (no size choice, no post-pass) and makes a
// directory under the root, as Build does.
func rawDiskfsImage(t *testing.T, fsSize int64) (string, int64) {
	t.Helper()
	img := filepath.Join(t.TempDir(), "raw.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size := fsSize + 2<<20
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	d, err := diskfs.OpenBackend(file.New(f, false), diskfs.WithSectorSize(sectorSize))
	if err != nil {
		t.Fatal(err)
	}
	err = d.Partition(&gpt.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true, Partitions: []*gpt.Partition{
		{Index: 1, Start: partitionStart, End: uint64(partitionStart + fsSize/512 - 1), Size: uint64(fsSize), Type: gpt.MicrosoftBasicData},
	}})
	if err != nil {
		t.Fatal(err)
	}
	fs, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 1, FSType: filesystem.TypeFat32, VolumeLabel: "RAW"})
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.Mkdir("/ferry/blobs"); err != nil {
		t.Fatal(err)
	}
	return img, partitionStart * sectorSize
}

// TestDiskfsDefects shows that go-diskfs v1.9.4 still has each defect
// fatfix.go works around: when this test fails, a release has fixed one,
// and its workaround can go.
func TestDiskfsDefects(t *testing.T) {
	needTool(t, "fsck.fat")
	img, off := rawDiskfsImage(t, 63<<20)
	out, err := fsck(t, img, off, 63<<20)
	if err == nil || !strings.Contains(out, "Invalid '..' entry in the second slot") {
		t.Errorf("defect 1 (.. to cluster 2) is gone:\n%s", out)
	}
	if !strings.Contains(out, "Free cluster summary uninitialized") {
		t.Errorf("defect 3 (FSInfo free count unset) is gone:\n%s", out)
	}
	img, off = rawDiskfsImage(t, 64<<20)
	out, err = fsck(t, img, off, 64<<20)
	if err == nil || !strings.Contains(out, "only space for 129022 FAT entries") {
		t.Errorf("defect 2 (diskfs/go-diskfs issue 418) is gone:\n%s", out)
	}
	// The size choice sees it coming, and so does the post-pass.
	if geometryOK(diskfsGeometry(64 << 20)) {
		t.Error("diskfsGeometry(64 MiB) looks valid")
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := fixFAT32(f, off, 64<<20); err == nil || !strings.Contains(err.Error(), "issue 418") {
		t.Errorf("post-pass over a FAT that is too small: %v", err)
	}
}

// TestPostPass: the post-pass alone makes what go-diskfs wrote pass
// fsck.fat (defects 1 and 3).
func TestPostPass(t *testing.T) {
	needTool(t, "fsck.fat")
	for _, mib := range []int64{63, 65} {
		img, off := rawDiskfsImage(t, mib<<20)
		f, err := os.OpenFile(img, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := fixFAT32(f, off, mib<<20); err != nil {
			t.Fatal(err)
		}
		f.Close()
		fsckClean(t, img, off, mib<<20)
	}
}

// TestSizeChoice: for every filesystem size from 33 MiB to 300 MiB (and
// around the cluster-size steps up to 256 GiB) the size choice lands on
// one whose FAT fits, at most a few sectors below.
func TestSizeChoice(t *testing.T) {
	bad := 0
	check := func(sectors int64) {
		s := fat32Sectors(sectors)
		if s == 0 || s > sectors || sectors-s > 1024 || !geometryOK(diskfsGeometry(s*512)) {
			t.Fatalf("fat32Sectors(%d) = %d", sectors, s)
		}
		if s != sectors {
			bad++
		}
	}
	for s := int64(33 << 11); s <= 300<<11; s++ {
		check(s)
	}
	for _, gib := range []int64{1, 8, 16, 32, 64, 128, 255} {
		for d := int64(-3000); d < 3000; d++ {
			check(gib<<21 + d)
		}
	}
	if bad == 0 {
		t.Error("no size needed the workaround: is diskfsGeometry still go-diskfs's arithmetic?")
	}
	if fat32Sectors(20<<11) != 0 {
		t.Error("a 20 MiB FAT32 passed (too few clusters)")
	}
}
