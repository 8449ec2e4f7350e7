package agent

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/ferry-update/ferry/bundle"
)

// lastPart returns where the last payload part's data lies in b.
func lastPart(t *testing.T, b []byte) (off, size int64) {
	t.Helper()
	r, err := bundle.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	layers := r.Manifest().Layers
	size = layers[len(layers)-1].Size
	return int64(len(b)) - 1024 - (512-size%512)%512 - size, size
}

// TestDamagedPayloadRefused: the same damage to a payload is the same
// verdict whatever the payload's type: a refused bundle (RefusedError, exit
// code 3), never a plain failure, and nothing activated. A flipped byte
// anywhere in the compressed data may surface first as a broken tar stream
// (files, module) or a zstd error; the payload's own check must still win.
func TestDamagedPayloadRefused(t *testing.T) {
	big := strings.Repeat("a fairly compressible line of the new system\n", 400)
	types := []struct {
		name string
		spec func(t *testing.T, d *device) bundleSpec
	}{
		{"rootfs", func(_ *testing.T, _ *device) bundleSpec { return bundleSpec{version: "1.0.0", rootfs: big} }},
		{"files", func(_ *testing.T, _ *device) bundleSpec {
			return bundleSpec{version: "1.0.0", files: map[string]string{"app.conf": big, "bin/app": "#!/bin/sh\n"}}
		}},
		{"module", func(t *testing.T, d *device) bundleSpec {
			payload, _ := singleFile(t, d)
			payload["app.conf"] = big
			return bundleSpec{version: "1.0.0", module: payload}
		}},
	}
	for _, ty := range types {
		for _, encrypted := range []bool{false, true} {
			damagedPayloadRefused(t, ty.name, encrypted, ty.spec)
		}
	}
}

// damagedPayloadRefused damages the last part of a bundle made by spec
// (its payloads encrypted to the device if encrypted) in many ways, and
// checks that each is refused.
func damagedPayloadRefused(t *testing.T, name string, encrypted bool, spec func(t *testing.T, d *device) bundleSpec) {
	d := newDevice(t)
	s := spec(t, d)
	if encrypted {
		s.encryptTo = []age.Recipient{d.recipient()}
		name += "/encrypted"
	}
	b := d.bundle(s)
	off, size := lastPart(t, b)
	damages := map[string][]byte{}
	for i := int64(0); i < size; i += max(1, size/12) {
		c := bytes.Clone(b)
		c[off+i] ^= 0x55
		damages[fmt.Sprintf("flip at %d of %d", i, size)] = c
	}
	damages["truncated in the part"] = b[:off+size/2]
	damages["truncated after the part"] = b[:off+size]
	for damage, raw := range damages {
		t.Run(name+"/"+damage, func(t *testing.T) {
			// d refuses each damaged copy and so stays as it was.
			err := d.install(raw)
			var re *RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("install: %v (%T), want a RefusedError", err, err)
			}
			var be *bundle.Error
			if !errors.As(err, &be) {
				t.Errorf("install: %v: the bundle's own error is lost", err)
			}
			if st := d.bootState(); st.Slot != "a" || st.UpgradeAvailable {
				t.Errorf("boot state %+v", st)
			}
		})
	}
}
