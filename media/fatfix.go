package media

// Workarounds for go-diskfs v1.9.4 (the newest release the module proxy
// serves), all in this file so that they can go together when a fixed
// release is served. Measured with fsck.fat -n 4.2; fatfix_test.go proves
// each one with the real fsck.fat (and fails if a workaround is dropped
// while the defect is still there).
//
//  1. The ".." entry of a directory made directly under the root points to
//     cluster 2 (the root's cluster); the FAT specification, and fsck.fat,
//     want 0 there ("Invalid '..' entry in the second slot", exit 1).
//     Fixed by fixFAT32's post-pass: every ".." entry is set to its
//     parent's cluster, 0 for the root.
//  2. For some sizes fat32.Create makes the FAT two entries too small for
//     the cluster count it declares (a 64 MiB filesystem: "Filesystem has
//     129024 clusters but only space for 129022 FAT entries", exit 1;
//     mtools refuses it too). Upstream: diskfs/go-diskfs issue 418, fixed
//     after v1.9.4. Avoided by size choice: fat32Sectors picks the largest
//     filesystem no larger than the partition for which the arithmetic
//     fat32.Create uses (diskfsGeometry, a copy of it) yields a FAT with
//     room for every cluster, and the partition is made exactly that size.
//     parseBootSector refuses such a filesystem, so the post-pass would
//     catch it.
//  3. The FSInfo sector's free-cluster count is left at 0xFFFFFFFF
//     ("unknown"; fsck.fat warns). Fixed by the post-pass: the count and
//     the next-free hint are set from the FAT, in the FSInfo sector and its
//     backup.
//
// On the read side (fatFile in inspect.go): File.Read returns bytes past
// the end of a file when a read starts inside its last cluster, and cannot
// read an empty file that has no cluster (upstream issue 417); reads are
// cut to the file's size. go-diskfs also trusts what it reads (a circular
// cluster chain makes it loop), so fat.go checks an image first.
//
// Related: fat32.Create computes the FAT size in 16 bits, so it cannot
// make a filesystem above 256 GiB (maxImageSize), and its allocator may
// hand out clusters past the end of the data area when the FAT has spare
// entries and the disk is nearly full; Build leaves headroom, and the
// post-pass refuses an image where that happened.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// errFATTooSmall is workaround 2's defect, caught.
var errFATTooSmall = errors.New("FAT too small for the cluster count (go-diskfs issue 418)")

// maxImageSize is the largest image Build makes (see above).
const maxImageSize = 256 << 30

// minFAT32Clusters is the fewest clusters a FAT32 filesystem may have
// (fewer and it would be read as FAT16).
const minFAT32Clusters = 65525

// diskfsGeometry is the layout go-diskfs v1.9.4's fat32.Create chooses for
// a filesystem of size bytes with 512-byte sectors (a copy of its
// arithmetic, including its 16-bit FAT size).
func diskfsGeometry(size int64) *fatGeometry {
	const mb, gb = 1 << 20, 1 << 30
	var clusterBytes int64
	switch {
	case size <= 260*mb:
		clusterBytes = 512
	case size <= 8*gb:
		clusterBytes = 4 << 10
	case size <= 16*gb:
		clusterBytes = 8 << 10
	case size <= 32*gb:
		clusterBytes = 16 << 10
	default:
		clusterBytes = 32 << 10
	}
	spc := clusterBytes / 512
	total := uint32(size / 512)
	denom := uint32(512*spc) + 8
	spf := uint16((4*(total-32) + denom - 1) / denom)
	return &fatGeometry{
		bytesPerSector: 512, sectorsPerCluster: spc, reservedSectors: 32, numFATs: 2,
		sectorsPerFAT: int64(spf), totalSectors: int64(total), rootCluster: 2,
		fsInfoSector: 1, backupBootSector: 6,
	}
}

// geometryOK reports whether g is a FAT32 filesystem fsck.fat accepts.
func geometryOK(g *fatGeometry) bool {
	data := g.totalSectors - g.reservedSectors - g.numFATs*g.sectorsPerFAT
	return data > 0 && g.clusters() >= minFAT32Clusters && g.fatEntries() >= int64(g.clusters())+2
}

