package agent

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-update/ferry/agent/bootenv"
	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/testtool"
	"github.com/ferry-update/ferry/verify"
)

func TestInstallBootCheckCommit(t *testing.T) {
	d := newDevice(t)
	d.cfg.Health.Commands = []string{`grep -q healthy ` + d.dir + `/slot-$FERRY_SLOT.img`}
	b := d.bundle(bundleSpec{version: "1.0.0", rootfs: "system 1.0.0 healthy"})

	a := d.open()
	res, err := a.Install(context.Background(), bytes.NewReader(b), "test")
	if err != nil {
		t.Fatal(err)
	}
	if res.State != StateRebooting || !res.Rebooting || res.Slot != "b" {
		t.Errorf("install result %+v", res)
	}
	if got := d.read("slot-b.img"); got != "system 1.0.0 healthy" {
		t.Errorf("slot b holds %q", got)
	}
	if got := d.read("reboots"); got != "reboot\n" {
		t.Errorf("reboots %q", got)
	}
	st := d.bootState()
	if st.Slot != "b" || !st.UpgradeAvailable {
		t.Errorf("boot state after install %+v", st)
	}
	s, err := a.Status()
	if err != nil || !s.Pending || s.Installed != nil || s.BootedSlot != "b" {
		t.Errorf("status %+v, %v", s, err)
	}
	res, err = a.BootCheck(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.State != StateCommitted {
		t.Errorf("boot-check result %+v", res)
	}
	if st := d.bootState(); st.Slot != "b" || st.UpgradeAvailable {
		t.Errorf("boot state after commit %+v", st)
	}
	in, err := a.installed()
	if err != nil || in == nil || in.Version != "1.0.0" || in.Slot != "b" {
		t.Errorf("installed %+v, %v", in, err)
	}
	if d.read("bootenv") == "" || !strings.Contains(d.read("bootenv"), "bootcmd=run ferry") {
		t.Error("the bootloader's own variables were lost")
	}
}

func TestHealthCheckFailureRollsBack(t *testing.T) {
	// Neither case depends on how fast the machine is: a failing check
	// has all the time it could need (a short timeout fired under load
	// and made it "timed out"), and the check that must time out never
	// ends on its own within the test.
	for _, tc := range []struct {
		name    string
		command string
		timeout time.Duration
		want    string
	}{
		{"fails", "grep -q healthy " + "SLOT", time.Hour, "exit status 1"},
		{"times out", "sleep 3600", 300 * time.Millisecond, "timed out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t)
			d.cfg.Health.Commands = []string{strings.ReplaceAll(tc.command, "SLOT", d.dir+"/slot-$FERRY_SLOT.img")}
			d.cfg.Health.Timeout.Duration = tc.timeout
			if err := d.install(d.bundle(bundleSpec{version: "1.0.0", rootfs: "broken"})); err != nil {
				t.Fatal(err)
			}
			err := d.bootCheck()
			var he *HealthCheckError
			if !errors.As(err, &he) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("boot-check: %v, want a health check error with %q", err, tc.want)
			}
			if st := d.bootState(); st.Slot != "a" || st.UpgradeAvailable {
				t.Errorf("boot state %+v, want slot a committed", st)
			}
			if j := d.journal(); j.State != StateRolledBack {
				t.Errorf("journal state %s", j.State)
			}
			if got := d.read("reboots"); got != "reboot\nreboot\n" {
				t.Errorf("reboots %q, want the install's and the rollback's", got)
			}
			if got := d.read("slot-a.img"); got != "factory" {
				t.Errorf("slot a holds %q", got)
			}
		})
	}
}

