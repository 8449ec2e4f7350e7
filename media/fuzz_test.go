package media

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/layout"
	"github.com/ferry-update/ferry/verify"
)

// The tiny image's partition: right after the GPT, 80 KiB.
const tinyStart, tinySectors = 34, 160

// tinyImage is a complete stick small enough to fuzz: a GPT disk of
// about 110 KiB whose FAT32 partition (far below the FAT32 minimum that
// Build keeps to, but well formed) holds a one-bundle layout and a report.
func tinyImage(t testing.TB) ([]byte, *verify.PublicKey) {
	t.Helper()
	dir := t.TempDir()
	key := newKey(t, dir, "k")
	p := makeBundle(t, dir, "tiny", "1.0.0", []string{"b"}, 100, 0, key)
	a, err := bundle.OpenArchive(p)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	files, err := layout.Files([]layout.Bundle{{Manifest: a.RawManifest(), Config: a.RawConfig(), Signatures: a.Signatures()}})
	if err != nil {
		t.Fatal(err)
	}
	var sfs []stickFile
	for name, data := range files {
		sfs = append(sfs, stickFile{path: "/ferry/" + name, data: data, size: int64(len(data))})
	}
	for _, l := range a.Manifest().Layers { // small: no need to stream
		r, _, _ := a.Blob(l.Digest)
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(r); err != nil {
			t.Fatal(err)
		}
		sfs = append(sfs, stickFile{path: "/ferry/blobs/sha256/" + l.Digest.Encoded(), data: buf.Bytes(), size: int64(buf.Len())})
	}
	sfs = append(sfs, stickFile{path: "/ferry/reports/d-1.json", data: []byte(`{"deviceId":"d","result":"success"}`), size: 35})
	geo := geometry{start: tinyStart, sectors: tinySectors}
	img := filepath.Join(dir, "tiny.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate((tinyStart + tinySectors + gptBackup + 1) * 512); err != nil {
		t.Fatal(err)
	}
	if err := writeImage(f, geo, "TINY", sfs, nil); err != nil {
		t.Fatal(err)
	}
	if err := fixFAT32(f, tinyStart*512, tinySectors*512); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return b, key.Pub
}

func TestTinyImage(t *testing.T) {
	b, key := tinyImage(t)
	p := filepath.Join(t.TempDir(), "t.img")
	os.WriteFile(p, b, 0o644)
	in, err := Inspect(p, InspectOptions{Policy: &verify.Policy{Keys: []*verify.PublicKey{key}, Threshold: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Bundles) != 1 || in.Bundles[0].Status != StatusValid || len(in.Reports) != 1 || in.Reports[0].Report == nil {
		t.Fatalf("%+v", in)
	}
	if _, err := os.Stat("/usr/sbin/fsck.fat"); err == nil {
		out, _ := fsck(t, p, tinyStart*512, tinySectors*512)
		t.Logf("fsck.fat on the tiny image (FAT32 below its minimum size, so a warning is expected):\n%s", out)
	}
}

// FuzzInspect feeds damaged and random images to Inspect and Reports:
// an error is fine, a panic or a hang is not.
func FuzzInspect(f *testing.F) {
	b, key := tinyImage(f)
	f.Add(b)
	gptless := append([]byte(nil), b...)
	copy(gptless[512:], make([]byte, 512))
	f.Add(gptless)
	fatted := append([]byte(nil), b...)
	binary.LittleEndian.PutUint32(fatted[(tinyStart+32)*512+4*3:], 0x0ffffff0)
	f.Add(fatted)
	f.Add(b[tinyStart*512:]) // the filesystem alone, as a superfloppy
	f.Add([]byte("not an image at all"))
	pol := &verify.Policy{Keys: []*verify.PublicKey{key}, Threshold: 1}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4<<20 {
			return
		}
		tmp, err := os.CreateTemp(dir, "fuzz-*.img")
		if err != nil {
			t.Fatal(err)
		}
		defer os.Remove(tmp.Name())
		tmp.Write(data)
		tmp.Close()
		if in, err := Inspect(tmp.Name(), InspectOptions{Policy: pol}); err == nil {
			for _, b := range in.Bundles {
				if b.Status == "" {
					t.Fatalf("bundle without a status: %+v", b)
				}
			}
		}
		Reports(tmp.Name())
	})
}
