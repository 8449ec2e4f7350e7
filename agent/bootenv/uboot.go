package bootenv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// DefaultUBootLockPath is the lock file libubootenv and U-Boot's own
// fw_printenv hold while they read or write the environment.
const DefaultUBootLockPath = "/var/lock/fw_printenv.lock"

// The on-disk layout, as U-Boot's env.h and libubootenv's uboot_private.h
// define it: a CRC32 (IEEE) over the data area, for a redundant environment
// one flag byte, then "name=value\0" entries ended by an empty entry (a
// second NUL) and padded to the environment size. U-Boot stores the CRC in
// the CPU's byte order; ferry's targets (ARM, x86) are little-endian.
const (
	crcLen = 4
	// maxUBootEnvSize bounds what Load allocates for a configured size.
	// Real environments are a few KiB to 1 MiB.
	maxUBootEnvSize = 16 << 20
)

// UBootLocation is where one copy of a U-Boot environment is stored: one
// line of fw_env.config.
type UBootLocation struct {
	// Device is a block device, partition or regular file holding at
	// least Offset+Size bytes. Save does not create it.
	Device string
	// Offset is the byte offset of the copy in Device. A negative offset
	// counts back from the end of the device, as in libubootenv.
	Offset int64
	// Size is the environment size (CONFIG_ENV_SIZE), the same for both
	// copies.
	Size int64
	// SectorSize and Sectors are the MTD erase geometry. They are kept so
	// a configuration round-trips but are unused: MTD devices, the only
	// ones that need erasing, are not supported.
	SectorSize, Sectors int64
}

func (l UBootLocation) String() string {
	return fmt.Sprintf("%s@%#x", l.Device, l.Offset)
}

// UBootEnv is a U-Boot environment stored in one copy or, redundantly, in
// two, compatible with libubootenv's fw_printenv and fw_setenv.
//
// In a redundant environment each copy carries a flag byte that counts
// saves, wrapping from 255 to 0. Load uses the valid copy (correct CRC) with
// the newer flag; Save writes the other copy with the flag incremented and
// syncs it, so a power cut while saving leaves the copy in use intact.
// A single-copy environment is overwritten in place and cannot survive a
// power cut during Save.
type UBootEnv struct {
	// LockPath is a file locked with flock(2) around each Load and Save, so
	// that the agent and fw_setenv never interleave. The constructors set
	// it to DefaultUBootLockPath; empty disables locking.
	LockPath string

	locs []UBootLocation

	// writeAt writes an image to an open device; tests replace it to
	// simulate a power cut in the middle of a write.
	writeAt func(f *os.File, b []byte, off int64) error
}

// NewUBootEnv returns the environment stored at one location (single copy)
// or two (redundant).
func NewUBootEnv(locs ...UBootLocation) (*UBootEnv, error) {
	if len(locs) < 1 || len(locs) > 2 {
		return nil, fmt.Errorf("u-boot env: want 1 or 2 locations, got %d", len(locs))
	}
	for i, l := range locs {
		if l.Device == "" {
			return nil, fmt.Errorf("u-boot env copy %d: no device", i)
		}
		// libubootenv decides the device type by these prefixes too.
		// MTD flash needs erase and lock ioctls, and UBI volume updates,
		// that this package does not implement.
		if strings.HasPrefix(l.Device, "/dev/mtd") || strings.HasPrefix(l.Device, "/dev/ubi") {
			return nil, fmt.Errorf("u-boot env copy %d (%s): MTD and UBI devices are not supported; use fw_setenv", i, l)
		}
		if l.Size <= crcLen+1 || l.Size > maxUBootEnvSize {
			return nil, fmt.Errorf("u-boot env copy %d (%s): size %#x out of range (%#x..%#x)", i, l, l.Size, crcLen+2, maxUBootEnvSize)
		}
	}
	if len(locs) == 2 {
		a, b := locs[0], locs[1]
		if a.Size != b.Size {
			return nil, fmt.Errorf("u-boot env: copies differ in size (%#x and %#x)", a.Size, b.Size)
		}
		// Overlapping copies would make every save destroy the copy in
		// use. Offsets from the end are only known once the device is open.
		if filepath.Clean(a.Device) == filepath.Clean(b.Device) && (a.Offset < 0) == (b.Offset < 0) &&
			a.Offset < b.Offset+b.Size && b.Offset < a.Offset+a.Size {
			return nil, fmt.Errorf("u-boot env: copies %s and %s overlap", a, b)
		}
	}
	return &UBootEnv{
		LockPath: DefaultUBootLockPath,
		locs:     append([]UBootLocation(nil), locs...),
		writeAt: func(f *os.File, b []byte, off int64) error {
			_, err := f.WriteAt(b, off)
			return err
		},
	}, nil
}

// OpenUBootConfig returns the environment that the fw_env.config-style file
// at path describes (see ParseFwEnvConfig).
func OpenUBootConfig(path string) (*UBootEnv, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read u-boot env config: %w", err)
	}
	defer f.Close()
	locs, err := ParseFwEnvConfig(f)
	if err != nil {
		return nil, fmt.Errorf("read u-boot env config %s: %w", path, err)
	}
	e, err := NewUBootEnv(locs...)
	if err != nil {
		return nil, fmt.Errorf("u-boot env config %s: %w", path, err)
	}
	return e, nil
}

