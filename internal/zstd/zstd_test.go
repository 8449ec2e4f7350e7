package zstd

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/internal/testtool"
)

var inputs = []struct {
	name string
	data []byte
}{
	{"empty", nil},
	{"1 byte", []byte{'x'}},
	{"random 1 MiB", randomBytes(1<<20, 7)},
	{"compressible 3 MiB", bytes.Repeat([]byte("ferry offline update bundle payload\n"), 3<<20/36)},
	{"semi-compressible 20 MiB", semiCompressible(20 << 20)},
}

func TestRoundTrip(t *testing.T) {
	for _, in := range inputs {
		for _, e := range encoders() {
			if testing.Short() && len(in.data) > 4<<20 && e.name != "NewWriter" {
				continue
			}
			z := compress(t, e, in.data)
			for _, d := range decoders() {
				t.Run(in.name+"/"+e.name+"/"+d.name, func(t *testing.T) {
					if got := decompress(t, d, z); !bytes.Equal(got, in.data) {
						t.Fatalf("round trip changed the data: got %d bytes, want %d", len(got), len(in.data))
					}
				})
			}
		}
	}
}

// TestWritePatterns feeds the writers in awkward pieces: single bytes,
// sizes straddling the 1 MiB chunk, and one huge write.
func TestWritePatterns(t *testing.T) {
	data := semiCompressible(5<<20 + 12345)
	sizes := map[string][]int{
		"tiny":     {1, 2, 3, 1000},
		"straddle": {1<<20 - 1, 1<<20 + 1, 1 << 20, 7},
		"whole":    {len(data)},
	}
	for name, pattern := range sizes {
		for _, e := range encoders() {
			t.Run(name+"/"+e.name, func(t *testing.T) {
				var buf bytes.Buffer
				w, err := e.new(&buf)
				if err != nil {
					t.Fatal(err)
				}
				rest := data
				for i := 0; len(rest) > 0; i++ {
					n := min(pattern[i%len(pattern)], len(rest))
					m, err := w.Write(rest[:n])
					if err != nil || m != n {
						t.Fatalf("Write(%d bytes) = %d, %v", n, m, err)
					}
					rest = rest[n:]
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				if got := decompress(t, decoders()[0], buf.Bytes()); !bytes.Equal(got, data) {
					t.Fatal("round trip changed the data")
				}
			})
		}
	}
}

// A writer whose destination fails reports the failure, wrapped.
func TestWriterDestinationError(t *testing.T) {
	boom := errors.New("disk full")
	for _, e := range encoders() {
		t.Run(e.name, func(t *testing.T) {
			w, err := e.new(failWriter{boom})
			if err != nil {
				t.Fatal(err)
			}
			_, werr := w.Write(randomBytes(3<<20, 1))
			cerr := w.Close()
			if !errors.Is(werr, boom) && !errors.Is(cerr, boom) {
				t.Fatalf("Write: %v, Close: %v; want %v from one", werr, cerr, boom)
			}
		})
	}
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }

func TestNegativeWorkers(t *testing.T) {
	if _, err := NewWriter(io.Discard, -1); err == nil {
		t.Fatal("NewWriter(-1 workers) succeeded")
	}
}

// frame builds a zstd frame header with the given descriptor bytes followed
// by one last raw block holding "x".
func frame(descriptor ...byte) []byte {
	f := []byte{0x28, 0xb5, 0x2f, 0xfd}
	f = append(f, descriptor...)
	return append(f, 0x09, 0x00, 0x00, 'x') // last, raw, size 1
}

func TestReaderWindowLimit(t *testing.T) {
	tests := []struct {
		name    string
		frame   []byte
		wantErr bool
	}{
		// Frame_Header_Descriptor 0x00: window descriptor follows.
		// Window_Descriptor: exponent in the top 5 bits, log = 10+exponent.
		{"1 KiB window", frame(0x00, 0x00), false},
		{"128 MiB window", frame(0x00, 17<<3), false},
		{"144 MiB window", frame(0x00, 17<<3|1), true}, // 128 MiB + 1/8
		{"1 GiB window", frame(0x00, 20<<3), true},
		{"3.75 TiB window", frame(0x00, 0xff), true},
		// Single segment with an 8-byte content size: the window is the
		// content size.
		{"single segment 1 TiB", frame(0xe0, 0, 0, 0, 0, 0, 1, 0, 0), true},
	}
	for _, tt := range tests {
		for _, src := range []struct {
			name string
			r    func([]byte) io.Reader
		}{
			{"bytes.Reader", func(b []byte) io.Reader { return bytes.NewReader(b) }},
			{"bytes.Buffer", func(b []byte) io.Reader { return bytes.NewBuffer(b) }},
			{"stream", func(b []byte) io.Reader { return io.MultiReader(bytes.NewReader(b)) }},
		} {
			t.Run(tt.name+"/"+src.name, func(t *testing.T) {
				r, err := NewReader(src.r(tt.frame))
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				got, err := io.ReadAll(r)
				if !tt.wantErr {
					if err != nil || string(got) != "x" {
						t.Fatalf("got %q, %v; want \"x\", nil", got, err)
					}
					return
				}
				if !errors.Is(err, ErrWindowTooLarge) {
					t.Fatalf("err = %v, want ErrWindowTooLarge", err)
				}
				if !strings.Contains(err.Error(), "over 128 MiB") {
					t.Errorf("error %q does not name the limit", err)
				}
			})
		}
	}
}

// The decoder allocates a frame's whole window when the frame starts (a
// ring buffer in klauspost/compress), so memory is bounded by MaxWindow,
// and a refused frame costs nothing.
func TestReaderMemory(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
		max   uint64
	}{
		{"1 KiB window", frame(0x00, 0x00), 1 << 20},
		{"2 MiB window (level 3)", frame(0x00, 11<<3), 4 << 20},
		{"128 MiB window", frame(0x00, 17<<3), MaxWindow + 4<<20},
		{"1 GiB window, refused", frame(0x00, 20<<3), 1 << 20},
		{"single segment 1 TiB, refused", frame(0xe0, 0, 0, 0, 0, 0, 1, 0, 0), 1 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			r, err := NewReader(bytes.NewReader(tt.frame))
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, r)
			r.Close()
			runtime.ReadMemStats(&after)
			got := after.TotalAlloc - before.TotalAlloc
			t.Logf("allocated %d KiB", got>>10)
			if got > tt.max {
				t.Errorf("allocated %d KiB, want at most %d KiB", got>>10, tt.max>>10)
			}
		})
	}
}

