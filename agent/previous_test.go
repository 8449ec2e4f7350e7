package agent

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/internal/verifyio"
)

// twoReleases installs and commits 1.0.0 (into slot b) and 2.0.0 (into
// slot a): the device runs 2.0.0 on a, 1.0.0 is in b.
func twoReleases(t *testing.T, d *device) {
	t.Helper()
	for _, v := range []string{"1.0.0", "2.0.0"} {
		if err := d.install(d.bundle(bundleSpec{version: v, rootfs: "system " + v})); err != nil {
			t.Fatal(err)
		}
		if err := d.bootCheck(); err != nil {
			t.Fatal(err)
		}
	}
}

func (d *device) rollbackPrevious() (*Result, error) {
	var res *Result
	err := d.do(func(a *Agent) (err error) {
		res, err = a.RollbackPrevious(context.Background())
		return err
	})
	return res, err
}

func TestRollbackPrevious(t *testing.T) {
	d := newDevice(t, "true")
	twoReleases(t, d)
	// The default policy refuses downgrades; an explicit rollback to the
	// previous committed release is not one.
	if err := d.install(d.bundle(bundleSpec{version: "1.0.0", rootfs: "system 1.0.0"})); !errors.Is(err, ErrDowngrade) {
		t.Fatalf("installing 1.0.0 again: %v, want ErrDowngrade", err)
	}
	os.Remove(d.path("reboots"))
	res, err := d.rollbackPrevious()
	if err != nil {
		t.Fatal(err)
	}
	if res.State != StateRebooting || !res.Rebooting || res.Slot != "b" || res.Version != "1.0.0" ||
		!strings.Contains(res.Message, "previous release sim-os 1.0.0 in slot b") {
		t.Errorf("result %+v", res)
	}
	if got := d.read("reboots"); got != "reboot\n" {
		t.Errorf("reboots %q", got)
	}
	if st := d.bootState(); st.Slot != "b" || !st.UpgradeAvailable {
		t.Errorf("boot state %+v, want slot b on trial", st)
	}
	if j := d.journal(); !j.Previous || j.FromSlot != "a" || j.ToSlot != "b" || j.Version != "1.0.0" {
		t.Errorf("journal %+v", j)
	}
	if got := d.read("slot-b.img"); got != "system 1.0.0" {
		t.Errorf("slot b was changed: %q", got)
	}
	// boot-check commits it like an install.
	if err := d.bootCheck(); err != nil {
		t.Fatal(err)
	}
	if st := d.bootState(); st.Slot != "b" || st.UpgradeAvailable {
		t.Errorf("boot state after boot-check %+v", st)
	}
	a := d.open()
	s, err := a.Status()
	if err != nil {
		t.Fatal(err)
	}
	if s.Install.State != StateCommitted || s.Installed.Version != "1.0.0" || s.Installed.Slot != "b" ||
		len(s.Components) != 1 || s.Components[0].Version != "1.0.0" {
		t.Errorf("after the commit: install %+v, installed %+v, components %+v", s.Install, s.Installed, s.Components)
	}
	a.Close()
	// And back again: slot a still holds 2.0.0.
	if _, err := d.rollbackPrevious(); err != nil {
		t.Fatal(err)
	}
	if err := d.bootCheck(); err != nil {
		t.Fatal(err)
	}
	if st := d.bootState(); st.Slot != "a" || st.UpgradeAvailable {
		t.Errorf("boot state after the second rollback %+v", st)
	}
	// The release rolled away from may be installed again once more.
	if err := d.install(d.bundle(bundleSpec{version: "3.0.0", rootfs: "system 3.0.0"})); err != nil {
		t.Fatal(err)
	}
}

// TestRollbackPreviousFallback: the previous release is on trial like an
// install; when it does not come up the bootloader falls back.
func TestRollbackPreviousFallback(t *testing.T) {
	d := newDevice(t, "true")
	twoReleases(t, d)
	if _, err := d.rollbackPrevious(); err != nil {
		t.Fatal(err)
	}
	d.write("bootenv", strings.Replace(d.read("bootenv"), "bootcount=0", "bootcount=2", 1))
	if err := d.bootCheck(); err != nil {
		t.Fatal(err)
	}
	if j := d.journal(); j.State != StateRolledBack || !strings.Contains(j.Result, "rolled back by the bootloader") {
		t.Errorf("journal %s: %s", j.State, j.Result)
	}
	if st := d.bootState(); st.Slot != "a" || st.UpgradeAvailable {
		t.Errorf("boot state %+v", st)
	}
}

