package bootenv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"strings"
	"unicode/utf16"
)

// The binary formats of the efi backend: EFI load options (Boot####),
// BootOrder, BootNext and BootCurrent, device paths (UEFI specification
// 2.10, §3.1.3, §3.3, §10.3), and the GPT a new boot entry points into
// (§5.3). Every parser takes untrusted bytes and fails cleanly.

var errEFIFormat = errors.New("malformed EFI data")

// loadOptionActive is LOAD_OPTION_ACTIVE: the firmware boots the entry
// from BootOrder only when it is set.
const loadOptionActive = 0x00000001

// loadOption is an EFI_LOAD_OPTION, the data of a Boot#### variable.
type loadOption struct {
	Attributes  uint32
	Description string
	// FilePath is the device path list (FilePathListLength bytes).
	FilePath []byte
	// OptionalData is passed to the loader (e.g. a kernel command line).
	OptionalData []byte
}

func parseLoadOption(b []byte) (loadOption, error) {
	if len(b) < 6 {
		return loadOption{}, fmt.Errorf("%w: load option of %d bytes", errEFIFormat, len(b))
	}
	o := loadOption{Attributes: binary.LittleEndian.Uint32(b)}
	pathLen := int(binary.LittleEndian.Uint16(b[4:]))
	p := 6
	var desc []uint16
	for {
		if p+2 > len(b) {
			return loadOption{}, fmt.Errorf("%w: load option description is not NUL-terminated", errEFIFormat)
		}
		c := binary.LittleEndian.Uint16(b[p:])
		p += 2
		if c == 0 {
			break
		}
		desc = append(desc, c)
	}
	o.Description = string(utf16.Decode(desc))
	if pathLen > len(b)-p {
		return loadOption{}, fmt.Errorf("%w: load option device path of %d bytes, %d left", errEFIFormat, pathLen, len(b)-p)
	}
	o.FilePath = bytes.Clone(b[p : p+pathLen])
	o.OptionalData = bytes.Clone(b[p+pathLen:])
	if err := checkDevicePath(o.FilePath); err != nil {
		return loadOption{}, err
	}
	return o, nil
}

func (o loadOption) encode() []byte {
	desc := utf16.Encode([]rune(o.Description))
	b := binary.LittleEndian.AppendUint32(nil, o.Attributes)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(o.FilePath)))
	for _, c := range desc {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	b = append(b, 0, 0)
	b = append(b, o.FilePath...)
	return append(b, o.OptionalData...)
}

