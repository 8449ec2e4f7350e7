package agent

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/agent/bootenv"
	"github.com/ferry-update/ferry/internal/testtool"
)

const efiGlobal = "-8be4df61-93ca-11d2-aa0d-00e098032b8c"

// newEFIDevice is newDevice with the efi backend over a directory standing
// in for efivarfs, a firmware that has only its own entry, and a GPT disk
// image whose partition 1 is the ESP, so the agent creates the slots'
// entries at its first start.
func newEFIDevice(t *testing.T) *device {
	sgdisk := testtool.Require(t, "sgdisk", "gdisk")
	d := newDevice(t, "true")
	if err := os.Mkdir(d.path("efivars"), 0o755); err != nil {
		t.Fatal(err)
	}
	d.write("disk.img", "")
	if err := os.Truncate(d.path("disk.img"), 8<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sgdisk, "-o", "-n", "1:1M:+4M", "-t", "1:ef00", d.path("disk.img")).CombinedOutput(); err != nil {
		t.Fatalf("sgdisk: %v\n%s", err, out)
	}
	// The firmware's own entry (a removable-media boot, say) is Boot0000
	// and booted the device.
	d.efiVar("Boot0000", append([]byte{1, 0, 0, 0, 4, 0, 'x', 0, 0, 0}, 0x7f, 0xff, 4, 0))
	d.efiVar("BootOrder", []byte{0, 0})
	d.efiVar("BootCurrent", []byte{0, 0})
	d.cfg.Boot = BootConfig{Backend: BackendEFI, Path: d.path("efivars"), Cmdline: "none", EFI: EFIConfig{
		LoaderA: `\EFI\ferry\a.efi`, LoaderB: `\EFI\ferry\b.efi`, ESPDisk: d.path("disk.img"), ESPPartition: 1,
	}}
	if _, err := d.cfg.check(); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d *device) efiVar(name string, data []byte) {
	d.t.Helper()
	d.write("efivars/"+name+efiGlobal, string(append([]byte{7, 0, 0, 0}, data...)))
}

// efiReset is the firmware's boot manager at a reset: BootNext once (it
// is deleted first), else BootOrder's first entry. It returns the boot
// number it booted.
func (d *device) efiReset() uint16 {
	d.t.Helper()
	next := d.path("efivars/BootNext" + efiGlobal)
	b, err := os.ReadFile(next)
	if err == nil {
		os.Remove(next)
	} else if b, err = os.ReadFile(d.path("efivars/BootOrder" + efiGlobal)); err != nil {
		d.t.Fatal(err)
	}
	d.efiVar("BootCurrent", b[4:6])
	return binary.LittleEndian.Uint16(b[4:])
}

func (d *device) efiState() bootenv.BootState {
	d.t.Helper()
	st, err := bootenv.EFIBoot{Dir: d.path("efivars")}.State()
	if err != nil {
		d.t.Fatal(err)
	}
	return st
}

