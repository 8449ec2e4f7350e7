package qemu

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-update/ferry/internal/testtool"
)

// ubootBin is Debian's U-Boot for QEMU's arm64 virt machine (package
// u-boot-qemu). Its environment is in the second flash bank, which
// Debian's arm64 kernel cannot write (no CFI flash driver), so the shipped
// boot script keeps ferry's state in a file on the boot partition
// (examples/uboot/boot.cmd).
const ubootBin = "/usr/lib/u-boot/qemu_arm64/u-boot.bin"

// arm64Root is the directory holding Debian's arm64 kernel
// (boot/vmlinuz-*, lib/modules) and static busybox (bin/busybox), unpacked
// there by arm64-root.sh: $FERRY_QEMU_ARM64.
func arm64Root() string { return os.Getenv("FERRY_QEMU_ARM64") }

// arm64Kernel is the kernel in arm64Root ("" if there is none).
func arm64Kernel() string {
	m, _ := filepath.Glob(filepath.Join(arm64Root(), "boot/vmlinuz-*"))
	if len(m) == 0 {
		return ""
	}
	return m[len(m)-1]
}

// arm64 is QEMU's arm64 virt machine with Debian's U-Boot running the
// shipped examples/uboot/boot.cmd.
var arm64 = &platform{
	name:       "arm64",
	goarch:     "arm64",
	deviceType: "qemu-arm64",
	tools: [][2]string{
		{"qemu-system-aarch64", "qemu-system-arm"},
		{"mkimage", "u-boot-tools"},
		{"mkenvimage", "u-boot-tools"},
		{"fw_printenv", "libubootenv-tool"},
	},
	require: func(t *testing.T) {
		if _, err := os.Stat(ubootBin); err != nil {
			testtool.Missing(t, ubootBin+" (Debian package u-boot-qemu)")
		}
		root := arm64Root()
		if root == "" {
			testtool.Missing(t, "FERRY_QEMU_ARM64: Debian's arm64 kernel and busybox, unpacked by examples/qemu/arm64-root.sh")
		}
		for _, f := range []string{arm64Kernel(), filepath.Join(root, "bin/busybox")} {
			if _, err := os.Stat(f); f == "" || err != nil {
				testtool.Missing(t, "the arm64 kernel and busybox in "+root+" (examples/qemu/arm64-root.sh)")
			}
		}
	},
	env: func() []string {
		root := arm64Root()
		return []string{"MODROOT=" + root, "KERNEL=" + arm64Kernel(), "BUSYBOX=" + filepath.Join(root, "bin/busybox"),
			"CONSOLE=ttyAMA0", "PART1=boot"}
	},
	bootPart: func(f *fixture, out string) error {
		return run(f.dir, nil, f.mkimage, "uboot", out, here("../uboot/boot.cmd"))
	},
	files: [][2]string{
		{"testdata/uboot/agent.toml", "etc/ferry/agent.toml"},
		{"testdata/uboot/fw_env.config", "etc/fw_env.config"},
	},
	qemu: func(m *machine) (string, []string) {
		return "qemu-system-aarch64", []string{
			"-machine", "virt", "-cpu", "cortex-a57", "-m", "512", "-smp", "1",
			"-bios", ubootBin,
		}
	},
}

