package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/transport/stick"
)

// commit installs s and, for an A/B bundle, boot-checks it, so that it
// is committed.
func (d *device) commit(s bundleSpec) {
	d.t.Helper()
	if err := d.install(d.bundle(s)); err != nil {
		d.t.Fatalf("install %s %s: %v", s.name, s.version, err)
	}
	if s.rootfs != "" {
		if err := d.bootCheck(); err != nil {
			d.t.Fatalf("boot-check %s %s: %v", s.name, s.version, err)
		}
	}
	if j := d.journal(); j.State != StateCommitted {
		d.t.Fatalf("install %s %s: %s: %s", s.name, s.version, j.State, j.Result)
	}
}

// components returns the status's components as "name version@where".
func (d *device) components() string {
	d.t.Helper()
	var st *Status
	if err := d.do(func(a *Agent) (err error) { st, err = a.Status(); return err }); err != nil {
		d.t.Fatal(err)
	}
	var out []string
	for _, c := range st.Components {
		where := "global"
		if c.Slot != "" {
			where = c.Slot
		}
		out = append(out, c.Name+" "+c.Version+"@"+where)
	}
	return strings.Join(out, ", ")
}

var (
	gwOS    = func(v string) bundleSpec { return bundleSpec{name: "gw-os", version: v, rootfs: "gw-os " + v} }
	appConf = func(v string, depends ...string) bundleSpec {
		return bundleSpec{name: "app-conf", version: v, files: map[string]string{"app.conf": v}, depends: depends}
	}
)

// TestVersionsPerComponent: a bundle is compared with the installed
// version of its own component only (issue 10 item 4: app-conf 1.2.0 was
// refused as a downgrade of gw-os 1.4.0).
func TestVersionsPerComponent(t *testing.T) {
	d := newDevice(t)
	d.commit(gwOS("1.4.0"))
	d.commit(appConf("1.2.0"))
	if got, want := d.components(), "app-conf 1.2.0@global, gw-os 1.4.0@b"; got != want {
		t.Fatalf("components %q, want %q", got, want)
	}
	// Anti-rollback still holds for each component on its own.
	for _, tc := range []struct {
		spec           bundleSpec
		component, why string
		sentinel       error
	}{
		{appConf("1.1.0"), "app-conf", "1.1.0 < installed 1.2.0", ErrDowngrade},
		{appConf("1.2.0"), "app-conf", "1.2.0 = installed 1.2.0", ErrSameVersion},
		{gwOS("1.3.9"), "gw-os", "1.3.9 < installed 1.4.0", ErrDowngrade},
		// A component the bundle provides counts as well as its own name.
		{bundleSpec{name: "kernel-fix", version: "9.0.0", files: map[string]string{"k": "x"}, provides: map[string]string{"gw-os": "1.0.0"}}, "gw-os", "1.0.0 < installed 1.4.0", ErrDowngrade},
	} {
		err := d.install(d.bundle(tc.spec))
		var ve *VersionError
		if !isRefused(err) || !errors.As(err, &ve) || !errors.Is(err, tc.sentinel) || ve.Component != tc.component || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("install %s %s: %v, want a refusal of component %s (%s)", tc.spec.name, tc.spec.version, err, tc.component, tc.why)
		}
	}
	if got := d.read("app/current/app.conf"); got != "1.2.0" {
		t.Errorf("app.conf %q after refusals", got)
	}
	// Re-installing with the same version of a provided component is
	// fine when the bundle's own version goes up.
	d.commit(bundleSpec{name: "app-conf", version: "1.3.0", files: map[string]string{"app.conf": "1.3.0"}, provides: map[string]string{"app-schema": "2.0.0"}})
	d.commit(bundleSpec{name: "app-conf", version: "1.4.0", files: map[string]string{"app.conf": "1.4.0"}, provides: map[string]string{"app-schema": "2.0.0"}})
	if got, want := d.components(), "app-conf 1.4.0@global, app-schema 2.0.0@global, gw-os 1.4.0@b"; got != want {
		t.Errorf("components %q, want %q", got, want)
	}
}

