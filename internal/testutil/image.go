package testutil

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// ExtractPartition copies size bytes at off of img to a new sparse file
// (fsck.fat 4.2 has no --offset), and returns its path.
func ExtractPartition(t testing.TB, img string, off, size int64) string {
	t.Helper()
	src, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	out := filepath.Join(t.TempDir(), "part.img")
	dst, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	buf := make([]byte, 1<<20)
	zero := make([]byte, len(buf))
	for pos := int64(0); pos < size; pos += int64(len(buf)) {
		n := min(int64(len(buf)), size-pos)
		if _, err := src.ReadAt(buf[:n], off+pos); err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		if bytes.Equal(buf[:n], zero[:n]) {
			continue
		}
		if _, err := dst.WriteAt(buf[:n], pos); err != nil {
			t.Fatal(err)
		}
	}
	if err := dst.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return out
}