// fat32Sectors returns the largest filesystem size, in 512-byte sectors,
// at most max, for which go-diskfs makes a valid FAT32 (workaround 2), or
// 0 if there is none.
func fat32Sectors(max int64) int64 {
	// A bad size is two entries short, i.e. at most a few sectors of FAT;
	// the next good size is never far below.
	for s := max; s > 0 && s > max-4096; s-- {
		if geometryOK(diskfsGeometry(s * 512)) {
			return s
		}
	}
	return 0
}

// readWriterAt is an image open for the post-pass.
type readWriterAt interface {
	io.ReaderAt
	io.WriterAt
}

// fixFAT32 is the post-pass over a FAT32 filesystem go-diskfs wrote at
// offset off (of size bytes) in f: workarounds 1 and 3, and a check of 2.
// It only changes ".." entries and the FSInfo counts.
func fixFAT32(f readWriterAt, off, size int64) error {
	g, err := parseBootSector(f, off, size)
	if err != nil {
		return err
	}
	t, err := loadFAT(f, off, g)
	if err != nil {
		return err
	}
	if err := fixDotDot(f, t, g.rootCluster, 0, map[uint32]bool{}); err != nil {
		return err
	}
	// Clusters past the data area must be unused (see above).
	raw := make([]byte, 4)
	for c := int64(g.clusters()) + 2; c < g.fatEntries(); c++ {
		if _, err := f.ReadAt(raw, off+g.fatOffset(0)+4*c); err != nil {
			return err
		}
		if binary.LittleEndian.Uint32(raw)&fatMask != 0 {
			return fmt.Errorf("FAT: cluster %d past the end of the data area is in use: the filesystem is full", c)
		}
	}
	free, first := t.free()
	if free == 0 {
		first = 0xffffffff
	}
	sectors := []int64{g.fsInfoSector}
	if g.backupBootSector != 0 {
		sectors = append(sectors, g.backupBootSector+g.fsInfoSector)
	}
	for _, sector := range sectors {
		if err := setFSInfo(f, off+sector*g.bytesPerSector, free, first); err != nil {
			return err
		}
	}
	return nil
}

// fixDotDot walks the tree below the directory at cluster dir and points
// every ".." entry at its parent directory: 0 below the root, the
// directory's first cluster elsewhere (workaround 1).
func fixDotDot(f readWriterAt, t *fatTable, dir uint32, depth int, seen map[uint32]bool) error {
	if depth > 64 {
		return errors.New("directories nested more than 64 deep")
	}
	if seen[dir] {
		return fmt.Errorf("directory at cluster %d is listed twice", dir)
	}
	seen[dir] = true
	subs, _, _, err := t.subdirs(f, dir)
	if err != nil {
		return err
	}
	want := dir
	if depth == 0 {
		want = 0 // the root is cluster 0 in ".." entries
	}
	for _, s := range subs {
		_, _, dotdot, err := t.subdirs(f, s.cluster)
		if err != nil {
			return fmt.Errorf("directory %q: %w", s.name, err)
		}
		if dotdot == nil {
			return fmt.Errorf("directory %q has no '..' entry", s.name)
		}
		if dotdot.cluster != want {
			var b [2]byte
			binary.LittleEndian.PutUint16(b[:], uint16(want>>16))
			if _, err := f.WriteAt(b[:], dotdot.at+20); err != nil {
				return err
			}
			binary.LittleEndian.PutUint16(b[:], uint16(want))
			if _, err := f.WriteAt(b[:], dotdot.at+26); err != nil {
				return err
			}
		}
		if err := fixDotDot(f, t, s.cluster, depth+1, seen); err != nil {
			return err
		}
	}
	return nil
}

// setFSInfo sets the free-cluster count and next-free hint of the FSInfo
// sector at off (workaround 3).
func setFSInfo(f readWriterAt, off int64, free, next uint32) error {
	b := make([]byte, 512)
	if _, err := f.ReadAt(b, off); err != nil {
		return fmt.Errorf("read FSInfo: %w", err)
	}
	le := binary.LittleEndian
	if le.Uint32(b[0:]) != 0x41615252 || le.Uint32(b[484:]) != 0x61417272 || le.Uint32(b[508:]) != 0xaa550000 {
		return fmt.Errorf("FSInfo sector at byte %d has no signature", off)
	}
	le.PutUint32(b[488:], free)
	le.PutUint32(b[492:], next)
	_, err := f.WriteAt(b[488:496], off+488)
	return err
}
