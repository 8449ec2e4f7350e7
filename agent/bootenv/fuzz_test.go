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
	"unicode/utf8"
)

// FuzzUBootEnvParse parses arbitrary images, both as found and with a
// correct CRC so the parser proper is reached, and re-encodes whatever it
// accepts.
func FuzzUBootEnvParse(f *testing.F) {
	f.Add([]byte("a=1\x00b=x=y\x00\x00"), true)
	f.Add([]byte("=\x00junk\x00a=\x00\x00\xff"), false)
	f.Add([]byte("a=1\x00"), false)
	f.Add(bytes.Repeat([]byte{0xff}, 64), true)
	f.Fuzz(func(t *testing.T, data []byte, redundant bool) {
		decodeUBootEnv(data, redundant)

		img := withCRC(make([]byte, headerLen(redundant)), data)
		vars, err := decodeUBootEnv(img, redundant)
		if err != nil {
			if !strings.Contains(err.Error(), "not NUL-terminated") && len(data) != 0 {
				t.Fatalf("valid CRC rejected: %v", err)
			}
			return
		}
		enc, err := encodeUBootEnv(vars, len(img), redundant, 1)
		if errors.Is(err, ErrTooLarge) {
			// Only an area filled to the last byte, with no room for
			// the final NUL, is accepted but cannot be written back.
			if data[len(data)-1] != 0 || bytes.Contains(data, []byte{0, 0}) {
				t.Fatalf("cannot re-encode %q: %v", vars, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("cannot re-encode %q: %v", vars, err)
		}
		again, err := decodeUBootEnv(enc, redundant)
		if err != nil || !maps.Equal(again, vars) {
			t.Fatalf("round trip: %q, %v; want %q", again, err, vars)
		}
	})
}

// FuzzGrubEnvParse parses arbitrary blocks, with and without the
// signature, and re-encodes whatever it accepts.
func FuzzGrubEnvParse(f *testing.F) {
	f.Add([]byte("a=1\nb=x\\\\y\\\nz\n# c\n###"))
	f.Add([]byte("x\ny=1\n=2\na\x00b=3\n"))
	f.Add([]byte("v=\\"))
	f.Fuzz(func(t *testing.T, data []byte) {
		decodeGrubEnv(data)
		vars, err := decodeGrubEnv(append([]byte(grubEnvSignature), data...))
		if err != nil {
			if len(data) != 0 {
				t.Fatalf("signed block rejected: %v", err)
			}
			return
		}
		// Re-encoded entries are never longer than the originals; the
		// header may be.
		enc, err := encodeGrubEnv(vars, len(grubEnvHeader)+len(data))
		if errors.Is(err, ErrInvalidVar) {
			for name := range vars {
				if strings.Contains(name, "\n") {
					return // GRUB reads such names; we refuse to write them
				}
			}
		}
		if err != nil {
			t.Fatalf("cannot re-encode %q: %v", vars, err)
		}
		again, err := decodeGrubEnv(enc)
		if err != nil || !maps.Equal(again, vars) {
			t.Fatalf("round trip: %q, %v; want %q", again, err, vars)
		}
	})
}

// FuzzFwEnvConfig parses arbitrary configurations and checks that what it
// accepts, written out again, parses to the same locations.
func FuzzFwEnvConfig(f *testing.F) {
	f.Add("/dev/mmcblk0 0x400000 0x4000 0x200\n/dev/mmcblk0 0x404000 0x4000 0x200 1\n")
	f.Add("# c\nf 010 400 # x\n")
	f.Add("/dev/sda -0x8000 4000\n")
	f.Fuzz(func(t *testing.T, cfg string) {
		locs, err := ParseFwEnvConfig(strings.NewReader(cfg))
		if err != nil {
			return
		}
		var out strings.Builder
		for _, l := range locs {
			fmt.Fprintf(&out, "%s %d %#x %x %#X\n", l.Device, l.Offset, l.Size, l.SectorSize, l.Sectors)
		}
		again, err := ParseFwEnvConfig(strings.NewReader(out.String()))
		if err != nil {
			t.Fatalf("re-parse %q: %v", out.String(), err)
		}
		if len(again) != len(locs) {
			t.Fatalf("re-parse %q: %d locations, want %d", out.String(), len(again), len(locs))
		}
		for i := range locs {
			if again[i] != locs[i] {
				t.Fatalf("re-parse: %+v, want %+v", again[i], locs[i])
			}
		}
		NewUBootEnv(locs...) // must not panic either
	})
}

// FuzzFileEnvParse parses arbitrary files and re-encodes what it accepts.
func FuzzFileEnvParse(f *testing.F) {
	f.Add("a=1\n# c\n\nb=x=y")
	f.Fuzz(func(t *testing.T, s string) {
		vars, err := decodeFileEnv(s)
		if err != nil {
			return
		}
		enc, err := encodeFileEnv(vars)
		if err != nil {
			t.Fatalf("cannot re-encode %q: %v", vars, err)
		}
		again, err := decodeFileEnv(string(enc))
		if err != nil || !maps.Equal(again, vars) {
			t.Fatalf("round trip: %q, %v; want %q", again, err, vars)
		}
	})
}

// FuzzEFILoadOption parses arbitrary Boot#### data and re-encodes what it
// accepts: the same option, and the same bytes when the description is
// well-formed UTF-16.
func FuzzEFILoadOption(f *testing.F) {
	f.Add(loadOption{Attributes: 1, Description: "ferry a", FilePath: loaderDevicePath(gptPartition{Number: 1, Start: 2048, Size: 1}, `\EFI\ferry\a.efi`), OptionalData: []byte("x\x00")}.encode())
	f.Add([]byte{1, 0, 0, 0, 4, 0, 'a', 0, 0, 0, 0x7f, 0xff, 4, 0})
	f.Add([]byte{1, 0, 0, 0, 8, 0, 0, 0xd8, 0, 0, 4, 4, 4, 0, 0x7f, 0xff, 4, 0, 9})
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := parseLoadOption(data)
		if err != nil {
			return
		}
		devicePathFile(o.FilePath)
		enc := o.encode()
		again, err := parseLoadOption(enc)
		if err != nil {
			t.Fatalf("re-parse %x: %v", enc, err)
		}
		if again.Attributes != o.Attributes || again.Description != o.Description ||
			!bytes.Equal(again.FilePath, o.FilePath) || !bytes.Equal(again.OptionalData, o.OptionalData) {
			t.Fatalf("round trip: %+v, want %+v", again, o)
		}
		if !strings.ContainsRune(o.Description, utf8.RuneError) && !bytes.Equal(enc, data) {
			t.Fatalf("re-encoded %x, was %x", enc, data)
		}
	})
}

