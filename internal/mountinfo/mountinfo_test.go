package mountinfo

import (
	"strings"
	"testing"
)

const sample = `22 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw
23 22 0:21 / /proc rw,nosuid shared:12 - proc proc rw
40 22 8:17 / /media/my\040stick rw,nosuid,nodev,relatime shared:20 - vfat /dev/sdb1 rw,fmask=0022
41 22 0:45 /@home /home rw,relatime shared:30 master:2 - btrfs /dev/nvme0n1p3 rw,ssd
`

func TestParse(t *testing.T) {
	ms, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 4 {
		t.Fatalf("%d mounts, want 4", len(ms))
	}
	m := ms[2]
	if m.MountPoint != "/media/my stick" || m.Source != "/dev/sdb1" || m.FSType != "vfat" || m.Major != 8 || m.Minor != 17 || m.ID != 40 || m.Parent != 22 {
		t.Errorf("stick mount: %+v", m)
	}
	if ms[3].Root != "/@home" || ms[3].Source != "/dev/nvme0n1p3" {
		t.Errorf("optional fields: %+v", ms[3])
	}
	for _, bad := range []string{"1 2 3", "x 1 8:1 / / rw - ext4 /dev/a rw", "1 1 81 / / rw - ext4 /dev/a rw", "1 1 8:1 / / rw shared:1 ext4 /dev/a rw"} {
		if _, err := Parse(strings.NewReader(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{`a\040b`: "a b", `\134`: `\`, `x\0`: `x\0`, `\999`: `\999`, `\011\012`: "\t\n", `plain`: "plain"} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(sample)
	f.Add(`1 2 0:1 / /a\040b rw - tmpfs none rw`)
	f.Fuzz(func(t *testing.T, s string) {
		// Never a panic; every mount parsed has a mount point and a source.
		ms, err := Parse(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, m := range ms {
			if m.MountPoint == "" && !strings.Contains(s, " ") {
				t.Errorf("empty mount point from %q", s)
			}
		}
	})
}
