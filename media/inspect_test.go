package media

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/transport/stick"
	"github.com/ferry-update/ferry/verify"
)

func buildTestImage(t *testing.T) (img string, res *BuildResult, key testKey) {
	t.Helper()
	_, paths, key := testBundles(t)
	img = filepath.Join(t.TempDir(), "stick.img")
	res, err := Build(img, paths, BuildOptions{Trust: []string{key.pubPEM}})
	if err != nil {
		t.Fatal(err)
	}
	return img, res, key
}

func TestInspect(t *testing.T) {
	img, res, key := buildTestImage(t)
	in, err := Inspect(img, InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if in.PartitionTable != "gpt" || in.PartitionOffset != res.PartitionOffset || in.Label != "FERRY" || len(in.Bundles) != 2 || in.Free <= 0 {
		t.Fatalf("inspection: %+v", in)
	}
	b := in.Bundles[0]
	if b.Name != "gateway" || b.Version != "1.4.2" || strings.Join(b.DeviceTypes, ",") != "board-a,board-b" || b.Signatures != 1 || b.Status != StatusUnchecked {
		t.Errorf("bundle 0: %+v", b)
	}
	if len(in.Trust) != 1 || in.Trust[0] != "release.pub" || len(in.Reports) != 0 {
		t.Errorf("trust %v reports %v", in.Trust, in.Reports)
	}

	in, err = Inspect(img, InspectOptions{Policy: &verify.Policy{Keys: []*verify.PublicKey{key.Pub}, Threshold: 1}})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range in.Bundles {
		if b.Status != StatusValid || b.Verdict == nil || b.Verdict.ValidKeys != 1 {
			t.Errorf("%s with the right key: %+v", b.Name, b)
		}
	}
	other := newKey(t, t.TempDir(), "other")
	in, err = Inspect(img, InspectOptions{Policy: &verify.Policy{Keys: []*verify.PublicKey{other.Pub}, Threshold: 1}})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range in.Bundles {
		if b.Status != StatusInvalid || !strings.Contains(b.Reason, "0 valid signature(s)") {
			t.Errorf("%s with another key: %+v", b.Name, b)
		}
	}
	in, err = Inspect(img, InspectOptions{Policy: &verify.Policy{Keys: []*verify.PublicKey{key.Pub}, Threshold: 1, DeviceType: "board-c"}})
	if err != nil {
		t.Fatal(err)
	}
	if in.Bundles[0].Status != StatusOtherType || in.Bundles[1].Status != StatusValid {
		t.Errorf("device type board-c: %+v", in.Bundles)
	}
	if _, err := json.Marshal(in); err != nil {
		t.Error(err)
	}
}

// TestReportsFromImage: reports put on an image with mcopy, and a broken
// one, are read back by Reports and Inspect.
func TestReportsFromImage(t *testing.T) {
	needTool(t, "mcopy")
	img, res, _ := buildTestImage(t)
	dir := t.TempDir()
	r := stick.Report{DeviceID: "gw-0042", Bundle: "gateway", BundleVersion: "1.4.2", VersionBefore: "1.4.1", VersionAfter: "1.4.2",
		Result: stick.ResultSuccess, Started: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Finished: time.Date(2025, 1, 2, 3, 6, 0, 0, time.UTC)}
	b, _ := json.Marshal(r)
	os.WriteFile(filepath.Join(dir, "gw-0042-20250102T030600.000Z.json"), b, 0o644)
	os.WriteFile(filepath.Join(dir, "broken.json"), []byte(`{"deviceId":`), 0o644)
	mtools(t, "mcopy", "-i", imageAt(img, res.PartitionOffset), filepath.Join(dir, "gw-0042-20250102T030600.000Z.json"), filepath.Join(dir, "broken.json"), "::/ferry/reports/")
	rows, err := Reports(img)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Report == nil || rows[0].Report.DeviceID != "gw-0042" || rows[1].Error == "" {
		t.Fatalf("reports: %+v", rows)
	}
	in, err := Inspect(img, InspectOptions{})
	if err != nil || len(in.Reports) != 2 {
		t.Fatalf("inspect reports: %v %+v", err, in)
	}
	// The same from a directory, at each level.
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "ferry", "reports"), 0o755)
	os.WriteFile(filepath.Join(root, "ferry", "reports", "a.json"), b, 0o644)
	for _, d := range []string{root, filepath.Join(root, "ferry"), filepath.Join(root, "ferry", "reports")} {
		rows, err := Reports(d)
		if err != nil || len(rows) != 1 || rows[0].Report == nil {
			t.Errorf("Reports(%s): %v %+v", d, err, rows)
		}
	}
}

