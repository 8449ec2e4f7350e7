package bootenv

import (
	"encoding/binary"
	"errors"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/ferry-update/ferry/internal/testtool"
)

// gptDisk makes a GPT disk image with sgdisk: an ESP as partition 1 with
// a known GUID, and a second partition.
func gptDisk(t *testing.T) string {
	t.Helper()
	sgdisk := testtool.Require(t, "sgdisk", "gdisk")
	disk := filepath.Join(t.TempDir(), "disk.img")
	if out, err := exec.Command("truncate", "-s", "40M", disk).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if out, err := exec.Command(sgdisk, "-o",
		"-n", "1:1M:+16M", "-t", "1:ef00", "-c", "1:esp", "-u", "1:0b2d5b1e-0000-4000-8000-000000000001",
		"-n", "2:0:+8M", "-t", "2:8304", "-u", "2:c12a7328-f81f-11d2-ba4b-00a0c93ec93b", disk).CombinedOutput(); err != nil {
		t.Fatalf("sgdisk: %v: %s", err, out)
	}
	return disk
}

// TestReadGPTPartition reads partitions as sgdisk -i reports them.
func TestReadGPTPartition(t *testing.T) {
	disk := gptDisk(t)
	for _, n := range []int{1, 2} {
		p, err := readGPTPartition(disk, n)
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("sgdisk", "-i", strconv.Itoa(n), disk).Output()
		if err != nil {
			t.Fatal(err)
		}
		field := func(re string) string {
			m := regexp.MustCompile(re).FindSubmatch(out)
			if m == nil {
				t.Fatalf("sgdisk -i %d: no %q in\n%s", n, re, out)
			}
			return string(m[1])
		}
		first, _ := strconv.ParseUint(field(`First sector: (\d+)`), 10, 64)
		size, _ := strconv.ParseUint(field(`Partition size: (\d+) sectors`), 10, 64)
		guid := field(`Partition unique GUID: (\S+)`)
		if p.Number != uint32(n) || p.Start != first || p.Size != size || p.GUIDString() != guid {
			t.Errorf("partition %d: %+v (%s), sgdisk says first %d size %d GUID %s", n, p, p.GUIDString(), first, size, guid)
		}
	}
	for _, n := range []int{0, 3, 129} {
		if _, err := readGPTPartition(disk, n); err == nil {
			t.Errorf("partition %d: no error", n)
		}
	}
	if _, err := readGPTPartition(filepath.Join(t.TempDir(), "none"), 1); err == nil {
		t.Error("missing disk: no error")
	}
}

// TestLoaderDevicePath checks the device path a new entry gets, node by
// node (UEFI 2.10 §10.3.5.1 Hard Drive, §10.3.5.4 File Path).
func TestLoaderDevicePath(t *testing.T) {
	part := gptPartition{Number: 1, Start: 2048, Size: 32768, GUID: [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}}
	dp := loaderDevicePath(part, "/EFI/ferry/a.efi")
	if err := checkDevicePath(dp); err != nil {
		t.Fatal(err)
	}
	le16, le32, le64 := binary.LittleEndian.Uint16, binary.LittleEndian.Uint32, binary.LittleEndian.Uint64
	if dp[0] != 4 || dp[1] != 1 || le16(dp[2:]) != 42 || le32(dp[4:]) != 1 || le64(dp[8:]) != 2048 || le64(dp[16:]) != 32768 ||
		[16]byte(dp[24:40]) != part.GUID || dp[40] != 2 || dp[41] != 2 {
		t.Errorf("HD node: % x", dp[:42])
	}
	file := `\EFI\ferry\a.efi`
	if dp[42] != 4 || dp[43] != 4 || int(le16(dp[44:])) != 4+2*(len(file)+1) || devicePathFile(dp) != file {
		t.Errorf("file node: % x (%q)", dp[42:], devicePathFile(dp))
	}
	if end := dp[len(dp)-4:]; end[0] != 0x7f || end[1] != 0xff || le16(end[2:]) != 4 {
		t.Errorf("end node: % x", end)
	}
}