// TestPolicyPerComponent: allow_downgrade for one component leaves
// anti-rollback on for the others.
func TestPolicyPerComponent(t *testing.T) {
	d := newDevice(t)
	d.commit(gwOS("1.4.0"))
	d.commit(appConf("1.2.0"))
	d.cfg.Policy.Components = map[string]ComponentPolicy{"app-conf": {AllowDowngrade: true}}
	d.commit(appConf("1.1.0"))
	if err := d.install(d.bundle(gwOS("1.3.0"))); !errors.Is(err, ErrDowngrade) {
		t.Errorf("gw-os 1.3.0 with app-conf's allow_downgrade: %v, want ErrDowngrade", err)
	}
	if err := d.install(d.bundle(appConf("1.1.0"))); !errors.Is(err, ErrSameVersion) {
		t.Errorf("app-conf 1.1.0 again: %v, want ErrSameVersion", err)
	}
	if got, want := d.components(), "app-conf 1.1.0@global, gw-os 1.4.0@b"; got != want {
		t.Errorf("components %q, want %q", got, want)
	}
}

// TestDepends: an unmet dependency refuses the bundle before anything is
// written, naming the component that is missing or too old.
func TestDepends(t *testing.T) {
	d := newDevice(t)
	d.commit(gwOS("1.4.0"))
	for _, tc := range []struct {
		depends string
		want    string // "" = met
	}{
		{"gw-os >= 1.5", "needs gw-os >= 1.5.0, and gw-os 1.4.0 is installed"},
		{"gw-os >= 1.4, < 1.4.0", "needs gw-os >= 1.4.0, < 1.4.0, and gw-os 1.4.0 is installed"},
		{"sensor-fw >= 1", "needs sensor-fw >= 1.0.0, and sensor-fw is not installed"},
		{"app-conf >= 1.0", "needs app-conf >= 1.0.0, and app-conf is not installed"},
		{"gw-os >= 1.4, < 2", ""},
	} {
		t.Run(tc.depends, func(t *testing.T) {
			envBefore := d.read("bootenv")
			err := d.install(d.bundle(appConf("1.2.0", tc.depends)))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("install: %v", err)
				}
				return
			}
			var de *DependencyError
			if !isRefused(err) || !errors.As(err, &de) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("install: %v, want a refusal saying %q", err, tc.want)
			}
			if _, err := os.Stat(d.path("app")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the files target was written to: %v", err)
			}
			if got := d.read("bootenv"); got != envBefore {
				t.Errorf("boot env changed")
			}
			if j := d.journal(); j.State != StateFailed || !j.Refused {
				t.Errorf("journal %s refused=%t", j.State, j.Refused)
			}
		})
	}
	if got, want := d.components(), "app-conf 1.2.0@global, gw-os 1.4.0@b"; got != want {
		t.Errorf("components %q, want %q", got, want)
	}
}

// TestComponentsPerSlot: a rootfs install replaces the components of the
// slot it writes; after a rollback the booted slot's are the ones that
// count, and global components stay.
func TestComponentsPerSlot(t *testing.T) {
	d := newDevice(t)
	d.commit(bundleSpec{name: "gw-os", version: "1.4.0", rootfs: "1.4", provides: map[string]string{"gw-os.kernel": "6.1.0", "busybox": "1.36.0"}})
	d.commit(appConf("1.2.0"))
	// 1.5.0 goes into slot a, no longer provides busybox, and the
	// bootloader falls back to slot b.
	if err := d.install(d.bundle(bundleSpec{name: "gw-os", version: "1.5.0", rootfs: "1.5", provides: map[string]string{"gw-os.kernel": "6.6.0"}})); err != nil {
		t.Fatal(err)
	}
	d.write("bootenv", strings.Replace(d.read("bootenv"), "bootcount=0", "bootcount=2", 1))
	if err := d.bootCheck(); err != nil {
		t.Fatal(err)
	}
	onB := "app-conf 1.2.0@global, busybox 1.36.0@b, gw-os 1.4.0@b, gw-os.kernel 6.1.0@b"
	if got := d.components(); got != onB {
		t.Errorf("after the fallback: components %q, want %q", got, onB)
	}
	// Installed for real this time: slot a's set replaces what b had.
	d.commit(bundleSpec{name: "gw-os", version: "1.5.0", rootfs: "1.5", provides: map[string]string{"gw-os.kernel": "6.6.0"}})
	if got, want := d.components(), "app-conf 1.2.0@global, gw-os 1.5.0@a, gw-os.kernel 6.6.0@a"; got != want {
		t.Errorf("after 1.5.0: components %q, want %q", got, want)
	}
	// Slot b still holds 1.4.0: were it booted, its components count.
	d.cfg.BootedSlot = "b"
	if got := d.components(); got != onB {
		t.Errorf("booted from b: components %q, want %q", got, onB)
	}
}