func (e *UBootEnv) redundant() bool { return len(e.locs) == 2 }

// headerLen is the size of the CRC and, in a redundant copy, the flag.
func headerLen(redundant bool) int {
	if redundant {
		return crcLen + 1
	}
	return crcLen
}

// envCopy is what was read from one location.
type envCopy struct {
	vars map[string]string
	flag byte
	// err says why the copy is unusable; ioErr says it could not be read
	// at all, as opposed to being read and found corrupt.
	err   error
	ioErr bool
}

// Load returns the variables of the valid copy with the newer flag. It
// returns an error wrapping ErrNoValidEnv when no copy has a correct CRC;
// when no copy could be read at all (a missing device, an I/O error) it
// returns those errors instead, since nothing is known about the content.
func (e *UBootEnv) Load() (map[string]string, error) {
	unlock, err := lockFile(e.LockPath)
	if err != nil {
		return nil, fmt.Errorf("read u-boot env: %w", err)
	}
	defer unlock()
	copies := e.readCopies()
	cur, err := e.current(copies)
	if err != nil {
		return nil, fmt.Errorf("read u-boot env: %w", err)
	}
	return copies[cur].vars, nil
}

// Save writes vars to the copy not in use (or the only copy) with the next
// flag value, and syncs it.
func (e *UBootEnv) Save(vars map[string]string) error {
	unlock, err := lockFile(e.LockPath)
	if err != nil {
		return fmt.Errorf("write u-boot env: %w", err)
	}
	defer unlock()
	// Re-read rather than trust an earlier Load: fw_setenv may have saved
	// since, and writing over the copy it just made current would lose
	// the power-cut protection.
	copies := e.readCopies()
	cur, err := e.current(copies)
	if err != nil && !errors.Is(err, ErrNoValidEnv) {
		return fmt.Errorf("write u-boot env: %w", err)
	}
	target, flag := 0, byte(0)
	if e.redundant() {
		// With no valid copy, libubootenv treats copy 0 as current and
		// so writes copy 1 with copy 0's flag plus one; do the same.
		target, flag = 1-cur, copies[cur].flag+1
	}
	loc := e.locs[target]
	img, err := encodeUBootEnv(vars, int(loc.Size), e.redundant(), flag)
	if err != nil {
		return fmt.Errorf("write u-boot env %s: %w", loc, err)
	}
	if err := e.writeCopy(loc, img); err != nil {
		return fmt.Errorf("write u-boot env %s: %w", loc, err)
	}
	return nil
}

func (e *UBootEnv) readCopies() []envCopy {
	copies := make([]envCopy, len(e.locs))
	for i, loc := range e.locs {
		img, err := readCopy(loc)
		if err != nil {
			copies[i] = envCopy{err: fmt.Errorf("copy %d (%s): %w", i, loc, err), ioErr: !errors.Is(err, io.ErrUnexpectedEOF)}
			continue
		}
		vars, err := decodeUBootEnv(img, e.redundant())
		if err != nil {
			err = fmt.Errorf("copy %d (%s): %w", i, loc, err)
		}
		copies[i] = envCopy{vars: vars, err: err}
		if e.redundant() {
			copies[i].flag = img[crcLen]
		}
	}
	return copies
}

// current picks the copy in use the way libubootenv does for files, block
// devices and NAND (its "incremental" flags): the only valid copy, or of two
// valid copies the one with the greater flag, where 0 follows 255; copy 0
// on a tie. With no valid copy it returns 0 and an error: ErrNoValidEnv
// when the copies were read and found corrupt, the read errors otherwise.
func (e *UBootEnv) current(c []envCopy) (int, error) {
	switch {
	case len(c) == 1 && c[0].err == nil:
		return 0, nil
	case len(c) == 1:
		if c[0].ioErr {
			return 0, c[0].err
		}
		return 0, fmt.Errorf("%w: %w", ErrNoValidEnv, c[0].err)
	case c[0].err == nil && c[1].err != nil:
		return 0, nil
	case c[0].err != nil && c[1].err == nil:
		return 1, nil
	case c[0].err != nil && c[1].err != nil:
		if c[0].ioErr || c[1].ioErr {
			return 0, errors.Join(c[0].err, c[1].err)
		}
		return 0, fmt.Errorf("%w: %w; %w", ErrNoValidEnv, c[0].err, c[1].err)
	}
	f0, f1 := c[0].flag, c[1].flag
	switch {
	case f0 == 0xff && f1 == 0:
		return 1, nil
	case f1 == 0xff && f0 == 0:
		return 0, nil
	case f1 > f0:
		return 1, nil
	}
	return 0, nil
}

