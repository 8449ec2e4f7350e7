package bootenv

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
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
