package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
)

// A small reader of FAT32 structures, independent of go-diskfs: it checks
// an image before go-diskfs reads it (go-diskfs trusts what it reads, and a
// cyclic cluster chain would make it loop forever) and it is what the
// post-pass of fatfix.go edits with.

// FAT32 entry values.
const (
	fatMask = 0x0fffffff
	fatBad  = 0x0ffffff7
	fatEOC  = 0x0ffffff8 // and above
)

// maxFATBytes bounds the FAT a reader loads (2 TiB of 32 KiB clusters).
const maxFATBytes = 256 << 20

// errNotFAT32 is wrapped by parseBootSector's errors.
var errNotFAT32 = errors.New("not a FAT32 filesystem")

// fatGeometry is the layout a FAT32 boot sector declares.
type fatGeometry struct {
	bytesPerSector    int64
	sectorsPerCluster int64
	reservedSectors   int64
	numFATs           int64
	sectorsPerFAT     int64
	totalSectors      int64
	rootCluster       uint32
	fsInfoSector      int64
	backupBootSector  int64
	label             string
}

func (g *fatGeometry) clusterBytes() int64 { return g.bytesPerSector * g.sectorsPerCluster }
func (g *fatGeometry) fatOffset(i int64) int64 {
	return (g.reservedSectors + i*g.sectorsPerFAT) * g.bytesPerSector
}
func (g *fatGeometry) dataOffset() int64 { return g.fatOffset(g.numFATs) }

// clusters is the number of data clusters (numbered 2 to clusters+1).
func (g *fatGeometry) clusters() uint32 {
	return uint32((g.totalSectors - g.reservedSectors - g.numFATs*g.sectorsPerFAT) / g.sectorsPerCluster)
}

// fatEntries is how many entries one FAT has room for.
func (g *fatGeometry) fatEntries() int64 { return g.sectorsPerFAT * g.bytesPerSector / 4 }

func (g *fatGeometry) clusterOffset(c uint32) int64 {
	return g.dataOffset() + int64(c-2)*g.clusterBytes()
}

// parseBootSector reads the boot sector of the FAT32 filesystem at off and
// checks that its geometry is consistent and fits in size bytes.
func parseBootSector(r io.ReaderAt, off, size int64) (*fatGeometry, error) {
	b := make([]byte, 512)
	if _, err := r.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("read boot sector: %w", err)
	}
	le := binary.LittleEndian
	if b[510] != 0x55 || b[511] != 0xaa {
		return nil, fmt.Errorf("%w: no boot sector signature", errNotFAT32)
	}
	g := &fatGeometry{
		bytesPerSector:    int64(le.Uint16(b[11:])),
		sectorsPerCluster: int64(b[13]),
		reservedSectors:   int64(le.Uint16(b[14:])),
		numFATs:           int64(b[16]),
		sectorsPerFAT:     int64(le.Uint32(b[36:])),
		totalSectors:      int64(le.Uint32(b[32:])),
		rootCluster:       le.Uint32(b[44:]),
		fsInfoSector:      int64(le.Uint16(b[48:])),
		backupBootSector:  int64(le.Uint16(b[50:])),
	}
	if b[66] == 0x29 {
		g.label = string(b[71:82])
	}
	switch {
	case le.Uint16(b[22:]) != 0 || le.Uint16(b[17:]) != 0:
		return nil, fmt.Errorf("%w: it is FAT12 or FAT16 (ferry sticks are FAT32)", errNotFAT32)
	case g.bytesPerSector < 512 || g.bytesPerSector > 4096 || bits.OnesCount64(uint64(g.bytesPerSector)) != 1:
		return nil, fmt.Errorf("%w: %d bytes per sector", errNotFAT32, g.bytesPerSector)
	case g.sectorsPerCluster == 0 || bits.OnesCount64(uint64(g.sectorsPerCluster)) != 1:
		return nil, fmt.Errorf("%w: %d sectors per cluster", errNotFAT32, g.sectorsPerCluster)
	case g.reservedSectors == 0 || g.numFATs < 1 || g.numFATs > 2 || g.sectorsPerFAT == 0:
		return nil, fmt.Errorf("%w: %d reserved sectors, %d FATs of %d sectors", errNotFAT32, g.reservedSectors, g.numFATs, g.sectorsPerFAT)
	case g.totalSectors == 0 && le.Uint16(b[19:]) != 0:
		return nil, fmt.Errorf("%w: 16-bit sector count", errNotFAT32)
	case g.sectorsPerFAT*g.bytesPerSector > maxFATBytes:
		return nil, fmt.Errorf("%w: a FAT of %d bytes (at most %d)", errNotFAT32, g.sectorsPerFAT*g.bytesPerSector, maxFATBytes)
	case g.totalSectors <= g.reservedSectors+g.numFATs*g.sectorsPerFAT+g.sectorsPerCluster:
		return nil, fmt.Errorf("%w: %d sectors leave no data area", errNotFAT32, g.totalSectors)
	case g.totalSectors*g.bytesPerSector > size:
		return nil, fmt.Errorf("filesystem of %d bytes does not fit its %d-byte partition (truncated image?)", g.totalSectors*g.bytesPerSector, size)
	}
	if g.fatEntries() < int64(g.clusters())+2 {
		// What go-diskfs v1.9.4 writes for some sizes; see fatfix.go.
		return nil, fmt.Errorf("FAT has room for %d entries, the filesystem has %d clusters: %w", g.fatEntries(), g.clusters(), errFATTooSmall)
	}
	if g.rootCluster < 2 || g.rootCluster > g.clusters()+1 {
		return nil, fmt.Errorf("%w: root directory at cluster %d", errNotFAT32, g.rootCluster)
	}
	return g, nil
}