func TestReaderErrors(t *testing.T) {
	for name, data := range map[string][]byte{
		"not zstd":  []byte("hello, world"),
		"truncated": compress(t, encoders()[0], semiCompressible(1<<20))[:1000],
	} {
		t.Run(name, func(t *testing.T) {
			r, err := NewReader(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if _, err := io.Copy(io.Discard, r); err == nil || !strings.HasPrefix(err.Error(), "decompressing zstd stream: ") {
				t.Fatalf("err = %v, want a wrapped decompression error", err)
			}
		})
	}
}

// TestCLI checks interoperability with the zstd command line tool, which is
// what people reach for to inspect a payload, and that NewWriter's output
// stays within 2 % of `zstd -3`.
func TestCLI(t *testing.T) {
	cli := testtool.Require(t, "zstd", "zstd")
	data := semiCompressible(20 << 20)
	dir := t.TempDir()
	raw := dir + "/raw"
	if err := os.WriteFile(raw, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ref, err := exec.Command(cli, "-3", "-q", "-c", raw).Output()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("NewReader reads zstd -3", func(t *testing.T) {
		if got := decompress(t, decoders()[0], ref); !bytes.Equal(got, data) {
			t.Fatal("round trip changed the data")
		}
	})
	for _, e := range encoders() {
		t.Run(e.name, func(t *testing.T) {
			z := compress(t, e, data)
			cmd := exec.Command(cli, "-d", "-q", "-c")
			cmd.Stdin = bytes.NewReader(z)
			got, err := cmd.Output()
			if err != nil {
				t.Fatalf("zstd -d: %v", err)
			}
			if !bytes.Equal(got, data) {
				t.Fatal("zstd -d changed the data")
			}
			ratio := float64(len(z)) / float64(len(ref))
			t.Logf("%d bytes, %.4f × zstd -3 (%d)", len(z), ratio, len(ref))
			if strings.HasPrefix(e.name, "libzstd") && (ratio > 1.02 || ratio < 0.98) {
				t.Errorf("output is %.4f × the size of zstd -3's, want within 2 %%", ratio)
			}
		})
	}
}