func TestRefused(t *testing.T) {
	other, _ := verify.GenerateKey(verify.ECDSAP256)
	otherSigner, _ := verify.NewSigner(other, "mallory")
	for _, tc := range []struct {
		name    string
		spec    bundleSpec
		mangle  func(*testing.T, []byte) []byte
		wantErr any // error target for errors.As, or sentinel
	}{
		{name: "downgrade", spec: bundleSpec{version: "0.9.0", rootfs: "old"}, wantErr: ErrDowngrade},
		{name: "same version", spec: bundleSpec{version: "1.0.0", rootfs: "again"}, wantErr: ErrSameVersion},
		{name: "wrong device type", spec: bundleSpec{version: "2.0.0", rootfs: "x", deviceTypes: []string{"other-board"}}, wantErr: new(*verify.DeviceTypeError)},
		{name: "untrusted key", spec: bundleSpec{version: "2.0.0", rootfs: "x", signer: otherSigner}, wantErr: new(*verify.ThresholdError)},
		{name: "unsigned", spec: bundleSpec{version: "2.0.0", rootfs: "x", unsigned: true}, wantErr: new(*verify.ThresholdError)},
		{name: "corrupted payload", spec: bundleSpec{version: "2.0.0", rootfs: strings.Repeat("payload ", 1000)}, mangle: corruptPayload, wantErr: new(*bundle.Error)},
		{name: "truncated", spec: bundleSpec{version: "2.0.0", rootfs: strings.Repeat("payload ", 1000)}, mangle: func(_ *testing.T, b []byte) []byte { return b[:len(b)-2000] }, wantErr: bundle.ErrTruncated},
		{name: "unknown target", spec: bundleSpec{version: "2.0.0", rootfs: "x"}, mangle: nil, wantErr: ErrUnknownTarget},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t)
			if err := d.install(d.bundle(bundleSpec{version: "1.0.0", rootfs: "v1"})); err != nil {
				t.Fatal(err)
			}
			if err := d.do(func(a *Agent) error { _, err := a.Commit(); return err }); err != nil {
				t.Fatal(err)
			}
			if tc.name == "unknown target" {
				delete(d.cfg.Slots, "rootfs")
				d.cfg.Slots["system"] = SlotConfig{A: d.path("slot-a.img"), B: d.path("slot-b.img")}
			}
			envBefore, slotBefore := d.read("bootenv"), d.read("slot-b.img")
			b := d.bundle(tc.spec)
			if tc.mangle != nil {
				b = tc.mangle(t, b)
			}
			err := d.install(b)
			var re *RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("install: %v, want a *RefusedError", err)
			}
			switch w := tc.wantErr.(type) {
			case error:
				if !errors.Is(err, w) {
					t.Errorf("install: %v, want %v", err, w)
				}
			default:
				if !errors.As(err, w) {
					t.Errorf("install: %v, want a %T", err, w)
				}
			}
			if got := d.read("bootenv"); got != envBefore {
				t.Errorf("boot env changed:\n%s", got)
			}
			if got := d.read("slot-b.img"); got != slotBefore {
				t.Errorf("running slot b changed to %q", got)
			}
			if j := d.journal(); j.State != StateFailed || !j.Refused {
				t.Errorf("journal %s refused=%t", j.State, j.Refused)
			}
		})
	}
}

func TestPolicyAllows(t *testing.T) {
	d := newDevice(t)
	d.cfg.Policy = PolicyConfig{AllowDowngrade: true, AllowSameVersion: true}
	for _, v := range []string{"1.0.0", "1.0.0", "0.5.0"} {
		if err := d.install(d.bundle(bundleSpec{version: v, rootfs: "v" + v})); err != nil {
			t.Fatalf("install %s: %v", v, err)
		}
		if err := d.bootCheck(); err != nil {
			t.Fatal(err)
		}
	}
	if j := d.journal(); j.State != StateCommitted || j.Version != "0.5.0" {
		t.Errorf("journal %s %s", j.State, j.Version)
	}
}