// FuzzEFIBootOrder parses arbitrary BootOrder data; what it accepts
// re-encodes to the same bytes.
func FuzzEFIBootOrder(f *testing.F) {
	f.Add([]byte{1, 0, 2, 0, 0, 0})
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, data []byte) {
		parseBootNumber("BootNext", data)
		order, err := parseBootOrder(data)
		if err != nil {
			return
		}
		if enc := encodeBootOrder(order); !bytes.Equal(enc, data) {
			t.Fatalf("re-encoded %x, was %x", enc, data)
		}
	})
}

// FuzzGPT parses arbitrary partition tables, both as found and with
// their CRCs made right so that the parser proper is reached.
func FuzzGPT(f *testing.F) {
	hdr := make([]byte, 92)
	copy(hdr, "EFI PART")
	binary.LittleEndian.PutUint32(hdr[12:], 92)
	binary.LittleEndian.PutUint64(hdr[72:], 2)
	binary.LittleEndian.PutUint32(hdr[80:], 2)
	binary.LittleEndian.PutUint32(hdr[84:], 128)
	f.Add(hdr, make([]byte, 256), 1)
	f.Fuzz(func(t *testing.T, hdr, entries []byte, number int) {
		if h, err := parseGPTHeader(hdr); err == nil {
			h.partition(entries, number)
		}
		if len(hdr) < 92 {
			return
		}
		hdr = bytes.Clone(hdr)
		copy(hdr, "EFI PART")
		size := binary.LittleEndian.Uint32(hdr[12:])
		if size < 92 || int(size) > len(hdr) {
			size = 92
			binary.LittleEndian.PutUint32(hdr[12:], size)
		}
		binary.LittleEndian.PutUint32(hdr[88:], crc32.ChecksumIEEE(entries))
		copy(hdr[16:20], []byte{0, 0, 0, 0})
		binary.LittleEndian.PutUint32(hdr[16:], crc32.ChecksumIEEE(hdr[:size]))
		h, err := parseGPTHeader(hdr)
		if err != nil {
			return
		}
		p, err := h.partition(entries, number)
		if err == nil && (p.Number != uint32(number) || p.Size == 0 || p.Start+p.Size-1 < p.Start) {
			t.Fatalf("partition %d: %+v", number, p)
		}
	})
}

// FuzzEFIState reads arbitrary variables as the efi backend finds them in
// efivarfs: it never panics, and what it accepts is a state the protocol
// knows.
func FuzzEFIState(f *testing.F) {
	a := loadOption{Attributes: 1, Description: DefaultEFILabelA, FilePath: []byte{0x7f, 0xff, 4, 0}}.encode()
	b := loadOption{Attributes: 1, Description: DefaultEFILabelB, FilePath: []byte{0x7f, 0xff, 4, 0}}.encode()
	f.Add(a, b, []byte{1, 0, 2, 0}, []byte{2, 0}, []byte{1, 0}, []byte("b"))
	f.Add(a, b, []byte{2, 0}, []byte{}, []byte{2, 0}, []byte("a"))
	f.Fuzz(func(t *testing.T, bootA, bootB, order, next, cur, trial []byte) {
		dir := t.TempDir()
		for _, v := range []struct {
			name string
			data []byte
		}{{"Boot0001", bootA}, {"Boot0002", bootB}, {"BootOrder", order}, {"BootNext", next}, {"BootCurrent", cur}} {
			if len(v.data) != 0 {
				os.WriteFile(filepath.Join(dir, v.name+"-"+efiGlobalGUID), append([]byte{7, 0, 0, 0}, v.data...), 0o644)
			}
		}
		os.WriteFile(filepath.Join(dir, trialVar+"-"+ferryGUID), append([]byte{7, 0, 0, 0}, trial...), 0o644)
		st, err := EFIBoot{Dir: dir}.State()
		if err != nil {
			return
		}
		if checkSlot(st.Slot) != nil || st.Current != "" && checkSlot(st.Current) != nil ||
			st.FallbackDetected && (!st.UpgradeAvailable || st.Current == st.Slot) {
			t.Fatalf("state %+v", st)
		}
	})
}
