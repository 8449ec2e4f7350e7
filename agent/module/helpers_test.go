package module

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a log that tests read while modules may still write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newRunner installs the test modules (testdata/NAME.sh as NAME) and the
// example single-file module in a fresh modules directory.
func newRunner(t *testing.T) (*Runner, *syncBuffer) {
	t.Helper()
	if err := supported(); err != nil {
		t.Skip(err)
	}
	mods := t.TempDir()
	scripts, err := filepath.Glob("testdata/*.sh")
	if err != nil {
		t.Fatal(err)
	}
	scripts = append(scripts, "../../examples/modules/single-file")
	for _, s := range scripts {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(filepath.Base(s), ".sh")
		if err := os.WriteFile(filepath.Join(mods, name), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	log := &syncBuffer{}
	return &Runner{
		ModulesDir: mods,
		WorkDir:    t.TempDir(),
		DeviceType: "test-board",
		Timeout:    20 * time.Second,
		Log:        log,
	}, log
}

type testFile struct {
	name string
	data []byte
}

// sliceSource serves files from memory.
type sliceSource struct {
	files []testFile
	i     int
}

func (s *sliceSource) Next() (File, io.Reader, error) {
	if s.i == len(s.files) {
		return File{}, nil, io.EOF
	}
	f := s.files[s.i]
	s.i++
	return File{Name: f.name, Size: int64(len(f.data))}, bytes.NewReader(f.data), nil
}

// tarOf builds a tar stream of files (names as given).
func tarOf(t testing.TB, files ...testFile) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o644, Size: int64(len(f.data))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, name, data string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// bigData is deterministic content larger than a pipe's buffer.
func bigData(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}