// Failures before activation leave the device as it was and say why.
func TestInstallFailsCleanly(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(d *device)
		want  error
		text  string
	}{
		{"missing slot device", func(d *device) { os.Remove(d.path("slot-b.img")) }, ErrSlotDevice, "does not exist"},
		{"slot is the booted device", func(d *device) {
			d.cfg.Slots["rootfs"] = SlotConfig{A: d.path("slot-a.img"), B: d.path("link-to-a")}
			os.Symlink(d.path("slot-a.img"), d.path("link-to-a"))
		}, ErrSlotDevice, "booted slot"},
		{"full target", func(d *device) {
			if _, err := os.Stat("/dev/full"); err != nil {
				testtool.Missing(d.t, "/dev/full (the kernel's always-full device)")
			}
			d.cfg.Slots["rootfs"] = SlotConfig{A: d.path("slot-a.img"), B: "/dev/full"}
		}, syscall.ENOSPC, "target is full"},
		{"missing boot env", func(d *device) { os.Remove(d.path("bootenv")) }, bootenv.ErrNoValidEnv, ""},
		{"corrupt boot env", func(d *device) { d.write("bootenv", "garbage without equals\n") }, bootenv.ErrNoValidEnv, ""},
		{"trial with no journal", func(d *device) { d.write("bootenv", "ferry_slot=a\nupgrade_available=1\n") }, ErrUnknownBootState, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t)
			tc.setup(d)
			envBefore, _ := os.ReadFile(d.path("bootenv"))
			err := d.install(d.bundle(bundleSpec{version: "1.0.0", rootfs: "new system"}))
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("install: %v, want %v with %q", err, tc.want, tc.text)
			}
			var re *RefusedError
			if errors.As(err, &re) {
				t.Errorf("%v is reported as a refused bundle", err)
			}
			if envAfter, _ := os.ReadFile(d.path("bootenv")); !bytes.Equal(envAfter, envBefore) {
				t.Errorf("boot env changed: %q", envAfter)
			}
			if got := d.read("slot-a.img"); got != "factory" {
				t.Errorf("slot a holds %q", got)
			}
			if _, err := os.Stat(d.path("reboots")); err == nil {
				t.Error("rebooted")
			}
		})
	}
}

// errWriter accepts n bytes, then fails as a full disk does.
type errWriter struct{ n int }

func (w *errWriter) Write(b []byte) (int, error) {
	if len(b) > w.n {
		k := w.n
		w.n = 0
		return k, syscall.ENOSPC
	}
	w.n -= len(b)
	return len(b), nil
}

func TestCopyPayloadFullTarget(t *testing.T) {
	err := copyPayload(&errWriter{n: 100}, strings.NewReader(strings.Repeat("x", 1000)))
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "target is full") {
		t.Fatalf("got %v", err)
	}
}

func TestFallbackDetected(t *testing.T) {
	d := newDevice(t, "true")
	if err := d.install(d.bundle(bundleSpec{version: "1.0.0", rootfs: "new"})); err != nil {
		t.Fatal(err)
	}
	// The bootloader tried slot b twice (limit 1) and booted slot a.
	env := strings.Replace(d.read("bootenv"), "bootcount=0", "bootcount=2", 1)
	d.write("bootenv", env)
	var res *Result
	if err := d.do(func(a *Agent) (err error) { res, err = a.BootCheck(context.Background()); return err }); err != nil {
		t.Fatal(err)
	}
	if res.State != StateRolledBack || !strings.Contains(res.Message, "rolled back by the bootloader") {
		t.Errorf("result %+v", res)
	}
	if st := d.bootState(); st.Slot != "a" || st.UpgradeAvailable {
		t.Errorf("boot state %+v", st)
	}
}

func TestFilesPayload(t *testing.T) {
	d := newDevice(t)
	d.cfg.Health.Commands = []string{"! grep -q broken " + d.path("app/current/version")}
	install := func(v, content string) error {
		return d.install(d.bundle(bundleSpec{version: v, files: map[string]string{"version": content, "bin/run": "#!/bin/sh\n"}}))
	}
	if err := install("1.0.0", "one"); err != nil {
		t.Fatal(err)
	}
	if got := d.read("app/current/version"); got != "one" {
		t.Fatalf("current/version %q", got)
	}
	first := currentRelease(d.path("app"))
	if err := install("2.0.0", "two"); err != nil {
		t.Fatal(err)
	}
	second := currentRelease(d.path("app"))
	if got := releaseOf(d.path("app"), previousLink); got != first {
		t.Errorf("previous -> %q, want %q", got, first)
	}
	err := install("3.0.0", "broken")
	var he *HealthCheckError
	if !errors.As(err, &he) {
		t.Fatalf("install 3.0.0: %v, want a health check failure", err)
	}
	if got := currentRelease(d.path("app")); got != second {
		t.Errorf("current -> %q after rollback, want %q", got, second)
	}
	entries, _ := os.ReadDir(d.path("app/releases"))
	if len(entries) != 2 {
		t.Errorf("releases: %v, want the current and the previous", entries)
	}
	if _, err := os.Stat(d.path("reboots")); err == nil {
		t.Error("a files-only install rebooted")
	}
	if st := d.bootState(); st.Slot != "a" || st.UpgradeAvailable {
		t.Errorf("boot env touched: %+v", st)
	}
}