// TestEFIProvision creates the entries on a fresh firmware, once.
func TestEFIProvision(t *testing.T) {
	disk := gptDisk(t)
	esp, err := readGPTPartition(disk, 1)
	if err != nil {
		t.Fatal(err)
	}
	p := EFIEntries{Disk: disk, Partition: 1, LoaderA: `\EFI\ferry\a.efi`, LoaderB: "/EFI/ferry/b.efi"}

	f := newFirmware(t)
	f.entry(0, "UEFI Misc Device", true)
	f.entry(1, "UEFI Shell", true)
	f.order(1, 0)
	f.current(0)
	b := f.boot()
	did, err := b.Provision(p, SlotB)
	if err != nil {
		t.Fatal(err)
	}
	if len(did) != 3 {
		t.Errorf("did %q", did)
	}
	for _, c := range []struct {
		num    uint16
		label  string
		loader string
	}{{2, DefaultEFILabelA, `\EFI\ferry\a.efi`}, {3, DefaultEFILabelB, `\EFI\ferry\b.efi`}} {
		data, ok := f.read(bootVarName(c.num), efiGlobalGUID)
		if !ok {
			t.Fatalf("no %s", bootVarName(c.num))
		}
		o, err := parseLoadOption(data)
		if err != nil {
			t.Fatal(err)
		}
		want := loaderDevicePath(esp, c.loader)
		if o.Description != c.label || o.Attributes != loadOptionActive || !slices.Equal(o.FilePath, want) || len(o.OptionalData) != 0 {
			t.Errorf("%s = %+v", bootVarName(c.num), o)
		}
	}
	// The booted slot first, then the other, then what was there.
	if got := f.getOrder(); !slices.Equal(got, []uint16{3, 2, 1, 0}) {
		t.Errorf("BootOrder %v", got)
	}
	if st := f.state(); st != (BootState{Slot: "b"}) {
		t.Errorf("state %+v", st)
	}
	// Again: nothing to do, even after a commit moved a first.
	f.order(2, 3, 1, 0)
	if did, err := b.Provision(p, SlotB); err != nil || len(did) != 0 {
		t.Errorf("second run: %q, %v", did, err)
	}
	if got := f.getOrder(); !slices.Equal(got, []uint16{2, 3, 1, 0}) {
		t.Errorf("second run changed BootOrder: %v", got)
	}
}

// TestEFIProvisionCut stops provisioning before each write; the next
// run completes it.
func TestEFIProvisionCut(t *testing.T) {
	disk := gptDisk(t)
	p := EFIEntries{Disk: disk, Partition: 1, LoaderA: `\EFI\ferry\a.efi`, LoaderB: `\EFI\ferry\b.efi`}
	for k := range 3 {
		f := newFirmware(t)
		f.entry(0, "UEFI Misc Device", true)
		f.order(0)
		b := f.boot()
		writes := 0
		b.cut = func() bool { writes++; return writes > k }
		if _, err := b.Provision(p, SlotA); !errors.Is(err, errCut) {
			t.Fatalf("cut before write %d: %v", k+1, err)
		}
		b.cut = nil
		did, err := b.Provision(p, SlotA)
		if err != nil || len(did) != 3-k {
			t.Fatalf("after a cut before write %d: %q, %v", k+1, did, err)
		}
		if got := f.getOrder(); !slices.Equal(got, []uint16{1, 2, 0}) {
			t.Errorf("after a cut before write %d: BootOrder %v", k+1, got)
		}
	}
}

func TestEFIProvisionErrors(t *testing.T) {
	disk := gptDisk(t)
	tests := []struct {
		name string
		p    EFIEntries
		err  error
	}{
		{"no loader", EFIEntries{Disk: disk, Partition: 1, LoaderA: `\a.efi`}, ErrNoValidEnv},
		{"no disk", EFIEntries{LoaderA: `\a.efi`, LoaderB: `\b.efi`}, ErrNoValidEnv},
		{"unused partition", EFIEntries{Disk: disk, Partition: 5, LoaderA: `\a.efi`, LoaderB: `\b.efi`}, nil},
		{"not a GPT disk", EFIEntries{Disk: "/dev/null", Partition: 1, LoaderA: `\a.efi`, LoaderB: `\b.efi`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFirmware(t)
			f.order()
			did, err := f.boot().Provision(tt.p, SlotA)
			if err == nil || tt.err != nil && !errors.Is(err, tt.err) || len(did) != 0 {
				t.Fatalf("%q, %v; want %v", did, err, tt.err)
			}
		})
	}
}
