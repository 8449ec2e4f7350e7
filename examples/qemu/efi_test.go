package qemu

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The efi backend's fixture: the same keys, binaries, base tree and data
// partition as the GRUB one, but an ESP with one loader per slot
// (mkimage.sh esp-efi) and the agent configured with backend = "efi"
// (testdata/agent-efi.toml), in the slots and in every bundle.
var (
	efiOnce sync.Once
	efiFix  *fixture
	efiErr  error
)

func getEFIFixture(t *testing.T) *fixture {
	t.Helper()
	base := getFixture(t)
	efiOnce.Do(func() { efiFix, efiErr = base.efiVariant() })
	if efiErr != nil {
		t.Fatalf("build the efi images: %v", efiErr)
	}
	return efiFix
}

func (f *fixture) efiVariant() (*fixture, error) {
	e := &fixture{p: f.p, dir: filepath.Join(f.dir, "efi"), mkimage: f.mkimage, ferry: f.ferry, agent: f.agent,
		rootKey: f.rootKey, relKey: f.relKey, trust: f.trust,
		bundles: map[string]*built{}, builds: make(chan struct{}, 2)}
	if err := os.Mkdir(e.dir, 0o755); err != nil {
		return nil, err
	}
	e.baseTree = filepath.Join(e.dir, "tree")
	if err := run(e.dir, nil, "cp", "-a", f.baseTree, e.baseTree); err != nil {
		return nil, err
	}
	if err := run(e.dir, nil, "cp", here("testdata/agent-efi.toml"), filepath.Join(e.baseTree, "etc/ferry/agent.toml")); err != nil {
		return nil, err
	}
	a, err := e.slotImage("1.0.0", "")
	if err != nil {
		return nil, err
	}
	esp := filepath.Join(e.dir, "esp.img")
	if err := run(e.dir, nil, e.mkimage, "esp-efi", esp); err != nil {
		return nil, err
	}
	e.disk = filepath.Join(e.dir, "disk.img")
	if err := run(e.dir, nil, e.mkimage, "disk", e.disk, esp, a, f.parts[2], f.parts[3]); err != nil {
		return nil, err
	}
	e.parts = [4]string{esp, a, f.parts[2], f.parts[3]}
	return e, nil
}

// efiVars is what the guest's efivarfs holds of the boot manager's
// variables: BootOrder and BootNext as "Boot####" names (BootNext "" when
// unset), and the slots' entries.
type efiVars struct {
	order          []string
	next           string
	entryA, entryB string
}

// efiVars reads the variables in the guest, with od on efivarfs.
func (m *machine) efiVars() efiVars {
	m.t.Helper()
	const g = "-8be4df61-93ca-11d2-aa0d-00e098032b8c"
	num := func(hex string) string { return "Boot" + strings.ToUpper(hex[2:4]+hex[0:2]) }
	words := func(name string) []string {
		// efivarfs cannot seek (od -j does not skip): the 4 bytes of
		// attributes are dropped here.
		out := m.mustSh("f=/sys/firmware/efi/efivars/" + name + g + "; [ -e $f ] && od -An -tx1 -v $f | tr -s ' \\n' ' ' || true")
		b := strings.Fields(out)
		var ws []string
		for i := 4; i+1 < len(b); i += 2 {
			ws = append(ws, num(b[i]+b[i+1]))
		}
		return ws
	}
	v := efiVars{order: words("BootOrder")}
	if n := words("BootNext"); len(n) == 1 {
		v.next = n[0]
	}
	// The entries' descriptions, UCS-2 after 6 bytes: "f\0e\0r\0r\0y\0 \0a\0".
	for _, l := range strings.Split(m.mustSh("cd /sys/firmware/efi/efivars && for f in Boot[0-9A-F][0-9A-F][0-9A-F][0-9A-F]"+g+"; do "+
		"printf '%s %s\\n' ${f%%-*} \"$(dd if=$f bs=1 skip=10 count=14 2>/dev/null | tr -d '\\000')\"; done"), "\n") {
		switch {
		case strings.HasSuffix(l, " ferry a"):
			v.entryA = strings.Fields(l)[0]
		case strings.HasSuffix(l, " ferry b"):
			v.entryB = strings.Fields(l)[0]
		}
	}
	return v
}

// requireEFICommitted checks requireCommitted and requireEFIVars.
func (m *machine) requireEFICommitted(slot, version string) {
	m.t.Helper()
	m.requireCommitted(slot, version)
	m.requireEFIVars(slot, version)
}

// requireEFIVars checks that the firmware's own variables agree with a
// committed slot running: its entry is first in BootOrder (the commit),
// no BootNext is pending, and BootCurrent named the slot.
func (m *machine) requireEFIVars(slot, _ string) {
	m.t.Helper()
	v := m.efiVars()
	want := v.entryA
	if slot == "b" {
		want = v.entryB
	}
	if want == "" || len(v.order) == 0 || v.order[0] != want || v.next != "" {
		m.t.Fatalf("slot %s runs, but the firmware has %+v (serial log %s)", slot, v, m.out.log)
	}
	if st := m.status(); st.Boot.Current != slot {
		m.t.Fatalf("slot %s runs, but BootCurrent names %q (serial log %s)", slot, st.Boot.Current, m.out.log)
	}
}

