package qemu

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestGRUBJourney boots the reference image under OVMF and GRUB and takes
// it through a device's life: slot a comes up; 1.1.0 from a stick goes to
// slot b and is committed by boot-check; 1.2.0 from the mirror on the host
// goes to slot a likewise; 1.3.0, whose health check fails, is rolled back
// by the agent; 1.4.0, whose kernel never reaches user space, is rolled
// back by the GRUB script's boot counting. Before them, rollback
// --previous takes it back to 1.1.0 (checked in slot b, committed by
// boot-check); at the end it refuses, as slot a holds the failed 1.4.0.
// Every boot is a real firmware, bootloader and kernel boot in one QEMU
// process (reboots are resets).
func TestGRUBJourney(t *testing.T) {
	t.Parallel()
	f := getFixture(t)
	b := f.bundlesOf(t, release{"1.1.0", ""}, release{"1.2.0", ""}, release{"1.3.0", badHealth}, release{"1.4.0", badKernel})
	stick := filepath.Join(t.TempDir(), "stick.img")
	if err := run("", nil, f.ferry, "media", "build", "--out", stick, b[0], "--trust", f.trust); err != nil {
		t.Fatal(err)
	}
	port := f.serve(t, b[1:]...)
	mirror := "oci://10.0.2.2:" + port + "/" + bundleName + ":"

	m := newMachine(t, f, stick)
	m.start()
	if slot, version, rc := m.ready(); slot != "a" || version != "1.0.0" || rc != "0" {
		t.Fatalf("first boot: slot %q version %q boot-check %s, want a 1.0.0 0", slot, version, rc)
	}
	m.requireCommitted("a", "1.0.0")
	// The board's kernel arguments come from GRUB's block
	// (ferry_kernel_args), split into words by GRUB.
	if args := strings.Fields(m.mustSh("cat /proc/cmdline")); !slices.Contains(args, "console=ttyS0") || !slices.Contains(args, "quiet") {
		t.Errorf("kernel command line %q: want console=ttyS0 and quiet from ferry_kernel_args", args)
	}

	t.Log("1.1.0 from the stick")
	m.mustSh("mount -t vfat /dev/vdb1 /media/ferry")
	m.send("ferry-agent install /media/ferry")
	if slot, version, rc := m.ready(); slot != "b" || version != "1.1.0" || rc != "0" {
		t.Fatalf("after the stick install: slot %q version %q boot-check %s, want b 1.1.0 0", slot, version, rc)
	}
	m.requireCommitted("b", "1.1.0")
	m.mustSh("mount -t vfat /dev/vdb1 /media/ferry")
	if out := m.mustSh("ls /media/ferry/ferry/reports/"); !strings.Contains(out, ".json") {
		t.Errorf("no report on the stick: %q", out)
	}
	m.mustSh("umount /media/ferry")

	t.Log("1.2.0 from the mirror")
	m.send("ferry-agent install --plain-http " + mirror + "1.2.0")
	if slot, version, rc := m.ready(); slot != "a" || version != "1.2.0" || rc != "0" {
		t.Fatalf("after the mirror install: slot %q version %q boot-check %s, want a 1.2.0 0", slot, version, rc)
	}
	m.requireCommitted("a", "1.2.0")

	t.Log("rollback --previous: back to 1.1.0, still in slot b")
	// The agent reads slot b back and checks it against the digest signed
	// for 1.1.0, then tries it like an install; boot-check commits it.
	m.send("ferry-agent rollback --previous")
	m.expect(`slot b holds ` + bundleName + ` 1\.1\.0 as committed; rolling back to it`)
	if slot, version, rc := m.ready(); slot != "b" || version != "1.1.0" || rc != "0" {
		t.Fatalf("after rollback --previous: slot %q version %q boot-check %s, want b 1.1.0 0", slot, version, rc)
	}
	m.requireCommitted("b", "1.1.0")

	t.Log("1.3.0: its health check fails")
	m.send("ferry-agent install --plain-http " + mirror + "1.3.0")
	// The trial boot comes up; boot-check runs the failing health check,
	// rolls back and reboots at once.
	m.expect(markBooted + ` slot=a version=1\.3\.0\r?\n`)
	m.expect(`health check failed, rolled back`)
	if slot, version, rc := m.ready(); slot != "b" || version != "1.1.0" || rc != "0" {
		t.Fatalf("after the failed health check: slot %q version %q boot-check %s, want b 1.1.0 0", slot, version, rc)
	}
	m.requireCommitted("b", "1.1.0")
	if st := m.status(); st.Install == nil || st.Install.Version != "1.3.0" || st.Install.State != "rolled-back" {
		t.Fatalf("the 1.3.0 install should be rolled back: %+v", st.Install)
	}

	t.Log("1.4.0: its kernel panics")
	m.send("ferry-agent install --plain-http " + mirror + "1.4.0")
	// The trial boot counts bootcount=1 and panics (panic=10 reboots);
	// the next boot counts 2 > bootlimit and GRUB boots slot b. The
	// kernel's console is the serial port (ferry_kernel_args), so the
	// panic is in the serial log.
	m.expect(`Kernel panic - not syncing`)
	if slot, version, rc := m.ready(); slot != "b" || version != "1.1.0" || rc != "0" {
		t.Fatalf("after the kernel panic: slot %q version %q boot-check %s, want b 1.1.0 0", slot, version, rc)
	}
	m.requireCommitted("b", "1.1.0")
	st := m.status()
	if st.Install == nil || st.Install.Version != "1.4.0" || st.Install.State != "rolled-back" ||
		!strings.Contains(st.Install.Result, "bootloader") {
		t.Fatalf("the 1.4.0 install should be rolled back by the bootloader: %+v", st.Install)
	}

	t.Log("rollback --previous again: slot a holds the failed 1.4.0, refused")
	out, rc := m.sh("ferry-agent rollback --previous")
	if rc != 1 || !strings.Contains(out, "slot a ("+bundleName+" 1.2.0) was overwritten by the install of "+bundleName+" 1.4.0") {
		t.Fatalf("rollback --previous over a rolled-back install: exit %d\n%s", rc, out)
	}
	m.requireCommitted("b", "1.1.0")
	m.shutdown()
	env := m.grubEnv()
	if env["ferry_slot"] != "b" || env["upgrade_available"] != "0" {
		t.Fatalf("GRUB's block at the end: %v", env)
	}
	t.Logf("%d power-ons, serial logs in %s", m.boots, m.logs)
}