// TestUBootJourney boots the arm64 reference image through Debian's
// U-Boot and the shipped boot script, and takes it through a device's
// life: slot a comes up; 1.1.0 from a stick goes to slot b, the script
// counts its trial boot, boot-check commits; 1.2.0 from the mirror on the
// host, whose health check fails, is rolled back by the agent; 1.3.0,
// whose kernel never reaches user space, is rolled back by the script's
// boot counting. The script's state file is read on the host with
// fw_printenv at the end.
func TestUBootJourney(t *testing.T) {
	t.Parallel()
	f := arm64.fixture(t)
	b := f.bundlesOf(t, release{"1.1.0", ""}, release{"1.2.0", badHealth}, release{"1.3.0", badKernel})
	stick := filepath.Join(t.TempDir(), "stick.img")
	if err := run("", nil, f.ferry, "media", "build", "--out", stick, b[0], "--trust", f.trust); err != nil {
		t.Fatal(err)
	}
	port := f.serve(t, b[1:]...)
	mirror := "oci://10.0.2.2:" + port + "/" + bundleName + ":"

	m := newMachine(t, f, stick)
	start := time.Now()
	m.start()
	if slot, version, rc := m.ready(); slot != "a" || version != "1.0.0" || rc != "0" {
		t.Fatalf("first boot: slot %q version %q boot-check %s, want a 1.0.0 0", slot, version, rc)
	}
	t.Logf("first boot (U-Boot to the shell) took %s", time.Since(start).Round(time.Second))
	m.requireCommitted("a", "1.0.0")

	t.Log("1.1.0 from the stick")
	m.mustSh("mount -t vfat /dev/vdb1 /media/ferry")
	m.send("ferry-agent install /media/ferry")
	// The script counts the trial boot in ferry.env before booting.
	m.expect(`ferry: slot b on trial, attempt 1 of 1`)
	if slot, version, rc := m.ready(); slot != "b" || version != "1.1.0" || rc != "0" {
		t.Fatalf("after the stick install: slot %q version %q boot-check %s, want b 1.1.0 0", slot, version, rc)
	}
	m.requireCommitted("b", "1.1.0")

	t.Log("1.2.0: its health check fails")
	m.send("ferry-agent install --plain-http " + mirror + "1.2.0")
	m.expect(`ferry: slot a on trial, attempt 1 of 1`)
	m.expect(markBooted + ` slot=a version=1\.2\.0\r?\n`)
	m.expect(`health check failed, rolled back`)
	if slot, version, rc := m.ready(); slot != "b" || version != "1.1.0" || rc != "0" {
		t.Fatalf("after the failed health check: slot %q version %q boot-check %s, want b 1.1.0 0", slot, version, rc)
	}
	m.requireCommitted("b", "1.1.0")
	if st := m.status(); st.Install == nil || st.Install.Version != "1.2.0" || st.Install.State != "rolled-back" {
		t.Fatalf("the 1.2.0 install should be rolled back: %+v", st.Install)
	}

	t.Log("1.3.0: its kernel never reaches user space")
	m.send("ferry-agent install --plain-http " + mirror + "1.3.0")
	// The trial boot counts bootcount=1 and fails (panic=10 reboots); the
	// next boot counts 2 > bootlimit and the script boots slot b.
	m.expect(`ferry: slot a on trial, attempt 1 of 1`)
	m.expect(`Kernel panic - not syncing`)
	m.expect(`ferry: slot a failed 2 times, booting slot b`)
	if slot, version, rc := m.ready(); slot != "b" || version != "1.1.0" || rc != "0" {
		t.Fatalf("after the failed kernel: slot %q version %q boot-check %s, want b 1.1.0 0", slot, version, rc)
	}
	m.requireCommitted("b", "1.1.0")
	st := m.status()
	if st.Install == nil || st.Install.Version != "1.3.0" || st.Install.State != "rolled-back" ||
		!strings.Contains(st.Install.Result, "bootloader") {
		t.Fatalf("the 1.3.0 install should be rolled back by the bootloader: %+v", st.Install)
	}
	m.shutdown()
	if env := m.ubootEnv(); env["ferry_slot"] != "b" || env["upgrade_available"] != "0" {
		t.Fatalf("ferry.env at the end (fw_printenv): %v", env)
	}
	t.Logf("%d power-ons, %s; serial logs in %s", m.boots, time.Since(start).Round(time.Second), m.logs)
}

// ubootCutPoints are TestUBootPowerCuts' cuts: fewer than the GRUB test's,
// since an arm64 boot under TCG takes twice as long; the install's write,
// the switch to the new slot, and the trial boot.
var ubootCutPoints = []cutPoint{
	{"install: writing, middle", "writing", 1500 * time.Millisecond, ""},
	{"install: written, activating", "written|tentative|rebooting", 0, ""},
	{"trial boot: before boot-check", "", 0, ""},
	{"trial boot: committing", "", 900 * time.Millisecond, ""},
}

// TestUBootPowerCuts cuts the power at points of installs and commits on
// the arm64 U-Boot image, as TestGRUBPowerCuts does, and checks the
// script's state file with fw_printenv at the end.
func TestUBootPowerCuts(t *testing.T) {
	t.Parallel()
	m, slot := powerCuts(t, arm64.fixture(t), ubootCutPoints, nil)
	if env := m.ubootEnv(); env["upgrade_available"] != "0" || env["ferry_slot"] != slot {
		t.Fatalf("ferry.env at the end (fw_printenv): %v, running slot %s", env, slot)
	}
}

// ubootEnv reads the boot script's state file ferry.env from the machine's
// boot partition (after shutdown) with mtools, and its variables with
// fw_printenv through an fw_env.config like the guest's.
func (m *machine) ubootEnv() map[string]string {
	m.t.Helper()
	dir := m.t.TempDir()
	env := filepath.Join(dir, "ferry.env")
	if err := run("", nil, "mcopy", "-n", "-i", m.disks[0]+"@@1M", "::/ferry.env", env); err != nil {
		m.t.Fatal(err)
	}
	cfg := filepath.Join(dir, "fw_env.config")
	if err := os.WriteFile(cfg, []byte(env+" 0x0 0x1000\n"), 0o644); err != nil {
		m.t.Fatal(err)
	}
	out, err := exec.Command("fw_printenv", "-c", cfg).CombinedOutput()
	if err != nil {
		m.t.Fatalf("fw_printenv: %v\n%s", err, out)
	}
	vars := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			vars[k] = v
		}
	}
	return vars
}
