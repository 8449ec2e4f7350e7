package bootenv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testUBoot makes a U-Boot environment in a temporary file: for a redundant
// one both copies in one file, one after the other, as on most eMMC
// layouts. It returns the environment and a matching fw_env.config.
func testUBoot(t *testing.T, redundant bool, size int64) (*UBootEnv, string) {
	t.Helper()
	dir := t.TempDir()
	dev := filepath.Join(dir, "env.img")
	// Room before and after, so offsets are exercised.
	if err := os.WriteFile(dev, make([]byte, 0x1000+2*size+0x1000), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("# test\n%s 0x1000 %#x\n", dev, size)
	if redundant {
		cfg += fmt.Sprintf("%s %#x %#x\n", dev, 0x1000+size, size)
	}
	cfgPath := filepath.Join(dir, "fw_env.config")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	env, err := OpenUBootConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	env.LockPath = filepath.Join(dir, "lock")
	return env, cfgPath
}

// image returns copy i's image as stored.
func image(t *testing.T, env *UBootEnv, i int) []byte {
	t.Helper()
	img, err := readCopy(env.locs[i])
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func mustLoad(t *testing.T, s Store) map[string]string {
	t.Helper()
	vars, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	return vars
}

func mustSave(t *testing.T, s Store, vars map[string]string) {
	t.Helper()
	if err := s.Save(vars); err != nil {
		t.Fatal(err)
	}
}

func withCRC(hdr, data []byte) []byte {
	img := append(append([]byte(nil), hdr...), data...)
	binary.LittleEndian.PutUint32(img, crc32.ChecksumIEEE(data))
	return img
}

func TestEncodeUBootEnv(t *testing.T) {
	tests := []struct {
		name      string
		vars      map[string]string
		size      int
		redundant bool
		flag      byte
		want      string // header excluded, up to the padding
		err       error
	}{
		{"empty", nil, 16, false, 0, "\x00", nil},
		{"sorted", map[string]string{"b": "2", "a": "1"}, 32, false, 0, "a=1\x00b=2\x00\x00", nil},
		{"flag", map[string]string{"a": "1"}, 32, true, 7, "a=1\x00\x00", nil},
		{"value with = and spaces", map[string]string{"bootcmd": "setenv x=1; run a b"}, 64, false, 0, "bootcmd=setenv x=1; run a b\x00\x00", nil},
		{"empty value", map[string]string{"e": ""}, 16, false, 0, "e=\x00\x00", nil},
		{".flags last", map[string]string{".flags": "x:dr", "a": "1"}, 32, false, 0, "a=1\x00.flags=x:dr\x00\x00", nil},
		{"exactly full", map[string]string{"a": "123"}, 4 + 6, false, 0, "a=123\x00", ErrTooLarge},
		{"fits", map[string]string{"a": "12"}, 4 + 6, false, 0, "a=12\x00\x00", nil},
		{"too large", map[string]string{"a": strings.Repeat("x", 100)}, 64, true, 0, "", ErrTooLarge},
		{"= in name", map[string]string{"a=b": "1"}, 64, false, 0, "", ErrInvalidVar},
		{"NUL in value", map[string]string{"a": "1\x002"}, 64, false, 0, "", ErrInvalidVar},
		{"empty name", map[string]string{"": "1"}, 64, false, 0, "", ErrInvalidVar},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, err := encodeUBootEnv(tt.vars, tt.size, tt.redundant, tt.flag)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			hdr := 4
			if tt.redundant {
				hdr = 5
				if img[4] != tt.flag {
					t.Errorf("flag = %d, want %d", img[4], tt.flag)
				}
			}
			if len(img) != tt.size {
				t.Fatalf("size = %d, want %d", len(img), tt.size)
			}
			if got := string(img[hdr : hdr+len(tt.want)]); got != tt.want {
				t.Errorf("data = %q, want %q", got, tt.want)
			}
			if rest := img[hdr+len(tt.want):]; bytes.Count(rest, []byte{0}) != len(rest) {
				t.Errorf("padding not zero: %q", rest)
			}
			if got, want := binary.LittleEndian.Uint32(img), crc32.ChecksumIEEE(img[hdr:]); got != want {
				t.Errorf("crc = %#x, want %#x", got, want)
			}
			vars, err := decodeUBootEnv(img, tt.redundant)
			if err != nil {
				t.Fatal(err)
			}
			if len(tt.vars) != 0 && !maps.Equal(vars, tt.vars) {
				t.Errorf("round trip = %q, want %q", vars, tt.vars)
			}
		})
	}
}