// TestInspectDamaged: a damaged GPT, boot sector or FAT is a clear error
// (or a warning where the backup GPT saves it), never a hang or a panic.
func TestInspectDamaged(t *testing.T) {
	img, res, _ := buildTestImage(t)
	orig, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	off := res.PartitionOffset
	g := diskfsGeometry(res.PartitionSize)
	fatAt := off + g.fatOffset(0)
	for _, tc := range []struct {
		name   string
		damage func(b []byte) []byte
		want   string // in the error; "" for a warning only
	}{
		{"primary GPT", func(b []byte) []byte { b[512+20] ^= 0xff; return b }, ""},
		{"both GPTs", func(b []byte) []byte { b[512+20] ^= 0xff; b[len(b)-512+20] ^= 0xff; return b }, "GPT partition table is damaged"},
		{"huge GPT array", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[512+80:], 1<<30); return b }, "partition entries"},
		{"boot sector", func(b []byte) []byte { b[off+510] = 0; return b }, "no boot sector signature"},
		{"cluster size", func(b []byte) []byte { b[off+13] = 3; return b }, "3 sectors per cluster"},
		{"FAT cycle", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[fatAt+4*3:], 3); return b }, "runs in a circle"},
		{"FAT out of range", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[fatAt+4*3:], 0x0ffffff0); return b }, "outside"},
		{"FAT copies differ", func(b []byte) []byte { b[off+g.fatOffset(1)+4*4000] = 7; return b }, "fat tables did not match"},
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }, "no FAT32 filesystem"},
		{"zeros", func(b []byte) []byte { return make([]byte, len(b)) }, "no FAT32 filesystem"},
		{"not a stick", func(b []byte) []byte { return []byte("hello") }, "too small"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "bad.img")
			if err := os.WriteFile(p, tc.damage(append([]byte(nil), orig...)), 0o644); err != nil {
				t.Fatal(err)
			}
			in, err := Inspect(p, InspectOptions{})
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("error %v, want a warning", err)
			case tc.want == "":
				if len(in.Warnings) == 0 || len(in.Bundles) != 2 {
					t.Errorf("no warning: %+v", in)
				}
			case err == nil:
				t.Fatalf("inspected: %+v", in)
			case !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "inspect "+p+": "):
				t.Errorf("error %q, want %q", err, tc.want)
			}
		})
	}
}