// TestEFIJourney boots the reference image with the efi backend under
// OVMF, whose variable store (a pflash image of this machine) keeps the
// boot entries: the first boot (by the removable-media path) creates the
// entries; 3.1.0 goes to slot b, boots once through BootNext and is
// committed into BootOrder; 3.2.0, whose kernel never reaches user space,
// boots once through BootNext and the firmware falls back to b by itself;
// 3.3.0, whose health check fails, is rolled back by the agent, which
// sets BootNext to b for the reboot.
func TestEFIJourney(t *testing.T) {
	t.Parallel()
	f := getEFIFixture(t)
	port := f.serve(t, f.bundlesOf(t, release{"3.1.0", ""}, release{"3.2.0", badKernel}, release{"3.3.0", badHealth})...)
	src := "oci://10.0.2.2:" + port + "/" + bundleName + ":"

	m := newMachine(t, f)
	m.start()
	m.expect(`created boot entry Boot[0-9A-F]{4} "ferry a"`)
	m.expect(`created boot entry Boot[0-9A-F]{4} "ferry b"`)
	if slot, version, rc := m.ready(); slot != "a" || version != "1.0.0" || rc != "0" {
		t.Fatalf("first boot: slot %q version %q boot-check %s, want a 1.0.0 0", slot, version, rc)
	}
	v := m.efiVars()
	if v.entryA == "" || v.entryB == "" || len(v.order) < 2 || v.order[0] != v.entryA || v.order[1] != v.entryB {
		t.Fatalf("after the first boot: %+v", v)
	}
	if st := m.status(); st.Boot == nil || st.Boot.Slot != "a" || st.Boot.UpgradeAvailable {
		t.Fatalf("after the first boot: %+v", st.Boot)
	}

	t.Log("3.1.0: a trial through BootNext, committed into BootOrder")
	m.send("ferry-agent install --plain-http " + src + "3.1.0")
	if slot, version, rc := m.ready(); slot != "b" || version != "3.1.0" || rc != "0" {
		t.Fatalf("after the install: slot %q version %q boot-check %s, want b 3.1.0 0", slot, version, rc)
	}
	m.requireEFICommitted("b", "3.1.0")

	t.Log("3.2.0: its kernel panics; BootNext was one-shot")
	m.send("ferry-agent install --plain-http " + src + "3.2.0")
	if slot, version, rc := m.ready(); slot != "b" || version != "3.1.0" || rc != "0" {
		t.Fatalf("after the kernel panic: slot %q version %q boot-check %s, want b 3.1.0 0", slot, version, rc)
	}
	m.requireEFICommitted("b", "3.1.0")
	if st := m.status(); st.Install == nil || st.Install.Version != "3.2.0" || st.Install.State != "rolled-back" ||
		!strings.Contains(st.Install.Result, "rolled back by the bootloader") {
		t.Fatalf("the 3.2.0 install should be rolled back by the firmware: %+v", st.Install)
	}

	t.Log("3.3.0: its health check fails")
	m.send("ferry-agent install --plain-http " + src + "3.3.0")
	m.expect(markBooted + ` slot=a version=3\.3\.0\r?\n`)
	m.expect(`health check failed, rolled back`)
	if slot, version, rc := m.ready(); slot != "b" || version != "3.1.0" || rc != "0" {
		t.Fatalf("after the failed health check: slot %q version %q boot-check %s, want b 3.1.0 0", slot, version, rc)
	}
	m.requireEFICommitted("b", "3.1.0")
	if st := m.status(); st.Install == nil || st.Install.Version != "3.3.0" || st.Install.State != "rolled-back" {
		t.Fatalf("the 3.3.0 install should be rolled back: %+v", st.Install)
	}
	m.kill()
	t.Logf("%d power-ons, serial logs in %s", m.boots, m.logs)
}

// efiCuts are where TestEFIPowerCuts kills QEMU: around the two writes
// of MarkTentative (FerryTrial, BootNext) and the reboot, in the trial
// boot as it comes up (BootNext consumed), and as boot-check runs the
// health check and commits (BootOrder, then the deletes).
var efiCuts = []cutPoint{
	{name: "install: written, activating", states: "written|tentative"},
	{name: "install: rebooting", states: "rebooting"},
	{name: "trial boot: before boot-check"},
	{name: "trial boot: health check and commit", marker: `health check: /etc/ferry/health`},
}

// TestEFIPowerCuts cuts the power at points of installs and commits with
// the efi backend, one after the other on the same disk and variable
// store (powerCuts). After every cut the machine must come up on a good,
// committed system, and the firmware's variables must agree with it.
func TestEFIPowerCuts(t *testing.T) {
	t.Parallel()
	powerCuts(t, getEFIFixture(t), efiCuts, (*machine).requireEFIVars)
}
