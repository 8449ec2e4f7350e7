package bundle_test

import (
	"testing"

	"github.com/ferry-update/ferry/bundle"
)

func TestNameFromPath(t *testing.T) {
	for src, want := range map[string]string{
		"gateway.img":             "gateway",
		"/srv/build/GW-OS_2.ext4": "gw-os_2",
		"rootfs/":                 "rootfs",
		"My Firmware (v2).bin":    "my-firmware-v2",
		"..img":                   "update",
		"--.img":                  "update",
		"app.tar.gz":              "app.tar",
		"émoji🙂.img":              "moji",
	} {
		got := bundle.NameFromPath(src)
		if got != want {
			t.Errorf("NameFromPath(%q) = %q, want %q", src, got, want)
		}
		if err := bundle.ValidateName(got); err != nil {
			t.Errorf("NameFromPath(%q) = %q, which is no valid name: %v", src, got, err)
		}
	}
}

func TestPayloadTypes(t *testing.T) {
	for _, tc := range []struct {
		typ          bundle.PayloadType
		valid, isDir bool
	}{
		{bundle.Rootfs, true, false},
		{bundle.Files, true, true},
		{bundle.Module, true, true},
		{"delta", false, true},
		{"", false, true},
	} {
		if tc.typ.Valid() != tc.valid || tc.typ.FromDirectory() != tc.isDir {
			t.Errorf("%q: Valid %v FromDirectory %v, want %v %v", tc.typ, tc.typ.Valid(), tc.typ.FromDirectory(), tc.valid, tc.isDir)
		}
	}
	if bundle.DefaultPayloadType(true) != bundle.Files || bundle.DefaultPayloadType(false) != bundle.Rootfs {
		t.Error("DefaultPayloadType: a directory makes files, a file rootfs")
	}
}
