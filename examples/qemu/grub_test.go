package qemu

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestGRUBJourney boots the reference image under OVMF and GRUB and takes
// it through a device's life: slot a comes up; 1.1.0 from a stick goes to
// slot b and is committed by boot-check; 1.2.0 from the mirror on the host
// goes to slot a likewise; 1.3.0, whose health check fails, is rolled back
// by the agent; 1.4.0, whose kernel never reaches user space, is rolled
// back by the GRUB script's boot counting. Every boot is a real firmware,
// bootloader and kernel boot in one QEMU process (reboots are resets).
func TestGRUBJourney(t *testing.T) {
	f := getFixture(t)
	good11 := f.bundle(t, "1.1.0", "")
	stick := filepath.Join(t.TempDir(), "stick.img")
	if err := run("", nil, f.ferry, "media", "build", "--out", stick, good11, "--trust", f.trust); err != nil {
		t.Fatal(err)
	}
	port := f.serve(t, f.bundle(t, "1.2.0", ""), f.bundle(t, "1.3.0", badHealth), f.bundle(t, "1.4.0", badKernel))
	mirror := "oci://10.0.2.2:" + port + "/" + bundleName + ":"

	m := newMachine(t, f, stick)
	m.start()
	if slot, version, rc := m.ready(); slot != "a" || version != "1.0.0" || rc != "0" {
		t.Fatalf("first boot: slot %q version %q boot-check %s, want a 1.0.0 0", slot, version, rc)
	}
	m.requireCommitted("a", "1.0.0")

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

	t.Log("1.3.0: its health check fails")
	m.send("ferry-agent install --plain-http " + mirror + "1.3.0")
	// The trial boot comes up; boot-check runs the failing health check,
	// rolls back and reboots at once.
	m.expect(markBooted + ` slot=b version=1\.3\.0\r?\n`)
	m.expect(`health check failed, rolled back`)
	if slot, version, rc := m.ready(); slot != "a" || version != "1.2.0" || rc != "0" {
		t.Fatalf("after the failed health check: slot %q version %q boot-check %s, want a 1.2.0 0", slot, version, rc)
	}
	m.requireCommitted("a", "1.2.0")
	if st := m.status(); st.Install == nil || st.Install.Version != "1.3.0" || st.Install.State != "rolled-back" {
		t.Fatalf("the 1.3.0 install should be rolled back: %+v", st.Install)
	}

	t.Log("1.4.0: its kernel panics")
	m.send("ferry-agent install --plain-http " + mirror + "1.4.0")
	// The trial boot counts bootcount=1 and panics (panic=10 reboots);
	// the next boot counts 2 > bootlimit and GRUB boots slot a.
	if slot, version, rc := m.ready(); slot != "a" || version != "1.2.0" || rc != "0" {
		t.Fatalf("after the kernel panic: slot %q version %q boot-check %s, want a 1.2.0 0", slot, version, rc)
	}
	m.requireCommitted("a", "1.2.0")
	st := m.status()
	if st.Install == nil || st.Install.Version != "1.4.0" || st.Install.State != "rolled-back" ||
		!strings.Contains(st.Install.Result, "bootloader") {
		t.Fatalf("the 1.4.0 install should be rolled back by the bootloader: %+v", st.Install)
	}
	m.shutdown()
	env := m.grubEnv()
	if env["ferry_slot"] != "a" || env["upgrade_available"] != "0" {
		t.Fatalf("GRUB's block at the end: %v", env)
	}
	t.Logf("%d power-ons, serial logs in %s", m.boots, m.logs)
}