func TestDecodeUBootEnv(t *testing.T) {
	tests := []struct {
		name string
		data string // data area after the CRC (single copy)
		want map[string]string
		err  string
	}{
		{"empty", "\x00\x00\x00", map[string]string{}, ""},
		{"all zero", "\x00", map[string]string{}, ""},
		{"vars", "a=1\x00b=x=y\x00\x00junk", map[string]string{"a": "1", "b": "x=y"}, ""},
		{"duplicate: last wins", "a=1\x00a=2\x00\x00", map[string]string{"a": "2"}, ""},
		{"no = skipped", "junk\x00a=1\x00\x00", map[string]string{"a": "1"}, ""},
		{"empty name skipped", "=1\x00a=\x00\x00", map[string]string{"a": ""}, ""},
		{"full, no final NUL", "a=1\x00", map[string]string{"a": "1"}, ""},
		{"unterminated", "a=1\x00b=2", nil, "not NUL-terminated"},
		{"erased flash", "\xff\xff\xff\xff", nil, "not NUL-terminated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars, err := decodeUBootEnv(withCRC(make([]byte, 4), []byte(tt.data)), false)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(vars, tt.want) {
				t.Errorf("vars = %q, want %q", vars, tt.want)
			}
		})
	}
	img := withCRC(make([]byte, 4), []byte("a=1\x00\x00"))
	img[6] = '2'
	if _, err := decodeUBootEnv(img, false); err == nil || !strings.Contains(err.Error(), "bad crc32") {
		t.Errorf("corrupt image: err = %v, want bad crc32", err)
	}
}

func TestParseFwEnvConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  string
		want []UBootLocation
		err  string
	}{
		{"single", "/dev/mmcblk0 0x400000 0x4000\n",
			[]UBootLocation{{Device: "/dev/mmcblk0", Offset: 0x400000, Size: 0x4000}}, ""},
		{"redundant with comments", "# MMC\n\n/dev/mmcblk0 0x400000 0x4000 0x200 # primary\n  # spare\n/dev/mmcblk0 0x404000 0x4000 0x200 1\n",
			[]UBootLocation{
				{Device: "/dev/mmcblk0", Offset: 0x400000, Size: 0x4000, SectorSize: 0x200},
				{Device: "/dev/mmcblk0", Offset: 0x404000, Size: 0x4000, SectorSize: 0x200, Sectors: 1},
			}, ""},
		// As sscanf("%lli %zx") reads them: decimal or octal offsets, but
		// sizes in hex even without 0x.
		{"number bases", "f 4096 4000 20000 2\ng 010 0X10 0x20000\n",
			[]UBootLocation{
				{Device: "f", Offset: 4096, Size: 0x4000, SectorSize: 0x20000, Sectors: 2},
				{Device: "g", Offset: 8, Size: 0x10, SectorSize: 0x20000},
			}, ""},
		{"negative offset", "/dev/sda -0x8000 0x4000\n",
			[]UBootLocation{{Device: "/dev/sda", Offset: -0x8000, Size: 0x4000}}, ""},
		{"tabs and CRLF", "f\t0x0\t0x100\r\n", []UBootLocation{{Device: "f", Size: 0x100}}, ""},
		{"empty", "# nothing\n", nil, "no environment configured"},
		{"missing size", "/dev/mmcblk0 0x400000\n", nil, "line 1: want"},
		{"too many fields", "f 0 1 2 3 4\n", nil, "line 1: want"},
		{"bad offset", "f 0x 0x100\n", nil, "offset"},
		{"octal 8", "f 08 0x100\n", nil, "offset"},
		{"underscore", "f 1_000 0x100\n", nil, "offset"},
		{"bad size", "f 0 0xg\n", nil, "size"},
		{"signed size", "f 0 -100\n", nil, "size"},
		{"zero size", "f 0 0\n", nil, "size is zero"},
		{"three copies", "f 0 10\nf 10 10\nf 20 10\n", nil, "line 3: more than two"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFwEnvConfig(strings.NewReader(tt.cfg))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) || len(got) != len(tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("copy %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestNewUBootEnvErrors(t *testing.T) {
	tests := []struct {
		name string
		locs []UBootLocation
		err  string
	}{
		{"none", nil, "want 1 or 2"},
		{"mtd", []UBootLocation{{Device: "/dev/mtd1", Size: 0x1000}}, "not supported"},
		{"ubi", []UBootLocation{{Device: "/dev/ubi0_1", Size: 0x1000}}, "not supported"},
		{"tiny", []UBootLocation{{Device: "f", Size: 5}}, "out of range"},
		{"huge", []UBootLocation{{Device: "f", Size: 1 << 30}}, "out of range"},
		{"sizes differ", []UBootLocation{{Device: "f", Size: 0x100}, {Device: "f", Offset: 0x100, Size: 0x200}}, "differ in size"},
		{"overlap", []UBootLocation{{Device: "f", Size: 0x100}, {Device: "./f", Offset: 0xff, Size: 0x100}}, "overlap"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewUBootEnv(tt.locs...)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err = %v, want %q", err, tt.err)
			}
		})
	}
}