// readCopy reads one copy's image. A device too short to hold it is
// reported as io.ErrUnexpectedEOF: a corrupt copy, not a broken device.
func readCopy(loc UBootLocation) ([]byte, error) {
	f, err := os.Open(loc.Device)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	off, err := resolveOffset(f, loc.Offset)
	if err != nil {
		return nil, err
	}
	img := make([]byte, loc.Size)
	n, err := f.ReadAt(img, off)
	if n == len(img) {
		return img, nil
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return nil, fmt.Errorf("read %d of %d bytes: %w", n, len(img), err)
}

func (e *UBootEnv) writeCopy(loc UBootLocation, img []byte) (err error) {
	restore, err := writableBootPartition(loc.Device)
	if err != nil {
		return err
	}
	defer func() {
		if rerr := restore(); rerr != nil && err == nil {
			err = fmt.Errorf("environment saved, but: %w", rerr)
		}
	}()
	f, err := os.OpenFile(loc.Device, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	off, err := resolveOffset(f, loc.Offset)
	if err != nil {
		return err
	}
	if err := e.writeAt(f, img, off); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

// resolveOffset turns an offset from the end of the device into one from
// its start.
func resolveOffset(f *os.File, off int64) (int64, error) {
	if off >= 0 {
		return off, nil
	}
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", f.Name(), err)
	}
	if end+off < 0 {
		return 0, fmt.Errorf("offset %d is before the start of %s (%d bytes)", off, f.Name(), end)
	}
	return end + off, nil
}

// sysClassBlock is where Linux exposes force_ro; tests point it elsewhere.
var sysClassBlock = "/sys/class/block"

var emmcBootPartition = regexp.MustCompile(`^/dev/mmcblk[0-9]+boot[0-9]+$`)

// writableBootPartition clears force_ro on an eMMC hardware boot partition,
// where U-Boot environments often live and which Linux makes read-only by
// default, and returns a function that sets it again. libubootenv does the
// same; for any other device it does nothing.
func writableBootPartition(dev string) (restore func() error, err error) {
	restore = func() error { return nil }
	if !emmcBootPartition.MatchString(dev) {
		return restore, nil
	}
	path := filepath.Join(sysClassBlock, filepath.Base(dev), "force_ro")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return restore, nil
	}
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(string(b)) != "1" {
		return restore, nil
	}
	if err := os.WriteFile(path, []byte("0"), 0); err != nil {
		return nil, fmt.Errorf("make %s writable: %w", dev, err)
	}
	return func() error {
		if err := os.WriteFile(path, []byte("1"), 0); err != nil {
			return fmt.Errorf("make %s read-only again: %w", dev, err)
		}
		return nil
	}, nil
}

// encodeUBootEnv builds the image of one copy: names in byte order as
// libubootenv writes them, except ".flags" (U-Boot's variable attributes),
// which libubootenv writes last; then the terminating NUL and zero padding.
// libubootenv pads with whatever malloc returned (in practice zeros, now and
// then heap residue); U-Boot itself pads with zeros.
func encodeUBootEnv(vars map[string]string, size int, redundant bool, flag byte) ([]byte, error) {
	if err := (varRules{}).check(vars); err != nil {
		return nil, err
	}
	hdr := headerLen(redundant)
	names := sortedNames(vars)
	if i := slices.Index(names, ".flags"); i >= 0 {
		names = append(append(names[:i:i], names[i+1:]...), ".flags")
	}
	img := make([]byte, hdr, size)
	for _, name := range names {
		img = append(img, name...)
		img = append(img, '=')
		img = append(img, vars[name]...)
		img = append(img, 0)
	}
	img = append(img, 0)
	if len(img) > size {
		return nil, fmt.Errorf("%w: %d bytes of variables, room for %d", ErrTooLarge, len(img)-hdr, size-hdr)
	}
	img = img[:size]
	if redundant {
		img[crcLen] = flag
	}
	binary.LittleEndian.PutUint32(img, crc32.ChecksumIEEE(img[hdr:]))
	return img, nil
}

// decodeUBootEnv checks the CRC of one copy's image and parses its
// variables as libubootenv does: entries without '=' are skipped, and a
// later duplicate wins. Unlike libubootenv it also skips entries with an
// empty name, which U-Boot cannot set or use.
func decodeUBootEnv(img []byte, redundant bool) (map[string]string, error) {
	hdr := headerLen(redundant)
	if len(img) <= hdr {
		return nil, fmt.Errorf("image of %d bytes has no data area", len(img))
	}
	data := img[hdr:]
	if got, want := crc32.ChecksumIEEE(data), binary.LittleEndian.Uint32(img); got != want {
		return nil, fmt.Errorf("bad crc32 %#08x, computed %#08x", want, got)
	}
	vars := make(map[string]string)
	for len(data) > 0 && data[0] != 0 {
		end := bytes.IndexByte(data, 0)
		if end < 0 {
			return nil, errors.New("last variable is not NUL-terminated")
		}
		// Reaching the end of the area right after an entry, with no
		// room for the final NUL, is accepted: libubootenv can write
		// such an image and U-Boot reads it.
		entry := string(data[:end])
		data = data[end+1:]
		name, value, ok := strings.Cut(entry, "=")
		if !ok || name == "" {
			continue
		}
		vars[name] = value
	}
	return vars, nil
}
