package module

import (
	"archive/tar"
	"io"
	"strings"
	"testing"
)

func FuzzTarFiles(f *testing.F) {
	f.Add(tarEntries(f, entry{typ: tar.TypeReg, name: "a", data: "1"}, entry{typ: tar.TypeReg, name: "./b", data: "22"}))
	f.Add(tarEntries(f, entry{typ: tar.TypeDir, name: "./"}, entry{typ: tar.TypeSymlink, name: "l", link: "x"}))
	f.Add(tarEntries(f, entry{typ: tar.TypeXGlobalHeader, name: "g"}, entry{typ: tar.TypeReg, name: "a\nb"}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		src := TarFiles(strings.NewReader(string(data)))
		seen := map[string]bool{}
		for i := 0; i <= MaxFiles+1; i++ {
			file, r, err := src.Next()
			if err != nil {
				// Errors are sticky.
				if _, _, err2 := src.Next(); err2 != err {
					t.Fatalf("error changed from %v to %v", err, err2)
				}
				return
			}
			if cerr := checkFileName(file.Name); cerr != nil {
				t.Fatalf("unsafe name returned: %v", cerr)
			}
			if seen[file.Name] {
				t.Fatalf("%q returned twice", file.Name)
			}
			seen[file.Name] = true
			if file.Size < 0 {
				t.Fatalf("negative size %d", file.Size)
			}
			n, err := io.Copy(io.Discard, r)
			if err == nil && n != file.Size {
				t.Fatalf("read %d bytes of a %d byte file", n, file.Size)
			}
		}
		t.Fatalf("more than %d files returned", MaxFiles)
	})
}

func FuzzParseAnswer(f *testing.F) {
	for _, s := range []string{"", "Yes\n", "No", " Automatic \r\n", "a\nb\n", "\n\n\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ans, err := parseAnswer(data, false)
		if err != nil {
			return
		}
		if strings.ContainsAny(ans, "\n") || strings.TrimSpace(ans) != ans {
			t.Fatalf("answer %q", ans)
		}
	})
}