// parseBootOrder parses BootOrder: an array of UINT16 boot numbers.
func parseBootOrder(b []byte) ([]uint16, error) {
	if len(b)%2 != 0 {
		return nil, fmt.Errorf("%w: BootOrder of %d bytes, want an even number", errEFIFormat, len(b))
	}
	order := make([]uint16, len(b)/2)
	for i := range order {
		order[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return order, nil
}

func encodeBootOrder(order []uint16) []byte {
	b := make([]byte, 0, 2*len(order))
	for _, n := range order {
		b = binary.LittleEndian.AppendUint16(b, n)
	}
	return b
}

// parseBootNumber parses BootNext or BootCurrent: one UINT16.
func parseBootNumber(name string, b []byte) (uint16, error) {
	if len(b) != 2 {
		return 0, fmt.Errorf("%w: %s of %d bytes, want 2", errEFIFormat, name, len(b))
	}
	return binary.LittleEndian.Uint16(b), nil
}

// bootVarName is the Boot#### variable of a boot number: four upper-case
// hexadecimal digits, as the specification spells them.
func bootVarName(n uint16) string { return fmt.Sprintf("Boot%04X", n) }

// parseBootVarName is the inverse of bootVarName; it also accepts
// lower-case digits, which some firmware writes.
func parseBootVarName(name string) (uint16, bool) {
	hex, ok := strings.CutPrefix(name, "Boot")
	if !ok || len(hex) != 4 {
		return 0, false
	}
	var n uint16
	for _, c := range []byte(hex) {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		default:
			return 0, false
		}
		n = n<<4 | uint16(d)
	}
	return n, true
}

// Device path node types (UEFI §10.3).
const (
	dpMedia     = 0x04
	dpMediaHD   = 0x01
	dpMediaFile = 0x04
	dpEnd       = 0x7f
	dpEndEntire = 0xff
	hdNodeLen   = 42
	// The HD node's MBRType and SignatureType for a GPT partition.
	hdPartitionGPT  = 0x02
	hdSignatureGUID = 0x02
)

// checkDevicePath checks that b is a sequence of well-formed device path
// nodes ending with an End Entire node, as a load option's must be.
func checkDevicePath(b []byte) error {
	for p := 0; ; {
		if len(b)-p < 4 {
			return fmt.Errorf("%w: device path without an end node", errEFIFormat)
		}
		typ, sub := b[p], b[p+1]
		n := int(binary.LittleEndian.Uint16(b[p+2:]))
		if n < 4 || n > len(b)-p {
			return fmt.Errorf("%w: device path node of length %d at %d, %d bytes left", errEFIFormat, n, p, len(b)-p)
		}
		p += n
		if typ == dpEnd && sub == dpEndEntire {
			return nil
		}
	}
}

// devicePathFile returns the path of the first file node of a device path
// ("\EFI\ferry\a.efi"), or "" when it has none.
func devicePathFile(b []byte) string {
	for p := 0; len(b)-p >= 4; {
		typ, sub := b[p], b[p+1]
		n := int(binary.LittleEndian.Uint16(b[p+2:]))
		if n < 4 || n > len(b)-p || typ == dpEnd && sub == dpEndEntire {
			return ""
		}
		if typ == dpMedia && sub == dpMediaFile {
			u := make([]uint16, (n-4)/2)
			for i := range u {
				u[i] = binary.LittleEndian.Uint16(b[p+4+2*i:])
			}
			if i := slices.Index(u, 0); i >= 0 {
				u = u[:i]
			}
			return string(utf16.Decode(u))
		}
		p += n
	}
	return ""
}

// loaderDevicePath is the short-form device path efibootmgr makes for a
// loader on a GPT partition: HD(number, GPT, partition GUID, start, size)
// / File(path) / End. The firmware finds the partition on any disk by its
// GUID. path uses '\' or '/' as separator.
func loaderDevicePath(part gptPartition, path string) []byte {
	b := []byte{dpMedia, dpMediaHD}
	b = binary.LittleEndian.AppendUint16(b, hdNodeLen)
	b = binary.LittleEndian.AppendUint32(b, part.Number)
	b = binary.LittleEndian.AppendUint64(b, part.Start)
	b = binary.LittleEndian.AppendUint64(b, part.Size)
	b = append(b, part.GUID[:]...)
	b = append(b, hdPartitionGPT, hdSignatureGUID)
	name := utf16.Encode([]rune(strings.ReplaceAll(path, "/", `\`)))
	b = append(b, dpMedia, dpMediaFile)
	b = binary.LittleEndian.AppendUint16(b, uint16(4+2*(len(name)+1)))
	for _, c := range name {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	b = append(b, 0, 0)
	return append(b, dpEnd, dpEndEntire, 4, 0)
}

// gptPartition is what a device path's HD node says of a GPT partition.
type gptPartition struct {
	Number      uint32
	Start, Size uint64 // in logical blocks
	// GUID is the unique partition GUID as stored on disk (the
	// mixed-endian EFI_GUID layout the HD node uses too).
	GUID [16]byte
}

// GUIDString formats the GUID as sgdisk and blkid print it.
func (p gptPartition) GUIDString() string {
	g := p.GUID
	return fmt.Sprintf("%08X-%04X-%04X-%X-%X", binary.LittleEndian.Uint32(g[0:]),
		binary.LittleEndian.Uint16(g[4:]), binary.LittleEndian.Uint16(g[6:]), g[8:10], g[10:16])
}

// maxGPTEntries bounds the partition entry array read from a disk.
const maxGPTEntries = 1 << 20

// readGPTPartition reads partition number (1-based) of a GPT disk (a block
// device or an image file), checking the header's and the entries' CRCs
// as firmware does.
func readGPTPartition(disk string, number int) (gptPartition, error) {
	f, err := os.Open(disk)
	if err != nil {
		return gptPartition{}, fmt.Errorf("read partition table: %w", err)
	}
	defer f.Close()
	lbs := blockSize(f)
	hdr := make([]byte, lbs)
	if _, err := f.ReadAt(hdr, int64(lbs)); err != nil {
		return gptPartition{}, fmt.Errorf("read partition table of %s: %w", disk, err)
	}
	h, err := parseGPTHeader(hdr)
	if err != nil {
		return gptPartition{}, fmt.Errorf("read partition table of %s: %w", disk, err)
	}
	entries := make([]byte, int(h.entries)*int(h.entrySize))
	if _, err := f.ReadAt(entries, int64(h.entryLBA)*int64(lbs)); err != nil && !errors.Is(err, io.EOF) {
		return gptPartition{}, fmt.Errorf("read partition table of %s: %w", disk, err)
	}
	p, err := h.partition(entries, number)
	if err != nil {
		return gptPartition{}, fmt.Errorf("read partition table of %s: %w", disk, err)
	}
	return p, nil
}

type gptHeader struct {
	entryLBA           uint64
	entries, entrySize uint32
	entriesCRC         uint32
}

func parseGPTHeader(b []byte) (gptHeader, error) {
	if len(b) < 92 || string(b[:8]) != "EFI PART" {
		return gptHeader{}, fmt.Errorf("%w: no GPT header (\"EFI PART\")", errEFIFormat)
	}
	size := binary.LittleEndian.Uint32(b[12:])
	if size < 92 || int(size) > len(b) {
		return gptHeader{}, fmt.Errorf("%w: GPT header size %d", errEFIFormat, size)
	}
	hdr := bytes.Clone(b[:size])
	want := binary.LittleEndian.Uint32(hdr[16:])
	copy(hdr[16:20], []byte{0, 0, 0, 0})
	if got := crc32.ChecksumIEEE(hdr); got != want {
		return gptHeader{}, fmt.Errorf("%w: GPT header CRC %08x, want %08x", errEFIFormat, got, want)
	}
	h := gptHeader{
		entryLBA:   binary.LittleEndian.Uint64(b[72:]),
		entries:    binary.LittleEndian.Uint32(b[80:]),
		entrySize:  binary.LittleEndian.Uint32(b[84:]),
		entriesCRC: binary.LittleEndian.Uint32(b[88:]),
	}
	if h.entrySize < 128 || h.entrySize%8 != 0 || h.entries > maxGPTEntries || uint64(h.entries)*uint64(h.entrySize) > 16<<20 || h.entryLBA < 2 || h.entryLBA > 1<<40 {
		return gptHeader{}, fmt.Errorf("%w: GPT entry array of %d entries of %d bytes at LBA %d", errEFIFormat, h.entries, h.entrySize, h.entryLBA)
	}
	return h, nil
}

// partition returns entry number (1-based) of the entry array.
func (h gptHeader) partition(entries []byte, number int) (gptPartition, error) {
	if len(entries) != int(h.entries)*int(h.entrySize) {
		return gptPartition{}, fmt.Errorf("%w: GPT entry array of %d bytes, want %d", errEFIFormat, len(entries), int(h.entries)*int(h.entrySize))
	}
	if got := crc32.ChecksumIEEE(entries); got != h.entriesCRC {
		return gptPartition{}, fmt.Errorf("%w: GPT entry array CRC %08x, want %08x", errEFIFormat, got, h.entriesCRC)
	}
	if number < 1 || number > int(h.entries) {
		return gptPartition{}, fmt.Errorf("no partition %d (the table has %d entries)", number, h.entries)
	}
	e := entries[(number-1)*int(h.entrySize):]
	var zero [16]byte
	if bytes.Equal(e[:16], zero[:]) {
		return gptPartition{}, fmt.Errorf("partition %d is unused", number)
	}
	first, last := binary.LittleEndian.Uint64(e[32:]), binary.LittleEndian.Uint64(e[40:])
	if last < first {
		return gptPartition{}, fmt.Errorf("%w: partition %d ends (LBA %d) before it starts (%d)", errEFIFormat, number, last, first)
	}
	p := gptPartition{Number: uint32(number), Start: first, Size: last - first + 1}
	copy(p.GUID[:], e[16:32])
	return p, nil
}