// TestEFIBackend takes a device with the efi backend through a committed
// update, a failed health check and a trial the firmware gives up on.
func TestEFIBackend(t *testing.T) {
	d := newEFIDevice(t)
	ctx := context.Background()
	// The first start creates Boot0001 (a) and Boot0002 (b), a first.
	if err := d.do(func(a *Agent) error { _, err := a.BootCheck(ctx); return err }); err != nil {
		t.Fatal(err)
	}
	if got := d.read("efivars/BootOrder" + efiGlobal)[4:]; got != "\x01\x00\x02\x00\x00\x00" {
		t.Fatalf("BootOrder % x", got)
	}
	if n := d.efiReset(); n != 1 {
		t.Fatalf("booted Boot%04X, want slot a's Boot0001", n)
	}

	// 1.0.0 goes to b, boots once through BootNext, and commits.
	if err := d.install(d.bundle(bundleSpec{version: "1.0.0", rootfs: "one"})); err != nil {
		t.Fatal(err)
	}
	if st := d.efiState(); st != (bootenv.BootState{Slot: "b", Current: "a", UpgradeAvailable: true, BootLimit: 1}) {
		t.Fatalf("after install: %+v", st)
	}
	if n := d.efiReset(); n != 2 {
		t.Fatalf("trial booted Boot%04X", n)
	}
	if err := d.bootCheck(); err != nil {
		t.Fatal(err)
	}
	if st := d.efiState(); st != (bootenv.BootState{Slot: "b", Current: "b"}) {
		t.Fatalf("after commit: %+v", st)
	}
	if j := d.journal(); j.State != StateCommitted || j.ToSlot != "b" {
		t.Fatalf("journal %+v", j)
	}

	// 1.1.0 fails its health check on a: rolled back, BootNext brings b back.
	if err := d.install(d.bundle(bundleSpec{version: "1.1.0", rootfs: "two"})); err != nil {
		t.Fatal(err)
	}
	d.efiReset()
	d.cfg.Health.Commands = []string{"false"}
	var he *HealthCheckError
	if err := d.bootCheck(); !errors.As(err, &he) {
		t.Fatalf("boot-check: %v, want a health check failure", err)
	}
	if st := d.efiState(); st != (bootenv.BootState{Slot: "b", Current: "a"}) {
		t.Fatalf("after the rollback: %+v", st)
	}
	if n := d.efiReset(); n != 2 {
		t.Fatalf("after the rollback booted Boot%04X", n)
	}
	d.cfg.Health.Commands = []string{"true"}

	// 1.2.0's kernel never comes up on a: the firmware boots b at the next
	// reset, and the agent records the bootloader's rollback.
	if err := d.install(d.bundle(bundleSpec{version: "1.2.0", rootfs: "three"})); err != nil {
		t.Fatal(err)
	}
	d.efiReset()
	if n := d.efiReset(); n != 2 {
		t.Fatalf("after the failed trial booted Boot%04X", n)
	}
	var st *Status
	if err := d.do(func(a *Agent) (err error) { st, err = a.Status(); return err }); err != nil {
		t.Fatal(err)
	}
	if st.Install.State != StateRolledBack || !strings.Contains(st.Install.Result, "rolled back by the bootloader") ||
		st.BootedSlot != "b" || st.Boot.Current != "b" || st.Boot.UpgradeAvailable {
		t.Fatalf("status %+v, install %+v, boot %+v", st, st.Install, st.Boot)
	}
	if _, err := os.Stat(filepath.Join(d.path("efivars"), "FerryTrial-9be6a41b-9368-4a4b-840c-de12ec869e63")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("FerryTrial left: %v", err)
	}
}

// efiConfig is minimalConfig with the efi backend and these [boot.efi]
// lines.
func efiConfig(lines string) string {
	return strings.Replace(minimalConfig, "backend = \"file\"\npath = \"bootenv\"\n", "backend = \"efi\"\n[boot.efi]\n"+lines, 1)
}

func TestEFIConfig(t *testing.T) {
	loaders := "loader_a = '\\EFI\\ferry\\a.efi'\nloader_b = '\\EFI\\ferry\\b.efi'\n"
	tests := []struct {
		name, lines, want string
	}{
		{"one loader", "loader_a = 'a.efi'\nesp_disk = '/dev/vda'\nesp_partition = 1\n", "boot.efi.loader_b: set loader_a and loader_b together"},
		{"no disk", loaders + "esp_partition = 1\n", "boot.efi.esp_disk: required with the loaders"},
		{"no partition", loaders + "esp_disk = '/dev/vda'\n", "boot.efi.esp_partition: required with the loaders"},
		{"disk without loaders", "esp_disk = '/dev/vda'\n", "boot.efi.esp_disk: only with loader_a and loader_b"},
		{"same labels", "label_a = 'x'\nlabel_b = 'x'\n", "boot.efi.label_b"},
		{"unknown key", "loader_c = 'c.efi'\n", "unknown setting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(efiConfig(tt.lines)), "agent.toml", "/")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
	c, err := ParseConfig([]byte(efiConfig(loaders+"esp_disk = '/dev/vda'\nesp_partition = 1\n")), "agent.toml", "/")
	if err != nil {
		t.Fatal(err)
	}
	want := BootConfig{Backend: BackendEFI, Path: bootenv.DefaultEFIVarsDir, SlotVar: bootenv.DefaultSlotVar, Cmdline: DefaultCmdline, EFI: EFIConfig{
		LabelA: "ferry a", LabelB: "ferry b", LoaderA: `\EFI\ferry\a.efi`, LoaderB: `\EFI\ferry\b.efi`, ESPDisk: "/dev/vda", ESPPartition: 1}}
	if c.Boot != want {
		t.Errorf("got %+v, want %+v", c.Boot, want)
	}
	_, err = ParseConfig([]byte(strings.Replace(minimalConfig, "path = \"bootenv\"\n", "path = \"bootenv\"\n[boot.efi]\nlabel_a = 'x'\n", 1)), "agent.toml", "/")
	if err == nil || !strings.Contains(err.Error(), `boot.efi: only for backend = "efi"`) {
		t.Errorf("[boot.efi] with the file backend: %v", err)
	}
}