func TestUBootCurrentCopy(t *testing.T) {
	bad := errors.New("bad crc")
	tests := []struct {
		f0, f1     byte
		err0, err1 error
		want       int
	}{
		{1, 2, nil, nil, 1},
		{2, 1, nil, nil, 0},
		{3, 3, nil, nil, 0},
		{0xff, 0, nil, nil, 1}, // 0 follows 255
		{0, 0xff, nil, nil, 0},
		{0xfe, 0xff, nil, nil, 1},
		{9, 1, bad, nil, 1},
		{1, 9, nil, bad, 0},
	}
	e := &UBootEnv{locs: make([]UBootLocation, 2)}
	for _, tt := range tests {
		got, err := e.current([]envCopy{{flag: tt.f0, err: tt.err0}, {flag: tt.f1, err: tt.err1}})
		if err != nil || got != tt.want {
			t.Errorf("flags %d/%d errs %v/%v: copy %d, %v; want copy %d", tt.f0, tt.f1, tt.err0, tt.err1, got, err, tt.want)
		}
	}
	if _, err := e.current([]envCopy{{err: bad}, {err: bad}}); !errors.Is(err, ErrNoValidEnv) {
		t.Errorf("both corrupt: %v, want ErrNoValidEnv", err)
	}
	if _, err := e.current([]envCopy{{err: bad}, {err: os.ErrPermission, ioErr: true}}); err == nil || errors.Is(err, ErrNoValidEnv) {
		t.Errorf("unreadable: %v, want the I/O error and not ErrNoValidEnv", err)
	}
}

// TestUBootSaveAlternates checks that saves alternate between the copies,
// the flag counts up, and a corrupt copy is skipped.
func TestUBootSaveAlternates(t *testing.T) {
	env, _ := testUBoot(t, true, 0x400)
	if _, err := env.Load(); !errors.Is(err, ErrNoValidEnv) {
		t.Fatalf("blank device: err = %v, want ErrNoValidEnv", err)
	}
	// From blank, libubootenv writes copy 1 with copy 0's flag plus one.
	for i, want := range []struct {
		copy int
		flag byte
	}{{1, 1}, {0, 2}, {1, 3}, {0, 4}} {
		mustSave(t, env, map[string]string{"n": fmt.Sprint(i)})
		img := image(t, env, want.copy)
		if img[4] != want.flag {
			t.Errorf("save %d: copy %d flag = %d, want %d", i, want.copy, img[4], want.flag)
		}
		if got := mustLoad(t, env)["n"]; got != fmt.Sprint(i) {
			t.Errorf("save %d: loaded n=%q", i, got)
		}
	}
	// Corrupt the current copy (0, "n=3"): Load falls back to copy 1.
	corrupt(t, env.locs[0])
	if got := mustLoad(t, env)["n"]; got != "2" {
		t.Errorf("after corrupting copy 0: n=%q, want 2", got)
	}
	// Saving now replaces the corrupt copy, never the good one.
	mustSave(t, env, map[string]string{"n": "4"})
	if got := image(t, env, 1); got[4] != 3 {
		t.Errorf("copy 1 was overwritten (flag %d)", got[4])
	}
	if got := mustLoad(t, env)["n"]; got != "4" {
		t.Errorf("n=%q, want 4", got)
	}
	corrupt(t, env.locs[0])
	corrupt(t, env.locs[1])
	if _, err := env.Load(); !errors.Is(err, ErrNoValidEnv) {
		t.Errorf("both corrupt: err = %v, want ErrNoValidEnv", err)
	}
}