func TestPendingInstallBlocksAnother(t *testing.T) {
	d := newDevice(t)
	if err := d.install(d.bundle(bundleSpec{version: "1.0.0", rootfs: "one"})); err != nil {
		t.Fatal(err)
	}
	if err := d.install(d.bundle(bundleSpec{version: "2.0.0", rootfs: "two"})); !errors.Is(err, ErrPending) {
		t.Fatalf("second install: %v, want ErrPending", err)
	}
	if got := d.read("slot-a.img"); got != "factory" {
		t.Errorf("slot a holds %q", got)
	}
	// A manual rollback ends the trial; then installing works again.
	if err := d.do(func(a *Agent) error { _, err := a.Rollback(context.Background()); return err }); err != nil {
		t.Fatal(err)
	}
	if err := d.do(func(a *Agent) error { _, err := a.Commit(); return err }); !errors.Is(err, ErrNothingPending) {
		t.Fatalf("commit after rollback: %v", err)
	}
	if err := d.install(d.bundle(bundleSpec{version: "2.0.0", rootfs: "two"})); err != nil {
		t.Fatal(err)
	}
}

func TestCommitRefusedBeforeReboot(t *testing.T) {
	d := newDevice(t)
	if err := d.install(d.bundle(bundleSpec{version: "1.0.0", rootfs: "one"})); err != nil {
		t.Fatal(err)
	}
	d.cfg.BootedSlot = "a" // the device has not rebooted yet
	if err := d.do(func(a *Agent) error { _, err := a.Commit(); return err }); !errors.Is(err, ErrNotBooted) {
		t.Fatalf("commit: %v, want ErrNotBooted", err)
	}
	var res *Result
	if err := d.do(func(a *Agent) (err error) { res, err = a.BootCheck(context.Background()); return err }); err != nil || res.State != StateRebooting {
		t.Fatalf("boot-check on the old slot: %+v %v", res, err)
	}
}

func TestCmdlineBootedSlot(t *testing.T) {
	d := newDevice(t)
	d.cfg.Boot.Cmdline = d.path("cmdline")
	d.write("cmdline", "console=ttyS0 root=/dev/mmcblk0p3 ferry.slot=b quiet\n")
	a := d.open()
	s, err := a.Status()
	if err != nil || s.BootedSlot != "b" || s.BootedFrom != FromCmdline {
		t.Fatalf("status %+v %v", s, err)
	}
	d.write("cmdline", "ferry.slot=c\n")
	if _, err := a.Status(); err == nil {
		t.Fatal("ferry.slot=c accepted")
	}
}

// The U-Boot backend: a redundant environment with one copy destroyed
// still works; with both destroyed the install stops before writing.
func TestUBootEnv(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt []string
		wantErr error
	}{
		{"intact", nil, nil},
		{"one copy corrupt", []string{"env1"}, nil},
		{"both copies corrupt", []string{"env1", "env2"}, bootenv.ErrNoValidEnv},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t)
			d.write("fw_env.config", d.path("env1")+" 0x0 0x4000\n"+d.path("env2")+" 0x0 0x4000\n")
			d.write("env1", strings.Repeat("\x00", 0x4000))
			d.write("env2", strings.Repeat("\x00", 0x4000))
			env, err := bootenv.OpenUBootConfig(d.path("fw_env.config"))
			if err != nil {
				t.Fatal(err)
			}
			env.LockPath = ""
			for range 2 { // both copies hold the same variables
				if err := env.Save(map[string]string{"bootcmd": "run ferry", "ferry_slot": "a"}); err != nil {
					t.Fatal(err)
				}
			}
			for _, c := range tc.corrupt {
				d.write(c, strings.Repeat("\xff", 0x4000))
			}
			d.cfg.Boot = BootConfig{Backend: BackendUBoot, Path: d.path("fw_env.config"), SlotVar: "ferry_slot", Cmdline: "none"}
			err = d.install(d.bundle(bundleSpec{version: "1.0.0", rootfs: "new"}))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("install: %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != nil {
				if got := d.read("slot-b.img"); got != "" {
					t.Errorf("slot b written: %q", got)
				}
				return
			}
			st, err := bootenv.Boot{Store: env}.State()
			if err != nil || st.Slot != "b" || !st.UpgradeAvailable {
				t.Fatalf("boot state %+v %v", st, err)
			}
		})
	}
}