// TestHandMadeStick: a stick made without go-diskfs (mkfs.fat, then mmd and
// mcopy of a mirror directory made with 'ferry mirror add') is read by
// Inspect, and by transport/stick from a copy taken with mcopy -s.
func TestHandMadeStick(t *testing.T) {
	needTool(t, "mkfs.fat", "mcopy", "mmd", "sgdisk")
	dir, paths, key := testBundles(t)
	m, err := mirror.Init(filepath.Join(dir, "m"), testutil.MirrorKey(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if _, err := m.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	os.RemoveAll(filepath.Join(m.Dir(), "keys")) // a private key has no place on a stick
	os.RemoveAll(filepath.Join(m.Dir(), "tmp"))
	os.Remove(filepath.Join(m.Dir(), ".lock"))

	for _, layout := range []string{"superfloppy", "gpt"} {
		t.Run(layout, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "hand.img")
			var off int64
			f, _ := os.Create(img)
			f.Truncate(64 << 20)
			f.Close()
			mkfs := []string{"-F", "32", "-n", "HANDMADE"}
			if layout == "gpt" {
				out, err := exec.Command("sgdisk", "-n", "1:2048:+62M", "-t", "1:0700", img).CombinedOutput()
				if err != nil {
					t.Fatalf("sgdisk: %v\n%s", err, out)
				}
				off = 2048 * 512
				mkfs = append(mkfs, "--offset=2048", img, "63488") // 62 MiB in KiB blocks
			} else {
				mkfs = append(mkfs, img)
			}
			if out, err := exec.Command("mkfs.fat", mkfs...).CombinedOutput(); err != nil {
				t.Fatalf("mkfs.fat: %v\n%s", err, out)
			}
			at := imageAt(img, off)
			mtools(t, "mcopy", "-s", "-i", at, m.Dir(), "::/ferry")
			mtools(t, "mmd", "-i", at, "::/ferry/reports")

			in, err := Inspect(img, InspectOptions{Policy: &verify.Policy{Keys: []*verify.PublicKey{key.Pub}, Threshold: 1}})
			if err != nil {
				t.Fatal(err)
			}
			if in.Label != "HANDMADE" || len(in.Bundles) != 2 || in.Bundles[0].Status != StatusValid || in.Bundles[1].Status != StatusValid {
				t.Fatalf("inspection of a hand-made stick: %+v", in)
			}

			copyDir := t.TempDir()
			mtools(t, "mcopy", "-s", "-i", at, "::/ferry", copyDir)
			s, err := stick.OpenDir(copyDir)
			if err != nil {
				t.Fatal(err)
			}
			bs, err := s.Bundles()
			if err != nil || len(bs) != 2 {
				t.Fatalf("%v %+v", err, bs)
			}
			best, ok := stick.Best(bs, "board-b")
			if !ok || best.Name != "gateway" {
				t.Fatalf("best for board-b: %+v", best)
			}
			rc, err := s.Open(best)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			if _, err := verify.Bundle(rc, verify.Policy{Keys: []*verify.PublicKey{key.Pub}, Threshold: 1, DeviceType: "board-b", Deep: true}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.WriteReport(stick.Report{DeviceID: "gw-1", Bundle: best.Name, Result: stick.ResultSuccess}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestInspectCorruptPayload: a stick whose payload was damaged is not
// "valid": Inspect reads every payload part against its signed digest
// unless told Quick, and then says it checked the signatures only.
func TestInspectCorruptPayload(t *testing.T) {
	_, paths, key := testBundles(t)
	img := filepath.Join(t.TempDir(), "stick.img")
	if _, err := Build(img, paths, BuildOptions{Trust: []string{key.pubPEM}}); err != nil {
		t.Fatal(err)
	}
	// Find the first bundle's last payload part on the image and flip a
	// byte of it: the signatures still hold.
	a, err := bundle.OpenArchive(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	layers := a.Manifest().Layers
	r, _, err := a.Blob(layers[len(layers)-1].Digest)
	if err != nil {
		t.Fatal(err)
	}
	part, err := io.ReadAll(r)
	a.Close()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(raw, part)
	if at < 0 || len(part) < 2 {
		t.Fatal("payload part not found on the image")
	}
	raw[at+len(part)/2] ^= 0xff
	if err := os.WriteFile(img, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	policy := &verify.Policy{Keys: []*verify.PublicKey{key.Pub}, Threshold: 1}
	for _, tc := range []struct {
		quick         bool
		status0       string
		status1       string
		checked       string
		reasonContain string
	}{
		{false, StatusInvalid, StatusValid, CheckedAll, "digest mismatch"},
		{true, StatusSignaturesOnly, StatusSignaturesOnly, CheckedSignatures, ""},
	} {
		in, err := Inspect(img, InspectOptions{Policy: policy, Quick: tc.quick})
		if err != nil {
			t.Fatal(err)
		}
		b0, b1 := in.Bundles[0], in.Bundles[1]
		if b0.Status != tc.status0 || b0.Checked != tc.checked || !strings.Contains(b0.Reason, tc.reasonContain) {
			t.Errorf("quick=%v: damaged bundle %s: status %q checked %q reason %q, want %q %q containing %q", tc.quick, b0.Name, b0.Status, b0.Checked, b0.Reason, tc.status0, tc.checked, tc.reasonContain)
		}
		if b1.Status != tc.status1 || b1.Checked != tc.checked {
			t.Errorf("quick=%v: intact bundle %s: status %q checked %q, want %q %q", tc.quick, b1.Name, b1.Status, b1.Checked, tc.status1, tc.checked)
		}
	}
}
