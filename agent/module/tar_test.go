package module

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// entry is one tar entry for building test archives.
type entry struct {
	typ  byte
	name string
	data string
	link string
}

func tarEntries(t testing.TB, es ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{Typeflag: e.typ, Name: e.name, Mode: 0o644, Linkname: e.link}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.data))
		}
		if e.typ == tar.TypeXGlobalHeader {
			h = &tar.Header{Typeflag: e.typ, Name: e.name, PAXRecords: map[string]string{"comment": "x"}}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.data))
		}
	}
	tw.Close()
	return buf.Bytes()
}

// readAll returns "name=content;" for every file of src.
func readAll(src FileSource) (string, error) {
	var b strings.Builder
	for {
		f, r, err := src.Next()
		if err == io.EOF {
			return b.String(), nil
		}
		if err != nil {
			return b.String(), err
		}
		data, err := io.ReadAll(r)
		if err != nil {
			return b.String(), err
		}
		if int64(len(data)) != f.Size {
			return b.String(), errors.New("size mismatch")
		}
		b.WriteString(f.Name + "=" + string(data) + ";")
	}
}

func TestTarFiles(t *testing.T) {
	reg := func(name, data string) entry { return entry{typ: tar.TypeReg, name: name, data: data} }
	for _, tc := range []struct {
		name    string
		entries []entry
		want    string
		err     string
	}{
		{"plain", []entry{reg("b", "2"), reg("a", "1")}, "b=2;a=1;", ""},
		{"dot prefix", []entry{{typ: tar.TypeDir, name: "./"}, reg("./x", "1")}, "x=1;", ""},
		{"root dir", []entry{{typ: tar.TypeDir, name: "."}, reg("x", "")}, "x=;", ""},
		{"global header", []entry{{typ: tar.TypeXGlobalHeader, name: "g"}, reg("x", "1")}, "x=1;", ""},
		{"empty", nil, "", ""},
		{"subdirectory", []entry{reg("a", "1"), {typ: tar.TypeDir, name: "sub/"}}, "a=1;", "is a directory"},
		{"nested file", []entry{reg("sub/a", "1")}, "", "want no '/'"},
		{"dot dot", []entry{reg("../a", "1")}, "", "want no '/'"},
		{"absolute", []entry{reg("/etc/passwd", "1")}, "", "want no '/'"},
		{"newline", []entry{reg("a\nb", "1")}, "", "control characters"},
		{"dotdot alone", []entry{reg("..", "1")}, "", "want a plain file name"},
		{"symlink", []entry{{typ: tar.TypeSymlink, name: "l", link: "/etc/shadow"}}, "", "plain files only"},
		{"hard link", []entry{reg("a", "1"), {typ: tar.TypeLink, name: "l", link: "a"}}, "a=1;", "plain files only"},
		{"device", []entry{{typ: tar.TypeChar, name: "null"}}, "", "plain files only"},
		{"twice", []entry{reg("a", "1"), reg("./a", "2")}, "a=1;", "twice"},
		{"long name", []entry{reg(strings.Repeat("n", 256), "")}, "", "1 to 255 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readAll(TarFiles(bytes.NewReader(tarEntries(t, tc.entries...))))
			if got != tc.want {
				t.Errorf("files %q, want %q", got, tc.want)
			}
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("error %v, want %q", err, tc.err)
			}
		})
	}
}

func TestTarFilesTruncated(t *testing.T) {
	full := tarEntries(t, entry{typ: tar.TypeReg, name: "a", data: strings.Repeat("x", 3000)})
	for _, n := range []int{100, 600, 2000} {
		_, err := readAll(TarFiles(bytes.NewReader(full[:n])))
		if err == nil {
			t.Errorf("archive cut at %d bytes read without error", n)
		}
	}
	// Garbage after the end of the archive is read and ignored, so that a
	// verifying reader underneath reaches end-of-file.
	r := bytes.NewReader(append(full, "trailing"...))
	if _, err := readAll(TarFiles(r)); err != nil || r.Len() != 0 {
		t.Errorf("err %v, %d bytes left", err, r.Len())
	}
}

func TestTarFilesLimit(t *testing.T) {
	var es []entry
	for i := 0; i <= MaxFiles; i++ {
		es = append(es, entry{typ: tar.TypeReg, name: strings.Repeat("f", 1+i%200) + string(rune('a'+i/200))})
	}
	_, err := readAll(TarFiles(bytes.NewReader(tarEntries(t, es...))))
	if err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("error %v", err)
	}
}