// corrupt flips a bit in a copy's data area.
func corrupt(t *testing.T, loc UBootLocation) {
	t.Helper()
	f, err := os.OpenFile(loc.Device, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	off := loc.Offset + 6
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestUBootSingle(t *testing.T) {
	env, _ := testUBoot(t, false, 0x200)
	mustSave(t, env, map[string]string{"a": "1"})
	mustSave(t, env, map[string]string{"a": "2", "b": "x"})
	if got := mustLoad(t, env); !maps.Equal(got, map[string]string{"a": "2", "b": "x"}) {
		t.Errorf("got %q", got)
	}
	corrupt(t, env.locs[0])
	if _, err := env.Load(); !errors.Is(err, ErrNoValidEnv) {
		t.Errorf("corrupt: err = %v, want ErrNoValidEnv", err)
	}
}

func TestUBootErrors(t *testing.T) {
	env, _ := testUBoot(t, true, 0x100)
	err := env.Save(map[string]string{"a": strings.Repeat("x", 0x100)})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "write u-boot env") {
		t.Errorf("too large: %v", err)
	}
	err = env.Save(map[string]string{"a=b": "1"})
	if !errors.Is(err, ErrInvalidVar) || !strings.Contains(err.Error(), `"a=b"`) {
		t.Errorf("bad name: %v", err)
	}

	missing, err := NewUBootEnv(UBootLocation{Device: filepath.Join(t.TempDir(), "nope"), Size: 0x100})
	if err != nil {
		t.Fatal(err)
	}
	missing.LockPath = ""
	if _, err := missing.Load(); err == nil || errors.Is(err, ErrNoValidEnv) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing device: %v, want not-exist and not ErrNoValidEnv", err)
	}
	if err := missing.Save(nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("save to missing device: %v, want not-exist (Save must not create devices)", err)
	}

	// A device too short for the copy is a corrupt copy: fall back.
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	os.WriteFile(short, make([]byte, 0x180), 0o644)
	e, err := NewUBootEnv(UBootLocation{Device: short, Size: 0x100}, UBootLocation{Device: short, Offset: 0x100, Size: 0x100})
	if err != nil {
		t.Fatal(err)
	}
	e.LockPath = ""
	if _, err := e.Load(); !errors.Is(err, ErrNoValidEnv) {
		t.Errorf("short device: %v, want ErrNoValidEnv", err)
	}
}

func TestUBootNegativeOffset(t *testing.T) {
	dev := filepath.Join(t.TempDir(), "disk")
	os.WriteFile(dev, make([]byte, 0x1000), 0o644)
	e, err := NewUBootEnv(UBootLocation{Device: dev, Offset: -0x200, Size: 0x100}, UBootLocation{Device: dev, Offset: -0x100, Size: 0x100})
	if err != nil {
		t.Fatal(err)
	}
	e.LockPath = ""
	mustSave(t, e, map[string]string{"a": "1"})
	mustSave(t, e, map[string]string{"a": "2"})
	raw, _ := os.ReadFile(dev)
	if !bytes.Contains(raw[0xe00:0xf00], []byte("a=2\x00")) || !bytes.Contains(raw[0xf00:], []byte("a=1\x00")) {
		t.Errorf("copies not at the end of the device")
	}
	if got := mustLoad(t, e)["a"]; got != "2" {
		t.Errorf("a=%q", got)
	}
}

