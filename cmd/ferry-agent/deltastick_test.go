package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/internal/testtool"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/media"
	"github.com/ferry-update/ferry/transport/stick"
)

// TestDeltaStick builds sticks with the real ferry binary ('ferry media
// build --delta-from', bundle/FORMAT.md §15.7), checks the images with
// fsck.fat, copies their files out with mtools, as a laptop would read
// the stick, and installs from them with ferry-agent on simulated
// devices: a device on the named base installs a byte-identical 2.0.0
// from a delta-only stick; a device on another version skips that stick
// with the reason in its report and activates nothing; from a stick with
// the full fallback, a device on another version and a factory device
// (no chunk index kept) install 2.0.0 too.
func TestDeltaStick(t *testing.T) {
	testtool.Require(t, "fsck.fat", "dosfstools")
	testtool.Require(t, "mcopy", "mtools")
	ferry := buildBinary(t, "ferry", "./cmd/ferry")
	work := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(ferry, args...)
		cmd.Dir = work
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("ferry %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("key", "generate", "-o", "release")
	images := map[string]string{
		"0.9.0": deltaImage("0.9.0", 12000), // differs from 1.0.0 elsewhere
		"1.0.0": deltaImage("1.0.0", 5000),
		"2.0.0": deltaImage("2.0.0", 5000),
	}
	for v, img := range images {
		if err := os.WriteFile(filepath.Join(work, v+".img"), []byte(img), 0o644); err != nil {
			t.Fatal(err)
		}
		// Small chunks and parts, so that the image makes many packs.
		run("bundle", "create", v+".img", "--name", "sim-os", "-d", "sim-board", "-V", v, "--delta", "--chunk-size", "4KiB",
			"--part-size", "32KiB", "--key", "release.key", "-o", v+".ferry")
	}

	// The delta stick (--size auto: the smallest, without the fallback)
	// and one with room for the full bundle.
	out := run("media", "build", "-o", "delta.img", "2.0.0.ferry", "--delta-from", "1.0.0.ferry", "--json")
	var built struct{ Build media.BuildResult }
	if err := json.Unmarshal([]byte(out), &built); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	d := built.Build.Bundles[0].Delta
	if d == nil || d.Full || d.DeltaParts == 0 || d.DeltaParts*4 > d.Parts || !strings.Contains(d.Note, "--size auto") {
		t.Fatalf("delta stick: %+v", d)
	}
	t.Logf("delta stick: %d of %d packs, %d bytes", d.DeltaParts, d.Parts, d.DeltaBytes)
	out = run("media", "build", "-o", "full.img", "2.0.0.ferry", "--delta-from", "1.0.0.ferry", "--size", "64MiB")
	// Both images are 64 MiB: one geometry.
	if !strings.Contains(out, "delta       for bases 1.0.0: ") || !strings.Contains(out, "and the full bundle for devices on other versions") || strings.Contains(out, "note") {
		t.Fatalf("full stick:\n%s", out)
	}
	out = run("media", "inspect", "delta.img", "--key", "release.pub")
	if !strings.Contains(out, "valid (1 of 1)") || !strings.Contains(out, "sim-os 2.0.0: delta for bases 1.0.0: ") || !strings.Contains(out, "delta only: devices on other versions skip it") {
		t.Fatalf("inspect delta.img:\n%s", out)
	}
	sticks := map[string]string{}
	for _, name := range []string{"delta", "full"} {
		sticks[name] = copyStick(t, filepath.Join(work, name+".img"), built.Build.PartitionOffset, built.Build.PartitionSize)
	}
	// fresh is a copy of a stick's files, for one device's reports.
	fresh := func(name string) string {
		t.Helper()
		dir := t.TempDir()
		if err := os.CopyFS(dir, os.DirFS(sticks[name])); err != nil {
			t.Fatal(err)
		}
		return dir
	}

	device := func(base string) *crashDevice {
		t.Helper()
		dev, _ := newCrashDevice(t, images["2.0.0"], false)
		for _, f := range []string{"release.pub", "release.key"} {
			b, err := os.ReadFile(filepath.Join(work, f))
			if err == nil {
				err = os.WriteFile(dev.path(f), b, 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if base == "" {
			return dev // the factory system in slot a, no chunk index kept
		}
		if _, out := dev.agent(nil, "install", filepath.Join(work, base+".ferry")); !strings.Contains(out, "rebooting") {
			t.Fatalf("install of %s:\n%s", base, out)
		}
		if slot := dev.powerCycle(); slot != "b" {
			t.Fatalf("%s booted slot %s", base, slot)
		}
		if _, out := dev.agent(nil, "boot-check"); !strings.Contains(out, "committed") {
			t.Fatalf("boot-check of %s:\n%s", base, out)
		}
		return dev
	}
	// installs installs 2.0.0 from the stick and checks that the other
	// slot holds exactly its image, booted and committed.
	installs := func(dev *crashDevice, from, stickName, wantLog string) {
		t.Helper()
		stickDir := fresh(stickName)
		_, out := dev.agent(nil, "install", stickDir)
		if !strings.Contains(out, "rebooting") || !strings.Contains(out, wantLog) {
			t.Fatalf("install from %s (want %q in the log):\n%s", stickDir, wantLog, out)
		}
		next := map[string]string{"a": "b", "b": "a"}[from]
		if slot := dev.powerCycle(); slot != next {
			t.Fatalf("booted slot %s, want %s", slot, next)
		}
		if _, out := dev.agent(nil, "boot-check"); !strings.Contains(out, "committed") {
			t.Fatalf("boot-check:\n%s", out)
		}
		if got := dev.read("slot-" + next + ".img"); got != images["2.0.0"] {
			t.Fatalf("slot %s does not hold 2.0.0 byte for byte (%d bytes, want %d)", next, len(got), len(images["2.0.0"]))
		}
		if r := lastReport(t, stickDir); r.Result != stick.ResultSuccess || r.VersionAfter != "2.0.0" {
			t.Fatalf("report %+v", r)
		}
	}
	// skips tries the stick and checks that nothing changed.
	skips := func(dev *crashDevice, stickName, wantReason string) {
		t.Helper()
		stickDir := fresh(stickName)
		before := map[string]string{"a": dev.read("slot-a.img"), "b": dev.read("slot-b.img"), "env": counter(dev.env())}
		_, out := dev.agent(nil, "install", stickDir)
		if !strings.Contains(out, wantReason) {
			t.Fatalf("install from %s (want %q):\n%s", stickDir, wantReason, out)
		}
		after := map[string]string{"a": dev.read("slot-a.img"), "b": dev.read("slot-b.img"), "env": counter(dev.env())}
		for k := range before {
			if before[k] != after[k] {
				t.Errorf("%s changed although nothing was installed", k)
			}
		}
		if _, err := os.Stat(dev.path("rebooted")); err == nil {
			t.Error("the device rebooted although nothing was installed")
		}
		if r := lastReport(t, stickDir); r.Result != stick.ResultSkipped || !strings.Contains(r.Reason, wantReason) {
			t.Fatalf("report %+v", r)
		}
	}

	t.Run("base", func(t *testing.T) {
		installs(device("1.0.0"), "b", "delta", "payload rootfs: delta from slot b")
	})
	t.Run("other-base", func(t *testing.T) {
		dev := device("0.9.0")
		skips(dev, "delta", "stick holds a delta of sim-os 2.0.0 for bases 1.0.0; this device runs 0.9.0 (")
		// With the full fallback it installs: its own chunks still serve
		// where they match, the stick's packs the rest.
		installs(dev, "b", "full", "payload rootfs: delta from slot b")
	})
	t.Run("factory", func(t *testing.T) {
		dev := device("")
		skips(dev, "delta", "stick holds a delta of sim-os 2.0.0 for bases 1.0.0; this device runs a version it did not install from a chunked bundle")
		installs(dev, "a", "full", "no chunk index is kept for slot a")
	})
}

// copyStick checks the stick image's FAT with fsck.fat and copies its
// ferry/ directory out with mtools into a new directory, returned: the
// stick as a device sees it mounted.
func copyStick(t *testing.T, img string, off, size int64) string {
	t.Helper()
	part := testutil.ExtractPartition(t, img, off, size)
	if out, err := exec.Command("fsck.fat", "-n", part).CombinedOutput(); err != nil {
		t.Fatalf("fsck.fat -n %s: %v\n%s", img, err, out)
	}
	dir := t.TempDir()
	cmd := exec.Command("mcopy", "-s", "-i", part, "::/ferry", dir)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1", "MTOOLSRC=/dev/null")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mcopy %s: %v\n%s", img, err, out)
	}
	return dir
}

// lastReport returns the newest report on the stick at dir.
func lastReport(t *testing.T, dir string) *stick.Report {
	t.Helper()
	s, err := stick.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	reps, err := s.Reports()
	if err != nil || len(reps) == 0 {
		t.Fatalf("reports: %v, %v", reps, err)
	}
	r := reps[len(reps)-1]
	if r.Report == nil {
		t.Fatalf("report %s: %v", r.Name, r.Err)
	}
	return r.Report
}
