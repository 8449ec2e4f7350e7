package bootenv

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// firmware is a fake UEFI boot manager over a directory standing in for
// efivarfs (files NAME-GUID holding 4 bytes of attributes and the data).
// reset does what the specification's boot manager does at a reset
// (UEFI 2.10 §3.1.2): BootNext, when set, is deleted and its entry booted;
// otherwise the first active entry of BootOrder. BootCurrent becomes what
// booted. The real firmware is tested in examples/qemu (TestEFIJourney,
// TestEFIPowerCuts).
type firmware struct {
	t   *testing.T
	dir string
}

// Boot numbers of the fake firmware: its own entry (a shell, a disk found
// by itself) and ferry's two.
const (
	numOther uint16 = 0
	numA     uint16 = 1
	numB     uint16 = 2
)

func newFirmware(t *testing.T) *firmware {
	return &firmware{t: t, dir: t.TempDir()}
}

func (f *firmware) write(name, guid string, attrs uint32, data []byte) {
	f.t.Helper()
	b := binary.LittleEndian.AppendUint32(nil, attrs)
	if err := os.WriteFile(filepath.Join(f.dir, name+"-"+guid), append(b, data...), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *firmware) read(name, guid string) ([]byte, bool) {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join(f.dir, name+"-"+guid))
	if errors.Is(err, os.ErrNotExist) {
		return nil, false
	}
	if err != nil || len(b) < 4 {
		f.t.Fatalf("%s: %v (%d bytes)", name, err, len(b))
	}
	if a := binary.LittleEndian.Uint32(b); name != "BootCurrent" && a != efiAttrs {
		f.t.Errorf("%s has attributes %#x, want %#x", name, a, efiAttrs)
	}
	return b[4:], true
}

func (f *firmware) remove(name, guid string) {
	os.Remove(filepath.Join(f.dir, name+"-"+guid))
}

// entry adds a boot entry with a device path to a loader.
func (f *firmware) entry(n uint16, label string, active bool) {
	o := loadOption{Description: label, FilePath: loaderDevicePath(gptPartition{Number: 1, Start: 2048, Size: 32768}, `\EFI\x.efi`)}
	if active {
		o.Attributes = loadOptionActive
	}
	f.write(bootVarName(n), efiGlobalGUID, efiAttrs, o.encode())
}

// standard is a provisioned device: the firmware's own entry and ferry's
// two, BootOrder a, b, other.
func (f *firmware) standard() *firmware {
	f.entry(numOther, "UEFI Misc Device", true)
	f.entry(numA, DefaultEFILabelA, true)
	f.entry(numB, DefaultEFILabelB, true)
	f.order(numA, numB, numOther)
	return f
}

func (f *firmware) order(ns ...uint16) {
	f.write("BootOrder", efiGlobalGUID, efiAttrs, encodeBootOrder(ns))
}

func (f *firmware) getOrder() []uint16 {
	b, _ := f.read("BootOrder", efiGlobalGUID)
	o, err := parseBootOrder(b)
	if err != nil {
		f.t.Fatal(err)
	}
	return o
}

func (f *firmware) num(name string) (uint16, bool) {
	b, ok := f.read(name, efiGlobalGUID)
	if !ok {
		return 0, false
	}
	n, err := parseBootNumber(name, b)
	if err != nil {
		f.t.Fatal(err)
	}
	return n, true
}

func (f *firmware) current(n uint16) {
	f.write("BootCurrent", efiGlobalGUID, 0x6, encodeBootOrder([]uint16{n}))
}

// reset boots: BootNext once, else the first active entry of BootOrder.
func (f *firmware) reset() uint16 {
	f.t.Helper()
	boot, ok := f.num("BootNext")
	if ok {
		f.remove("BootNext", efiGlobalGUID)
	} else {
		for _, n := range f.getOrder() {
			b, exists := f.read(bootVarName(n), efiGlobalGUID)
			if !exists {
				continue
			}
			if o, err := parseLoadOption(b); err == nil && o.Attributes&loadOptionActive != 0 {
				boot, ok = n, true
				break
			}
		}
	}
	if !ok {
		f.t.Fatal("the firmware found nothing to boot")
	}
	f.current(boot)
	return boot
}