// TestUBootPowerCut cuts a save short at many points, as a power cut
// would, and checks that Load then returns the old variables (or the new
// ones, if the cut came after every byte that differs), and that the
// next save repairs the torn copy without touching the good one.
func TestUBootPowerCut(t *testing.T) {
	const size = 0x200
	old := map[string]string{"ferry_slot": "a", "bootcmd": "run ferry_boot"}
	next := map[string]string{"ferry_slot": "b", "bootcmd": "run ferry_boot", "upgrade_available": "1"}
	newImg, err := encodeUBootEnv(next, size, true, 3)
	if err != nil {
		t.Fatal(err)
	}
	contentEnd := 5 + bytes.Index(newImg[5:], []byte{0, 0}) + 2
	for _, cut := range []int{0, 1, 3, 4, 5, 6, 20, contentEnd - 2, contentEnd - 1, contentEnd, size / 2, size - 1} {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			env, _ := testUBoot(t, true, size)
			mustSave(t, env, map[string]string{"ferry_slot": "x"}) // copy 1, flag 1
			mustSave(t, env, old)                                  // copy 0, flag 2
			good, stale := image(t, env, 0), image(t, env, 1)

			powerCut := errors.New("power cut")
			env.writeAt = func(f *os.File, b []byte, off int64) error {
				if _, err := f.WriteAt(b[:cut], off); err != nil {
					return err
				}
				return powerCut
			}
			if err := env.Save(next); !errors.Is(err, powerCut) {
				t.Fatalf("save: %v, want the power cut", err)
			}

			after := testUBootReopen(t, env)
			want, cur := old, 0
			if bytes.Equal(newImg[cut:], stale[cut:]) {
				// What was left unwritten was on disk already: the
				// write was complete in effect.
				want, cur = next, 1
			}
			if got := mustLoad(t, after); !maps.Equal(got, want) {
				t.Fatalf("after cut at %d: %q, want %q", cut, got, want)
			}
			if !bytes.Equal(image(t, env, 0), good) {
				t.Fatal("the copy in use was written")
			}

			inUse := image(t, env, cur)
			mustSave(t, after, map[string]string{"ferry_slot": "b"})
			if !bytes.Equal(image(t, env, cur), inUse) {
				t.Fatal("the save after the cut wrote the copy in use")
			}
			if got := mustLoad(t, after)["ferry_slot"]; got != "b" {
				t.Fatalf("ferry_slot=%q after repair", got)
			}
		})
	}
}

// testUBootReopen returns a fresh environment for the same locations, as
// after a reboot.
func testUBootReopen(t *testing.T, e *UBootEnv) *UBootEnv {
	t.Helper()
	n, err := NewUBootEnv(e.locs...)
	if err != nil {
		t.Fatal(err)
	}
	n.LockPath = e.LockPath
	return n
}

func TestWritableBootPartition(t *testing.T) {
	old := sysClassBlock
	sysClassBlock = t.TempDir()
	defer func() { sysClassBlock = old }()
	ro := filepath.Join(sysClassBlock, "mmcblk1boot0", "force_ro")
	os.MkdirAll(filepath.Dir(ro), 0o755)
	os.WriteFile(ro, []byte("1\n"), 0o644)

	restore, err := writableBootPartition("/dev/mmcblk1boot0")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(ro); string(b) != "0" {
		t.Errorf("force_ro = %q during write, want 0", b)
	}
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(ro); string(b) != "1" {
		t.Errorf("force_ro = %q after write, want 1", b)
	}
	// Not a boot partition, or no force_ro: nothing to do.
	for _, dev := range []string{"/dev/mmcblk1", "/dev/mmcblk1boot1", "/tmp/mmcblk1boot0"} {
		if _, err := writableBootPartition(dev); err != nil {
			t.Errorf("%s: %v", dev, err)
		}
	}
}
