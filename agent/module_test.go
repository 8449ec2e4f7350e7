package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/agent/module"
)

// singleFile sets d up with the example single-file module and returns
// the file it manages, holding "old".
func singleFile(t *testing.T, d *device) (payload map[string]string, target string) {
	t.Helper()
	dir, err := filepath.Abs("../examples/modules")
	if err != nil {
		t.Fatal(err)
	}
	d.cfg.Modules.Dir = dir
	dest := d.path("etc/app")
	if err := os.MkdirAll(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	target = filepath.Join(dest, "app.conf")
	if err := os.WriteFile(target, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return map[string]string{"app.conf": "new\n", "filename": "app.conf\n", "dest_dir": dest + "\n"}, target
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// noTrees checks that every module file tree was removed.
func noTrees(t *testing.T, d *device) {
	t.Helper()
	if left, _ := filepath.Glob(d.path("state/modules/payloads/*/tree")); len(left) > 0 {
		t.Errorf("module file trees left: %v", left)
	}
}

func TestModuleSingleFileCommit(t *testing.T) {
	d := newDevice(t)
	payload, target := singleFile(t, d)
	d.cfg.Health.Commands = []string{"grep -q new " + target}
	var res *Result
	err := d.do(func(a *Agent) (err error) {
		res, err = a.Install(context.Background(), strings.NewReader(string(d.bundle(bundleSpec{version: "1.0.0", module: payload}))), "test")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.State != StateCommitted || res.Rebooting {
		t.Errorf("result %+v", res)
	}
	if got := readString(t, target); got != "new\n" {
		t.Errorf("%s holds %q", target, got)
	}
	if _, err := os.Stat(d.path("reboots")); err == nil {
		t.Error("a module that needs no reboot rebooted the device")
	}
	if st := d.bootState(); st.Slot != "a" || st.UpgradeAvailable {
		t.Errorf("boot env changed: %+v", st)
	}
	j := d.journal()
	if len(j.Modules) != 1 || j.Modules[0].Module != "single-file" || !j.Modules[0].Installed || j.Modules[0].Reboot != "No" || j.Modules[0].Rollback != "Yes" {
		t.Errorf("journal modules %+v", j.Modules)
	}
	if in := readString(t, d.path("state/installed.json")); !strings.Contains(in, `"version": "1.0.0"`) {
		t.Errorf("installed %s", in)
	}
	noTrees(t, d)
}

func TestModuleSingleFileRollback(t *testing.T) {
	d := newDevice(t)
	payload, target := singleFile(t, d)
	d.cfg.Health.Commands = []string{"! grep -q new " + target}
	err := d.install(d.bundle(bundleSpec{version: "1.0.0", module: payload}))
	var he *HealthCheckError
	if !errors.As(err, &he) {
		t.Fatalf("install: %v, want a health check error", err)
	}
	if got := readString(t, target); got != "old\n" {
		t.Errorf("after rollback %s holds %q", target, got)
	}
	if j := d.journal(); j.State != StateRolledBack || !strings.Contains(j.Result, "health check failed") {
		t.Errorf("journal %s: %s", j.State, j.Result)
	}
	if _, err := os.Stat(d.path("state/installed.json")); err == nil {
		t.Error("installed record written")
	}
	noTrees(t, d)
}

// A module that fails ArtifactInstall: Mender's order is ArtifactRollback
// (it supports it), ArtifactFailure, Cleanup; nothing else of the bundle
// is activated.
func TestModuleFailingInstall(t *testing.T) {
	d := newDevice(t)
	mods := t.TempDir()
	calls := filepath.Join(t.TempDir(), "calls")
	script := fmt.Sprintf(`#!/bin/sh
echo "$1" >> %s
case "$1" in
ArtifactInstall) echo "no space left on /data" >&2; exit 3 ;;
SupportsRollback) echo Yes ;;
esac
exit 0
`, calls)
	if err := os.WriteFile(filepath.Join(mods, "failing"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	d.cfg.Modules.Dir = mods
	b := d.bundle(bundleSpec{version: "1.0.0", rootfs: "system 1.0.0", files: map[string]string{"version": "1.0.0"},
		module: map[string]string{"data": "x"}, moduleName: "failing"})
	err := d.install(b)
	if err == nil || !strings.Contains(err.Error(), "no space left on /data") {
		t.Fatalf("install: %v", err)
	}
	want := []string{"ProvidePayloadFileSizes", "Download", "ArtifactInstall", "SupportsRollback", "ArtifactRollback", "ArtifactFailure", "Cleanup"}
	if got := strings.Fields(readString(t, calls)); !slices.Equal(got, want) {
		t.Errorf("module states\n got %v\nwant %v", got, want)
	}
	if st := d.bootState(); st.Slot != "a" || st.UpgradeAvailable {
		t.Errorf("boot env activated: %+v", st)
	}
	if cur := currentRelease(d.path("app")); cur != "" {
		t.Errorf("files target switched to %q", cur)
	}
	if j := d.journal(); j.State != StateFailed {
		t.Errorf("journal %s: %s", j.State, j.Result)
	}
	if _, err := os.Stat(d.path("reboots")); err == nil {
		t.Error("rebooted")
	}
	noTrees(t, d)
}

func TestModuleMissing(t *testing.T) {
	d := newDevice(t)
	d.cfg.Modules.Dir = t.TempDir()
	err := d.install(d.bundle(bundleSpec{version: "1.0.0", module: map[string]string{"f": "x"}, moduleName: "nowhere"}))
	if err == nil || !strings.Contains(err.Error(), `no update module "nowhere"`) {
		t.Fatalf("install: %v", err)
	}
	if j := d.journal(); j.State != StateFailed {
		t.Errorf("journal %s", j.State)
	}
}

// fakeModules records the states its sessions are driven through.
type fakeModules struct {
	calls    []string
	fail     map[string]bool
	reboot   module.Reboot
	rollback bool
	files    map[string]string // downloaded
	open     map[int]bool      // file trees
}

func newFakeModules() *fakeModules {
	return &fakeModules{fail: map[string]bool{}, files: map[string]string{}, open: map[int]bool{}, rollback: true}
}

func (f *fakeModules) Prepare(p module.Payload) (ModuleSession, error) {
	f.open[p.Index] = true
	return &fakeSession{f: f, index: p.Index}, nil
}

func (f *fakeModules) Resume(name string, index int) (ModuleSession, error) {
	if !f.open[index] {
		return nil, fmt.Errorf("resume %s: %w", name, fs.ErrNotExist)
	}
	return &fakeSession{f: f, index: index}, nil
}

type fakeSession struct {
	f     *fakeModules
	index int
}

func (s *fakeSession) call(state string) error {
	s.f.calls = append(s.f.calls, state)
	if s.f.fail[state] {
		return fmt.Errorf("fake module: %s failed", state)
	}
	return nil
}

func (s *fakeSession) Download(_ context.Context, src module.FileSource) error {
	for {
		f, r, err := src.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			s.f.calls = append(s.f.calls, "Download")
			return err
		}
		b, err := io.ReadAll(r)
		if err != nil {
			s.f.calls = append(s.f.calls, "Download")
			return err
		}
		s.f.files[f.Name] = string(b)
	}
	return s.call("Download")
}

func (s *fakeSession) Run(_ context.Context, state string) error { return s.call(state) }

func (s *fakeSession) NeedsReboot(context.Context) (module.Reboot, error) {
	return s.f.reboot, s.call(module.NeedsArtifactReboot)
}

func (s *fakeSession) SupportsRollback(context.Context) (bool, error) {
	return s.f.rollback, s.call(module.SupportsRollback)
}

func (s *fakeSession) Close(context.Context) error {
	delete(s.f.open, s.index)
	return s.call(module.Cleanup)
}

func TestModuleStates(t *testing.T) {
	installed := []string{"Download", "ArtifactInstall", "NeedsArtifactReboot", "SupportsRollback"}
	for _, tc := range []struct {
		name      string
		reboot    module.Reboot
		rollback  bool
		fail      string
		health    string
		corrupt   bool
		want      []string // after the install, then after boot-check
		state     State
		reboots   int
		resultHas string
	}{
		{name: "no reboot", want: append(installed, "ArtifactCommit", "Cleanup"), state: StateCommitted},
		{name: "automatic reboot", reboot: module.RebootAutomatic, reboots: 1,
			want: append(installed, "ArtifactVerifyReboot", "ArtifactCommit", "Cleanup"), state: StateCommitted},
		{name: "module reboots", reboot: module.RebootYes,
			want: append(installed, "ArtifactReboot", "ArtifactVerifyReboot", "ArtifactCommit", "Cleanup"), state: StateCommitted},
		{name: "health fails", health: "false", rollback: true, state: StateRolledBack,
			want: append(installed, "ArtifactRollback", "ArtifactFailure", "Cleanup")},
		{name: "health fails after reboot", reboot: module.RebootAutomatic, health: "false", rollback: true, state: StateRolledBack, reboots: 2,
			want: append(installed, "ArtifactVerifyReboot", "ArtifactRollback", "ArtifactFailure", "Cleanup")},
		{name: "no rollback", health: "false", state: StateRolledBack, resultHas: "cannot roll back",
			want: append(installed, "ArtifactFailure", "Cleanup")},
		{name: "verify fails", reboot: module.RebootAutomatic, fail: "ArtifactVerifyReboot", rollback: true, state: StateRolledBack, reboots: 2,
			want: append(installed, "ArtifactVerifyReboot", "ArtifactRollback", "ArtifactFailure", "Cleanup")},
		{name: "commit fails", fail: "ArtifactCommit", rollback: true, state: StateRolledBack, resultHas: "commit failed",
			want: append(installed, "ArtifactCommit", "ArtifactRollback", "ArtifactFailure", "Cleanup")},
		{name: "download fails", fail: "Download", state: StateFailed, want: []string{"Download", "Cleanup"}},
		{name: "install fails", fail: "ArtifactInstall", rollback: true, state: StateFailed,
			want: []string{"Download", "ArtifactInstall", "SupportsRollback", "ArtifactRollback", "ArtifactFailure", "Cleanup"}},
		{name: "corrupt payload", corrupt: true, state: StateFailed, resultHas: "refused", want: []string{"Download", "Cleanup"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t)
			if tc.health != "" {
				d.cfg.Health.Commands = []string{tc.health}
			}
			f := newFakeModules()
			f.reboot, f.rollback = tc.reboot, tc.rollback
			if tc.fail != "" {
				f.fail[tc.fail] = true
			}
			d.cfg.ModuleRunner = f
			b := d.bundle(bundleSpec{version: "1.0.0", module: map[string]string{"a": "A", "b": strings.Repeat("B", 100000)}})
			if tc.corrupt {
				b = corruptPayload(t, b)
			}
			d.install(b)
			if j := d.journal(); j.State.Pending() {
				if err := d.bootCheck(); err != nil && tc.state == StateCommitted {
					t.Fatal(err)
				}
			}
			if !slices.Equal(f.calls, tc.want) {
				t.Errorf("states\n got %v\nwant %v", f.calls, tc.want)
			}
			j := d.journal()
			if j.State != tc.state || !strings.Contains(j.Result, tc.resultHas) {
				t.Errorf("ended %s (%s), want %s with %q", j.State, j.Result, tc.state, tc.resultHas)
			}
			if tc.state == StateCommitted && (f.files["a"] != "A" || len(f.files["b"]) != 100000) {
				t.Errorf("module got %d files", len(f.files))
			}
			reboots := 0
			if b, err := os.ReadFile(d.path("reboots")); err == nil {
				reboots = strings.Count(string(b), "reboot")
			}
			if reboots != tc.reboots {
				t.Errorf("%d reboots, want %d", reboots, tc.reboots)
			}
			if len(f.open) > 0 {
				t.Errorf("sessions left open: %v", f.open)
			}
		})
	}
}

// A bundle with a rootfs and a module payload: the module is installed
// with the slot, verified after the reboot and committed with it.
func TestModuleWithRootfs(t *testing.T) {
	d := newDevice(t)
	f := newFakeModules()
	d.cfg.ModuleRunner = f
	if err := d.install(d.bundle(bundleSpec{version: "1.0.0", rootfs: "system 1.0.0", module: map[string]string{"a": "A"}})); err != nil {
		t.Fatal(err)
	}
	if st := d.bootState(); st.Slot != "b" || !st.UpgradeAvailable {
		t.Fatalf("boot state %+v", st)
	}
	if err := d.bootCheck(); err != nil {
		t.Fatal(err)
	}
	want := []string{"Download", "ArtifactInstall", "NeedsArtifactReboot", "SupportsRollback", "ArtifactCommit", "Cleanup"}
	if !slices.Equal(f.calls, want) {
		t.Errorf("states\n got %v\nwant %v", f.calls, want)
	}
	if st := d.bootState(); st.Slot != "b" || st.UpgradeAvailable {
		t.Errorf("boot state after commit %+v", st)
	}
}