func (f *firmware) boot() EFIBoot { return EFIBoot{Dir: f.dir} }

func (f *firmware) state() BootState {
	f.t.Helper()
	st, err := f.boot().State()
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

// TestEFIState maps every combination of the variables that matter onto
// the boot protocol.
func TestEFIState(t *testing.T) {
	n := func(x uint16) *uint16 { return &x }
	tests := []struct {
		name  string
		order []uint16
		next  *uint16
		cur   *uint16
		trial string
		want  BootState
	}{
		{"committed a", []uint16{numA, numB}, nil, n(numA), "", BootState{Slot: "a", Current: "a"}},
		{"committed b", []uint16{numOther, numB, numA}, nil, n(numB), "", BootState{Slot: "b", Current: "b"}},
		{"first boot from another entry", []uint16{numA, numB, numOther}, nil, n(numOther), "", BootState{Slot: "a"}},
		{"no BootCurrent", []uint16{numA}, nil, nil, "", BootState{Slot: "a"}},
		{"b on trial, not booted", []uint16{numA, numB}, n(numB), n(numA), "b", BootState{Slot: "b", Current: "a", UpgradeAvailable: true, BootLimit: 1}},
		{"b on trial, running", []uint16{numA, numB}, nil, n(numB), "b", BootState{Slot: "b", Current: "b", UpgradeAvailable: true, BootCount: 1, BootLimit: 1}},
		{"b running without FerryTrial", []uint16{numA, numB}, nil, n(numB), "", BootState{Slot: "b", Current: "b", UpgradeAvailable: true, BootCount: 1, BootLimit: 1}},
		{"b fell back", []uint16{numA, numB}, nil, n(numA), "b", BootState{Slot: "b", Current: "a", UpgradeAvailable: true, BootCount: 1, BootLimit: 1, FallbackDetected: true}},
		{"b committed, FerryTrial left", []uint16{numB, numA}, nil, n(numB), "b", BootState{Slot: "b", Current: "b"}},
		{"rollback to a awaits the reboot", []uint16{numA, numB}, n(numA), n(numB), "", BootState{Slot: "a", Current: "b"}},
		{"BootNext elsewhere", []uint16{numA, numB}, n(numOther), n(numA), "", BootState{Slot: "a", Current: "a"}},
		{"inactive a skipped", []uint16{numA, numB}, nil, n(numB), "", BootState{Slot: "b", Current: "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFirmware(t).standard()
			if tt.name == "inactive a skipped" {
				f.entry(numA, DefaultEFILabelA, false)
			}
			f.order(tt.order...)
			if tt.next != nil {
				f.write("BootNext", efiGlobalGUID, efiAttrs, encodeBootOrder([]uint16{*tt.next}))
			}
			if tt.cur != nil {
				f.current(*tt.cur)
			}
			if tt.trial != "" {
				f.write(trialVar, ferryGUID, efiAttrs, []byte(tt.trial))
			}
			if got := f.state(); got != tt.want {
				t.Errorf("state = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestEFIStateErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(f *firmware)
		err   error
		msg   string
	}{
		{"no slot in BootOrder", func(f *firmware) { f.order(numOther) }, ErrNoValidEnv, `no active boot entry labelled "ferry a" or "ferry b"`},
		{"no BootOrder", func(f *firmware) { f.remove("BootOrder", efiGlobalGUID) }, ErrNoValidEnv, "BootOrder lists no"},
		{"two entries for a", func(f *firmware) { f.entry(7, DefaultEFILabelA, true) }, ErrNoValidEnv, "both Boot0001 and Boot0007"},
		{"odd BootOrder", func(f *firmware) { f.write("BootOrder", efiGlobalGUID, efiAttrs, []byte{1, 0, 2}) }, errEFIFormat, "3 bytes"},
		{"long BootNext", func(f *firmware) { f.write("BootNext", efiGlobalGUID, efiAttrs, []byte{1, 0, 0, 0}) }, errEFIFormat, "BootNext of 4 bytes"},
		{"no attributes", func(f *firmware) { os.WriteFile(filepath.Join(f.dir, "BootCurrent-"+efiGlobalGUID), []byte{1}, 0o644) }, nil, "want the 4-byte attributes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFirmware(t).standard()
			tt.setup(f)
			_, err := f.boot().State()
			if err == nil || tt.err != nil && !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v, want %v containing %q", err, tt.err, tt.msg)
			}
		})
	}
	// A broken entry of someone else's is skipped, as the firmware does.
	f := newFirmware(t).standard()
	f.write("Boot0009", efiGlobalGUID, efiAttrs, []byte{1, 0})
	f.current(numA)
	if st := f.state(); st != (BootState{Slot: "a", Current: "a"}) {
		t.Errorf("with a broken Boot0009: %+v", st)
	}
}

// TestEFIJourney runs the protocol through the fake boot manager: a trial
// that commits, one that falls back, and one rolled back while running.
func TestEFIJourney(t *testing.T) {
	f := newFirmware(t).standard()
	b := f.boot()
	if f.reset() != numA {
		t.Fatal("did not boot a")
	}
	// A trial of b that commits.
	if err := b.MarkTentative(SlotB); err != nil {
		t.Fatal(err)
	}
	if next, _ := f.num("BootNext"); next != numB || !slices.Equal(f.getOrder(), []uint16{numA, numB, numOther}) {
		t.Fatalf("BootNext %d, BootOrder %v", next, f.getOrder())
	}
	if err := b.MarkTentative(SlotB); err != nil { // again: nothing changes
		t.Fatal(err)
	}
	if f.reset() != numB {
		t.Fatal("BootNext did not boot b")
	}
	if st := f.state(); !st.UpgradeAvailable || st.Slot != "b" || st.BootedSlot() != "b" {
		t.Fatalf("trial: %+v", st)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.getOrder(), []uint16{numB, numA, numOther}) {
		t.Fatalf("after commit BootOrder %v", f.getOrder())
	}
	if _, ok := f.read(trialVar, ferryGUID); ok {
		t.Error("FerryTrial left after commit")
	}
	if st := f.state(); st != (BootState{Slot: "b", Current: "b"}) {
		t.Fatalf("committed: %+v", st)
	}
	if f.reset() != numB {
		t.Fatal("committed b does not boot")
	}

	// A trial of a that never comes up: the firmware falls back by itself.
	if err := b.MarkTentative(SlotA); err != nil {
		t.Fatal(err)
	}
	if f.reset() != numA || f.reset() != numB {
		t.Fatal("BootNext was not one-shot")
	}
	st := f.state()
	if st != (BootState{Slot: "a", Current: "b", UpgradeAvailable: true, BootCount: 1, BootLimit: 1, FallbackDetected: true}) || st.BootedSlot() != "b" {
		t.Fatalf("fallback: %+v", st)
	}
	if err := b.Commit(); !errors.Is(err, ErrFallbackDetected) {
		t.Fatalf("commit after fallback: %v", err)
	}
	if err := b.Rollback(SlotB); err != nil {
		t.Fatal(err)
	}
	if st := f.state(); st != (BootState{Slot: "b", Current: "b"}) {
		t.Fatalf("after rollback: %+v", st)
	}

	// A trial of a rolled back while it runs: BootNext brings b back.
	if err := b.MarkTentative(SlotA); err != nil {
		t.Fatal(err)
	}
	f.reset()
	if err := b.Rollback(SlotB); err != nil {
		t.Fatal(err)
	}
	if st := f.state(); st != (BootState{Slot: "b", Current: "a"}) {
		t.Fatalf("rolled back in a: %+v", st)
	}
	if f.reset() != numB {
		t.Fatal("rollback did not boot b")
	}
	if st := f.state(); st != (BootState{Slot: "b", Current: "b"}) {
		t.Fatalf("after the rollback's reboot: %+v", st)
	}
	if err := b.MarkTentative(SlotB); !errors.Is(err, ErrInvalidSlot) {
		t.Fatalf("trial of the committed slot: %v", err)
	}
	if err := b.MarkTentative("c"); !errors.Is(err, ErrInvalidSlot) {
		t.Fatalf("slot c: %v", err)
	}
}

// TestEFIPowerCuts cuts the power before each variable write of each
// step, resets the fake firmware, and checks what boots and how the agent
// reads the state: always a good slot (the committed one, or the new one
// on its trial), never a state the agent would misread as committed when
// it is not.
func TestEFIPowerCuts(t *testing.T) {
	type outcome struct {
		boots uint16
		state BootState
	}
	fellBackB := BootState{Slot: "b", Current: "a", UpgradeAvailable: true, BootCount: 1, BootLimit: 1, FallbackDetected: true}
	tests := []struct {
		name  string
		setup func(f *firmware) // the state before the step, running
		step  func(b EFIBoot) error
		// after[k] is the outcome of a cut before write k; the last
		// is the step completed.
		after []outcome
	}{
		{"mark b tentative", func(f *firmware) { f.reset() }, func(b EFIBoot) error { return b.MarkTentative(SlotB) }, []outcome{
			{numA, BootState{Slot: "a", Current: "a"}},
			// FerryTrial written, BootNext not: reads as a fallback,
			// and the agent rolls back; a is good.
			{numA, fellBackB},
			{numB, BootState{Slot: "b", Current: "b", UpgradeAvailable: true, BootCount: 1, BootLimit: 1}},
		}},
		{"commit b", func(f *firmware) { mustMark(f, SlotB); f.reset() }, func(b EFIBoot) error { return b.Commit() }, []outcome{
			{numA, fellBackB},
			{numB, BootState{Slot: "b", Current: "b"}}, // BootOrder written: committed
			{numB, BootState{Slot: "b", Current: "b"}},
		}},
		{"roll back to a from b", func(f *firmware) { mustMark(f, SlotB); f.reset() }, func(b EFIBoot) error { return b.Rollback(SlotA) }, []outcome{
			{numA, fellBackB},
			{numA, fellBackB}, // BootNext=a used; FerryTrial left: the agent finishes the rollback
			{numA, BootState{Slot: "a", Current: "a"}},
		}},
		{"roll back to a before the reboot", func(f *firmware) { mustMark(f, SlotB) }, func(b EFIBoot) error { return b.Rollback(SlotA) }, []outcome{
			{numB, BootState{Slot: "b", Current: "b", UpgradeAvailable: true, BootCount: 1, BootLimit: 1}},
			{numA, fellBackB}, // BootNext deleted, FerryTrial left
			{numA, BootState{Slot: "a", Current: "a"}},
		}},
	}
	for _, tt := range tests {
		for k, want := range tt.after {
			f := newFirmware(t).standard()
			f.reset()
			tt.setup(f)
			writes := 0
			b := f.boot()
			b.cut = func() bool { writes++; return writes > k }
			err := tt.step(b)
			if last := k == len(tt.after)-1; last != (err == nil) || !last && !errors.Is(err, errCut) {
				t.Fatalf("%s, cut before write %d of %d: %v", tt.name, k+1, len(tt.after)-1, err)
			}
			if got := f.reset(); got != want.boots {
				t.Errorf("%s, cut before write %d: booted Boot%04X, want Boot%04X", tt.name, k+1, got, want.boots)
			}
			if got := f.state(); got != want.state {
				t.Errorf("%s, cut before write %d: state %+v, want %+v", tt.name, k+1, got, want.state)
			}
		}
	}
}

func mustMark(f *firmware, slot string) {
	f.t.Helper()
	if err := f.boot().MarkTentative(slot); err != nil {
		f.t.Fatal(err)
	}
}