// TestMigrateInstalled: the single installed version older agents kept
// becomes a component on first start, durably; an A/B install (the
// journal tells) goes to its slot, anything else is global.
func TestMigrateInstalled(t *testing.T) {
	for _, tc := range []struct {
		name, journal string
		want          string
	}{
		{"ab", "journal-ab.json", "gw-os 1.4.0@b"},
		{"no journal", "", "gw-os 1.4.0@global"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t)
			state := d.path("state")
			if err := os.MkdirAll(state, 0o700); err != nil {
				t.Fatal(err)
			}
			old, err := os.ReadFile("testdata/installed-v1.json")
			if err != nil {
				t.Fatal(err)
			}
			d.write("state/installed.json", string(old))
			if tc.journal != "" {
				b, err := os.ReadFile(filepath.Join("testdata", tc.journal))
				if err != nil {
					t.Fatal(err)
				}
				d.write("state/journal.json", string(b))
			}
			d.write("bootenv", "bootcmd=run ferry\nferry_slot=b\nupgrade_available=0\nbootcount=0\nbootlimit=1\n")
			if err := d.do(func(*Agent) error { return nil }); err != nil {
				t.Fatal(err)
			}
			var in Installed
			if ok, err := readJSON(d.path("state/installed.json"), &in); !ok || err != nil {
				t.Fatal(ok, err)
			}
			if in.Format != InstalledFormat || in.Bundle != "gw-os" || in.Version != "1.4.0" {
				t.Errorf("installed.json after the first start: %+v", in)
			}
			if got := d.components(); got != tc.want {
				t.Errorf("components %q, want %q", got, tc.want)
			}
			// The migrated component keeps its anti-rollback; another
			// component's bundle is judged on its own.
			if err := d.install(d.bundle(gwOS("1.3.0"))); !errors.Is(err, ErrDowngrade) {
				t.Errorf("gw-os 1.3.0: %v, want ErrDowngrade", err)
			}
			d.commit(appConf("1.2.0"))
		})
	}
}

func isRefused(err error) bool {
	var re *RefusedError
	return errors.As(err, &re)
}

// TestStickPerComponent: the stick's bundle is judged against the
// installed version of its own component, not the last bundle installed.
func TestStickPerComponent(t *testing.T) {
	e := newTrustEnv(t)
	e.commit(bundleSpec{name: "app-conf", version: "9.0.0", files: map[string]string{"app.conf": "9"}})
	st, _ := mirrorFor(t, e.bundle(bundleSpec{version: "2.0.0", rootfs: "system from the stick"}))
	dir := makeStick(t, st)
	s, err := stick.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var res *Result
	err = e.do(func(a *Agent) (err error) { res, _, err = a.InstallStick(context.Background(), s); return err })
	if err != nil || res == nil || res.Version != "2.0.0" {
		t.Fatalf("stick install: %+v, %v; want sim-os 2.0.0 installed beside app-conf 9.0.0", res, err)
	}
	if got := e.read("slot-b.img"); got != "system from the stick" {
		t.Errorf("slot b holds %q", got)
	}
	// Once installed, the same bundle is nothing to do.
	if err := e.bootCheck(); err != nil {
		t.Fatal(err)
	}
	err = e.do(func(a *Agent) (err error) { res, _, err = a.InstallStick(context.Background(), s); return err })
	if err != nil || res != nil {
		t.Errorf("stick again: %+v, %v; want nothing to do", res, err)
	}
}