func TestRollbackPreviousRefused(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(t *testing.T, d *device)
		reason string // in the error
		err    error  // also wrapped, if set
	}{
		{"nothing committed in the other slot", func(t *testing.T, d *device) {
			if err := d.install(d.bundle(bundleSpec{version: "1.0.0", rootfs: "system 1.0.0"})); err != nil {
				t.Fatal(err)
			}
			if err := d.bootCheck(); err != nil {
				t.Fatal(err)
			}
		}, "slot a holds no release ferry committed", nil},
		{"overwritten by an install that was rolled back", func(t *testing.T, d *device) {
			twoReleases(t, d)
			d.cfg.Health.Commands = []string{"false"}
			if err := d.install(d.bundle(bundleSpec{version: "3.0.0", rootfs: "system 3.0.0"})); err != nil {
				t.Fatal(err)
			}
			var hc *HealthCheckError
			if err := d.bootCheck(); !errors.As(err, &hc) {
				t.Fatalf("boot-check: %v", err)
			}
			d.cfg.Health.Commands = nil
		}, "slot b (sim-os 1.0.0) was overwritten by the install of sim-os 3.0.0, which did not commit (rolled-back", &verifyio.DigestError{}},
		{"partly written by a failed install", func(t *testing.T, d *device) {
			twoReleases(t, d)
			b := corruptPayload(t, d.bundle(bundleSpec{version: "3.0.0", rootfs: strings.Repeat("system 3.0.0 ", 1<<16)}))
			if err := d.install(b); err == nil {
				t.Fatal("a damaged bundle was installed")
			}
		}, "was partly written by the install of sim-os 3.0.0, which failed", nil},
		{"changed outside ferry", func(t *testing.T, d *device) {
			twoReleases(t, d)
			d.write("slot-b.img", "system 1.0.1")
		}, "does not hold it any more", &verifyio.DigestError{}},
		{"cut short", func(t *testing.T, d *device) {
			twoReleases(t, d)
			d.write("slot-b.img", "system")
		}, "does not hold it any more", verifyio.ErrTruncated},
		{"grown", func(t *testing.T, d *device) {
			twoReleases(t, d)
			d.write("slot-b.img", "system 1.0.0 and more")
		}, "does not hold it any more", verifyio.ErrTooLong},
		{"missing slot device", func(t *testing.T, d *device) {
			twoReleases(t, d)
			os.Remove(d.path("slot-b.img"))
		}, "cannot be checked", os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDevice(t, "true")
			tt.setup(t, d)
			env, journal := d.read("bootenv"), d.read("state/journal.json")
			res, err := d.rollbackPrevious()
			var pe *PreviousError
			if res != nil || !errors.Is(err, ErrNoPrevious) || !errors.As(err, &pe) {
				t.Fatalf("got %+v, %v; want a *PreviousError", res, err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error %q does not say %q", err, tt.reason)
			}
			switch want := tt.err.(type) {
			case nil:
			case *verifyio.DigestError:
				if !errors.As(err, &want) {
					t.Errorf("error %v does not wrap a digest mismatch", err)
				}
			default:
				if !errors.Is(err, want) {
					t.Errorf("error %v does not wrap %v", err, want)
				}
			}
			// Nothing changed: the boot environment, the journal.
			if d.read("bootenv") != env || d.read("state/journal.json") != journal {
				t.Error("a refused rollback changed the boot environment or the journal")
			}
		})
	}
}

// TestRollbackPreviousBytesDecide: an install that was refused before
// writing leaves the previous release in place.
func TestRollbackPreviousBytesDecide(t *testing.T) {
	d := newDevice(t, "true")
	twoReleases(t, d)
	var re *RefusedError
	if err := d.install(d.bundle(bundleSpec{version: "1.5.0", rootfs: "system 1.5.0"})); !errors.As(err, &re) {
		t.Fatalf("downgrade: %v", err)
	}
	if _, err := d.rollbackPrevious(); err != nil {
		t.Fatal(err)
	}
}

func TestRollbackPreviousPending(t *testing.T) {
	d := newDevice(t, "true")
	twoReleases(t, d)
	if err := d.install(d.bundle(bundleSpec{version: "3.0.0", rootfs: "system 3.0.0"})); err != nil {
		t.Fatal(err)
	}
	if _, err := d.rollbackPrevious(); !errors.Is(err, ErrPending) {
		t.Fatalf("got %v, want ErrPending", err)
	}
}