func TestStatePredicates(t *testing.T) {
	for _, s := range []State{StateIdle, StateCommitted, StateRolledBack, StateFailed} {
		if !s.Terminal() || s.Pending() {
			t.Errorf("%s", s)
		}
	}
	for _, s := range []State{StateTentative, StateRebooting, StateBooted} {
		if s.Terminal() || !s.Pending() {
			t.Errorf("%s", s)
		}
	}
}

func TestWriteFileAtomicLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "j.json")
	for i := range 3 {
		if err := writeJSON(p, map[string]int{"n": i}); err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%v", entries)
	}
}

// crash stops the agent at a fault point, as a power cut would; the agent
// is closed (its lock released) by the deferred Close in device.do.
type crash struct{ point string }

// A files-only install interrupted at each point: the next command undoes
// it (before activation is recorded) or finishes it (after).
func TestFilesInterrupted(t *testing.T) {
	for _, tc := range []struct {
		point   string
		want    State
		current string
	}{
		{"verifying", StateFailed, "one"},
		{"writing", StateFailed, "one"},
		{"written", StateFailed, "one"},
		{"activated", StateFailed, "one"},
		{"tentative", StateCommitted, "two"},
		{"booted", StateCommitted, "two"},
		{"committing", StateCommitted, "two"},
		{"recorded", StateCommitted, "two"},
	} {
		t.Run(tc.point, func(t *testing.T) {
			d := newDevice(t, "true")
			spec := func(v, content string) []byte {
				return d.bundle(bundleSpec{version: v, files: map[string]string{"version": content}})
			}
			if err := d.install(spec("1.0.0", "one")); err != nil {
				t.Fatal(err)
			}
			v2 := spec("2.0.0", "two")
			d.cfg.Faults = &Faults{At: func(p string) {
				if p == tc.point {
					panic(crash{p})
				}
			}}
			func() {
				defer func() {
					if r := recover(); r != (crash{tc.point}) {
						t.Fatalf("recovered %v", r)
					}
				}()
				d.install(v2)
			}()
			d.cfg.Faults = nil
			if err := d.bootCheck(); err != nil {
				t.Fatal(err)
			}
			if j := d.journal(); j.State != tc.want {
				t.Errorf("journal %s (%s), want %s", j.State, j.Result, tc.want)
			}
			if got := d.read("app/current/version"); got != tc.current {
				t.Errorf("current/version %q, want %q", got, tc.current)
			}
			entries, _ := os.ReadDir(d.path("app/releases"))
			if len(entries) > 2 {
				t.Errorf("releases left behind: %v", entries)
			}
		})
	}
}

// Temporary files a power cut left in the state directory are removed
// when the agent opens it; other files stay.
func TestStaleTempsRemovedAtOpen(t *testing.T) {
	d := newDevice(t)
	os.MkdirAll(d.path("state/tuf"), 0o700)
	d.write("state/.journal.json.123456.tmp", "half a journal")
	d.write("state/tuf/.timestamp.json.99.tmp", "half")
	d.write("state/notes.txt", "not ours")
	a := d.open()
	a.Close()
	for _, n := range []string{"state/.journal.json.123456.tmp", "state/tuf/.timestamp.json.99.tmp"} {
		if _, err := os.Lstat(d.path(n)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %v, want it removed", n, err)
		}
	}
	if d.read("state/notes.txt") != "not ours" {
		t.Error("another file was touched")
	}
}