// fatTable is the first FAT of a filesystem, loaded and checked: every
// entry of a data cluster is free, bad, end of chain or another data
// cluster, and no chain runs in a circle.
type fatTable struct {
	g       *fatGeometry
	off     int64 // of the filesystem in the image
	entries []uint32
}

func loadFAT(r io.ReaderAt, off int64, g *fatGeometry) (*fatTable, error) {
	n := int64(g.clusters()) + 2
	raw := make([]byte, n*4)
	if _, err := r.ReadAt(raw, off+g.fatOffset(0)); err != nil {
		return nil, fmt.Errorf("read FAT: %w", err)
	}
	t := &fatTable{g: g, off: off, entries: make([]uint32, n)}
	last := uint32(n - 1)
	for c := range t.entries {
		v := binary.LittleEndian.Uint32(raw[4*c:]) & fatMask
		t.entries[c] = v
		if c >= 2 && v != 0 && v != fatBad && v < fatEOC && (v < 2 || v > last) {
			return nil, fmt.Errorf("FAT: cluster %d points to %d, outside 2 to %d", c, v, last)
		}
	}
	// Chains are a functional graph: colour each cluster once.
	const (
		unseen = iota
		onPath
		done
	)
	state := make([]uint8, n)
	for start := uint32(2); start <= last; start++ {
		c := start
		for state[c] == unseen && t.next(c) != 0 {
			state[c] = onPath
			c = t.next(c)
		}
		if state[c] == onPath {
			return nil, fmt.Errorf("FAT: the cluster chain through %d runs in a circle", c)
		}
		for c = start; state[c] == onPath; c = t.next(c) {
			state[c] = done
		}
		state[start] = done
	}
	return t, nil
}

// next returns the cluster after c in its chain, 0 at the end of it.
func (t *fatTable) next(c uint32) uint32 {
	v := t.entries[c]
	if v < 2 || v >= fatBad {
		return 0
	}
	return v
}

// chain returns the clusters of the chain that starts at c.
func (t *fatTable) chain(c uint32) ([]uint32, error) {
	if c < 2 || int(c) >= len(t.entries) || t.entries[c] == 0 {
		return nil, fmt.Errorf("cluster %d does not start a chain", c)
	}
	var out []uint32
	for ; c != 0; c = t.next(c) {
		out = append(out, c)
	}
	return out, nil
}

// free counts the free data clusters and finds the first one (0 if none).
func (t *fatTable) free() (count, first uint32) {
	for c := 2; c < len(t.entries); c++ {
		if t.entries[c] == 0 {
			if count == 0 {
				first = uint32(c)
			}
			count++
		}
	}
	return count, first
}

// dirEntry is a short directory entry that names a subdirectory.
type dirEntry struct {
	name    string
	cluster uint32
	at      int64 // image offset of the 32-byte entry
}

// subdirs returns the subdirectories listed in the directory whose chain
// starts at c, and the entries "." and ".." (nil when absent).
func (t *fatTable) subdirs(r io.ReaderAt, c uint32) (subs []dirEntry, dot, dotdot *dirEntry, err error) {
	clusters, err := t.chain(c)
	if err != nil {
		return nil, nil, nil, err
	}
	buf := make([]byte, t.g.clusterBytes())
	for i, cl := range clusters {
		base := t.off + t.g.clusterOffset(cl)
		if _, err := r.ReadAt(buf, base); err != nil {
			return nil, nil, nil, fmt.Errorf("read directory cluster %d: %w", cl, err)
		}
		for o := 0; o+32 <= len(buf); o += 32 {
			e := buf[o : o+32]
			switch {
			case e[0] == 0:
				return subs, dot, dotdot, nil
			case e[0] == 0xe5, e[11] == 0x0f, e[11]&0x08 != 0, e[11]&0x10 == 0:
				continue
			}
			d := dirEntry{
				name:    string(e[0:11]),
				cluster: uint32(binary.LittleEndian.Uint16(e[20:]))<<16 | uint32(binary.LittleEndian.Uint16(e[26:])),
				at:      base + int64(o),
			}
			switch {
			case i == 0 && o == 0 && d.name == ".          ":
				dot = &d
			case i == 0 && o == 32 && d.name == "..         ":
				dotdot = &d
			case e[0] != '.':
				subs = append(subs, d)
			}
		}
	}
	return subs, dot, dotdot, nil
}
