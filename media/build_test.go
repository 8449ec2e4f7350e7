package media

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/transport/stick"
	"github.com/ferry-update/ferry/verify"
)

// testBundles makes two signed bundles for two device types, the first in
// three parts.
func testBundles(t *testing.T) (dir string, paths []string, key testKey) {
	t.Helper()
	dir = t.TempDir()
	key = newKey(t, dir, "release")
	paths = []string{
		makeBundle(t, dir, "gateway", "1.4.2", []string{"board-a", "board-b"}, 3<<20, 1<<20, key),
		makeBundle(t, dir, "sensor", "2.0.0+build.7", []string{"board-c"}, 200<<10, 0, key),
	}
	return dir, paths, key
}

// TestBuildRealTools builds images of several sizes, and fsck.fat, sgdisk
// and mtools find each clean and read every file back byte for byte.
func TestBuildRealTools(t *testing.T) {
	needTool(t, "fsck.fat", "sgdisk", "mdir", "mcopy")
	dir, paths, key := testBundles(t)
	for _, tc := range []struct {
		name string
		size int64
	}{
		{"63MiB", 63 << 20},
		{"64MiB", 64 << 20},
		{"65MiB", 65 << 20},
		{"66MiB-partition-of-64MiB", 66 << 20}, // the largest partition would be 64 MiB: issue 418's size
		{"auto", 0},
		{"1GiB-sparse", 1 << 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "stick.img")
			res, err := Build(img, paths, BuildOptions{Size: tc.size, Trust: []string{key.pubPEM}})
			if err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(img)
			if err != nil {
				t.Fatal(err)
			}
			if tc.size != 0 && st.Size() != tc.size || st.Size() != res.Size {
				t.Errorf("image of %d bytes, result says %d, asked %d", st.Size(), res.Size, tc.size)
			}
			fsckClean(t, img, res.PartitionOffset, res.PartitionSize)
			out, err := exec.Command("sgdisk", "-v", img).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "No problems found") {
				t.Errorf("sgdisk -v: %v\n%s", err, out)
			}
			checkWithMtools(t, img, res, paths, key)
		})
	}
	_ = dir
}

// checkWithMtools lists the stick with mdir and reads it back with mcopy:
// every blob byte-identical, and the copy a stick that transport/stick reads.
func checkWithMtools(t *testing.T, img string, res *BuildResult, paths []string, key testKey) {
	t.Helper()
	at := imageAt(img, res.PartitionOffset)
	root := mtools(t, "mdir", "-i", at, "::/")
	if !strings.Contains(root, "README") || !strings.Contains(root, "ferry") || !strings.Contains(root, "Volume in drive : is FERRY") {
		t.Errorf("mdir ::/ =\n%s", root)
	}
	if out := mtools(t, "mdir", "-i", at, "::/ferry/reports"); !strings.Contains(out, "2 files") && !strings.Contains(out, "No files") {
		t.Logf("mdir ::/ferry/reports =\n%s", out)
	}
	copyDir := t.TempDir()
	mtools(t, "mcopy", "-s", "-n", "-i", at, "::/ferry", "::/README.txt", copyDir)
	readme, err := os.ReadFile(filepath.Join(copyDir, "README.txt"))
	if err != nil || !bytes.Contains(readme, []byte("gateway")) || !bytes.Contains(readme, []byte("\r\n")) {
		t.Errorf("README.txt: %v\n%s", err, readme)
	}
	for _, p := range paths {
		a, err := bundle.OpenArchive(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range a.Manifest().Layers {
			r, _, _ := a.Blob(l.Digest)
			want, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(copyDir, "ferry", "blobs", "sha256", l.Digest.Encoded()))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("blob %s read back with mcopy: %v, equal %v", l.Digest, err, bytes.Equal(got, want))
			}
		}
		a.Close()
	}
	if _, err := os.Stat(filepath.Join(copyDir, "ferry", "reports")); err != nil {
		t.Errorf("no /ferry/reports: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(copyDir, "ferry", "trust", "release.pub")); err != nil || !bytes.Contains(b, []byte("PUBLIC KEY")) {
		t.Errorf("trust file: %v", err)
	}

	// The copy is a mirror store and a stick.
	ms, err := mirror.Open(filepath.Join(copyDir, "ferry"))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := ms.List()
	if err != nil || len(entries) != 2 {
		t.Fatalf("mirror list of the stick: %v %+v", err, entries)
	}
	s, err := stick.OpenDir(copyDir)
	if err != nil {
		t.Fatal(err)
	}
	bs, err := s.Bundles()
	if err != nil || len(bs) != 2 {
		t.Fatalf("stick bundles: %v %+v", err, bs)
	}
	for i, b := range bs {
		if b.Err != nil || b.Name != entries[i].Name || b.Version != entries[i].Version || b.Manifest != entries[i].Digest || len(b.Signatures) != entries[i].Signatures {
			t.Errorf("stick sees %+v, mirror %+v", b, entries[i])
		}
		rc, err := s.Open(b)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := verify.Bundle(rc, verify.Policy{Keys: []*verify.PublicKey{key.Pub}, Threshold: 1, Deep: true})
		rc.Close()
		if err != nil || rep.Manifest != b.Manifest {
			t.Errorf("verify %s from the stick copy: %v", b.Name, err)
		}
	}
}

func TestBuildErrors(t *testing.T) {
	_, paths, _ := testBundles(t)
	out := filepath.Join(t.TempDir(), "x.img")
	for name, tc := range map[string]struct {
		paths []string
		o     BuildOptions
		want  string
	}{
		"no bundles":  {nil, BuildOptions{}, "no bundles"},
		"bad label":   {paths, BuildOptions{Label: "no/slash"}, "label"},
		"too small":   {paths, BuildOptions{Size: 16 << 20}, "too small for FAT32"},
		"content":     {paths, BuildOptions{Size: 64 << 20, Trust: []string{"/nonexistent"}}, "trust file"},
		"not bundle":  {[]string{"/etc/hostname"}, BuildOptions{}, ""},
		"too large":   {paths, BuildOptions{Size: 300 << 30}, "at most"},
		"fits 64MiB":  {paths, BuildOptions{Size: 64 << 20}, ""},
		"same bundle": {append(paths, paths[0]), BuildOptions{}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Build(out, tc.paths, tc.o)
			switch {
			case name == "fits 64MiB" || name == "same bundle":
				if err != nil {
					t.Errorf("%v", err)
				}
			case err == nil:
				t.Errorf("built")
			case !strings.Contains(err.Error(), tc.want):
				t.Errorf("error %q, want %q", err, tc.want)
			}
		})
	}
	// A build that fails leaves no file behind.
	ents, _ := os.ReadDir(filepath.Dir(out))
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("left %s", e.Name())
		}
	}
}

// TestBuildTooFull: an explicit size the content does not fit is refused
// with the size that would do.
func TestBuildTooFull(t *testing.T) {
	dir := t.TempDir()
	big := makeBundle(t, dir, "big", "1.0.0", []string{"b"}, 70<<20, 0)
	_, err := Build(filepath.Join(dir, "x.img"), []string{big}, BuildOptions{Size: 64 << 20})
	if err == nil || !strings.Contains(err.Error(), "do not fit in 64.0 MiB") || !strings.Contains(err.Error(), "at least 128.0 MiB") {
		t.Errorf("%v", err)
	}
}
