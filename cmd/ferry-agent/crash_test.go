package main

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/agent"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/mirror/server"
)

const (
	factoryImage = "factory system, healthy\n"
	crashConfig  = `device_type = "sim-board"
state_dir = "state"
reboot_command = "touch rebooted"
[trust]
keys = ["release.pub"]
[slots.rootfs]
a = "slot-a.img"
b = "slot-b.img"
[boot]
backend = "file"
path = "bootenv"
cmdline = "cmdline"
[health]
commands = ["grep -q healthy slot-$FERRY_SLOT.img"]
`
)

// crashDevice is a simulated device for the crash tests, driven through
// the real ferry-agent binary (the test binary, see TestMain). Its
// bootloader is U-Boot with the example environment (uboot_test.go),
// which passes the slot it booted on the kernel command line (the file
// cmdline).
type crashDevice struct {
	t   *testing.T
	dir string
	// good is the complete system each slot may hold.
	good map[string]string
}

func newCrashDevice(t *testing.T, image string, encrypted bool) (*crashDevice, string) {
	d := &crashDevice{t: t, dir: t.TempDir(), good: map[string]string{"a": factoryImage, "b": image}}
	for name, content := range map[string]string{
		"agent.toml": crashConfig,
		"bootenv":    ubootDefaultEnv(t),
		"slot-a.img": factoryImage,
		"slot-b.img": "",
		"new.img":    image,
	} {
		if err := os.WriteFile(d.path(name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d.tool("mkkey", "release")
	mk := []string{"-o", "new.bundle", "-version", "1.0.0", "-key", "release.key", "-rootfs", "new.img"}
	if encrypted {
		// Encrypted to the device, as its identity line names it.
		cmd := exec.Command("ferry-agent", "-c", "agent.toml", "identity", "--json")
		cmd.Dir = d.dir
		id, err := cmd.Output()
		if err != nil {
			t.Fatalf("identity: %v", err)
		}
		if err := os.WriteFile(d.path("device.jsonl"), id, 0o644); err != nil {
			t.Fatal(err)
		}
		mk = append(mk, "-encrypt-to-file", "device.jsonl")
	}
	d.tool("mkbundle", mk...)
	if slot := d.powerCycle(); slot != "a" {
		t.Fatalf("the factory device booted slot %s", slot)
	}
	return d, image
}

func (d *crashDevice) path(name string) string { return filepath.Join(d.dir, name) }

func (d *crashDevice) read(name string) string {
	b, _ := os.ReadFile(d.path(name))
	return string(b)
}

func (d *crashDevice) tool(name string, args ...string) {
	d.t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = d.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		d.t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// agent runs ferry-agent with env; killed reports a SIGKILL.
func (d *crashDevice) agent(env []string, args ...string) (killed bool, out string) {
	cmd := exec.Command("ferry-agent", append([]string{"-c", "agent.toml"}, args...)...)
	cmd.Dir = d.dir
	cmd.Env = append(os.Environ(), env...)
	b, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == -1 {
		return true, string(b)
	}
	return false, string(b)
}

// counter is the boot environment's A/B state, for messages.
func counter(env map[string]string) string {
	return fmt.Sprintf("ferry_slot=%s upgrade_available=%s bootcount=%s bootlimit=%s",
		env["ferry_slot"], env["upgrade_available"], env["bootcount"], env["bootlimit"])
}

// env reads the boot environment as U-Boot does.
func (d *crashDevice) env() map[string]string {
	d.t.Helper()
	env, err := readRawEnv(d.path("bootenv"))
	if err != nil {
		d.t.Fatalf("bootloader: %v", err)
	}
	return env
}

// powerCycle powers the device on: U-Boot counts a trial boot, saves the
// environment and boots a slot, whose kernel command line ferry-agent
// reads. It returns the slot booted.
func (d *crashDevice) powerCycle() string {
	d.t.Helper()
	env := d.env()
	slot, cmdline, err := ubootBoot(env)
	if err != nil {
		d.t.Fatalf("bootloader: %v", err)
	}
	if err := writeRawEnv(d.path("bootenv"), env); err != nil {
		d.t.Fatal(err)
	}
	if err := os.WriteFile(d.path("cmdline"), []byte(cmdline+"\n"), 0o644); err != nil {
		d.t.Fatal(err)
	}
	os.Remove(d.path("rebooted"))
	return slot
}

// nextBoots returns the slots the next power-ons boot if ferry-agent
// never runs again: the next one first, then those the boot counter
// falls back to.
func (d *crashDevice) nextBoots() []string {
	d.t.Helper()
	env := d.env()
	var slots []string
	for range 3 {
		slot, _, err := ubootBoot(env)
		if err != nil {
			d.t.Fatalf("bootloader: %v", err)
		}
		if !slices.Contains(slots, slot) {
			slots = append(slots, slot)
		}
	}
	return slots
}

// checkBootable asserts that every slot the bootloader may boot from now
// on holds a complete system.
func (d *crashDevice) checkBootable(when string) {
	d.t.Helper()
	for _, s := range d.nextBoots() {
		if got := d.read("slot-" + s + ".img"); got != d.good[s] {
			d.t.Fatalf("%s: boot env %s: slot %s holds %q, not a complete system", when, counter(d.env()), s, trim(got))
		}
	}
}

func trim(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// crashCase is one row of a crash matrix: where ferry-agent is killed
// and how the install must end.
type crashCase struct {
	point     string // a crash point, or "bytes" for mid-write
	image     string
	inInstall bool
	want      agent.State
	wantSlot  string
}

// TestCrash kills ferry-agent (SIGKILL) at every durable point of an
// install and of the boot check, and in the middle of writing the slot,
// then powers the simulated device on and runs boot-check until it has
// nothing left to do. The device must boot a complete system after every
// power cut, and the install must end the same way every time for a given
// point: committed, or undone. The whole matrix runs for a bundle in the
// clear and for one encrypted to the device.
func TestCrash(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		t.Run(map[bool]string{false: "clear", true: "encrypted"}[encrypted], func(t *testing.T) { crashMatrix(t, encrypted) })
	}
}

func crashMatrix(t *testing.T, encrypted bool) {
	healthy := "system 1.0.0, healthy\n" + strings.Repeat("block of the new root filesystem\n", 20000)
	broken := "system 1.0.0, broken\n" + strings.Repeat("block of the new root filesystem\n", 20000)
	for _, tc := range []crashCase{
		{"verifying", healthy, true, agent.StateFailed, "a"},
		{"writing", healthy, true, agent.StateFailed, "a"},
		{"bytes", healthy, true, agent.StateFailed, "a"},
		{"written", healthy, true, agent.StateFailed, "a"},
		{"activated", healthy, true, agent.StateCommitted, "b"},
		{"tentative", healthy, true, agent.StateCommitted, "b"},
		{"rebooting", healthy, true, agent.StateCommitted, "b"},
		// A power cut during the health check costs the trial its one
		// attempt: the bootloader falls back.
		{"booted", healthy, false, agent.StateRolledBack, "a"},
		{"committing", healthy, false, agent.StateRolledBack, "a"},
		{"env-committed", healthy, false, agent.StateCommitted, "b"},
		{"recorded", healthy, false, agent.StateCommitted, "b"},
		{"committed", healthy, false, agent.StateCommitted, "b"},
		{"rolling-back", broken, false, agent.StateRolledBack, "a"},
		{"env-rolled-back", broken, false, agent.StateRolledBack, "a"},
		{"rolled-back", broken, false, agent.StateRolledBack, "a"},
	} {
		t.Run(tc.point, func(t *testing.T) {
			d, _ := newCrashDevice(t, tc.image, encrypted)
			d.crashAndRecover(tc, "new.bundle", "1.0.0")
		})
	}
}

// crashAndRecover installs from source (a bundle of version) with
// ferry-agent killed at tc's point, then powers the device on and runs
// boot-check until it has nothing left to do, checking after every step
// that the device boots a complete system (d.good), and at the end that
// the install ended as tc wants. It returns what the killed install said.
func (d *crashDevice) crashAndRecover(tc crashCase, source, version string, args ...string) string {
	t := d.t
	crash := []string{crashAtEnv + "=" + tc.point}
	if tc.point == "bytes" {
		crash = []string{crashAfterEnv + "=" + fmt.Sprint(len(tc.image)/2)}
	}
	installEnv, checkEnv := crash, []string(nil)
	if !tc.inInstall {
		installEnv, checkEnv = nil, crash
	}
	killed, out := d.agent(installEnv, append([]string{"install", source}, args...)...)
	if killed != tc.inInstall {
		t.Fatalf("install killed=%t, want %t:\n%s", killed, tc.inInstall, out)
	}
	d.checkBootable("after install")
	if !tc.inInstall {
		d.powerCycle()
		d.checkBootable("after the install's reboot")
		if killed, out := d.agent(checkEnv, "boot-check"); !killed {
			t.Fatalf("boot-check was not killed:\n%s", out)
		}
		d.checkBootable("after the crash")
	}
	// Power on, boot-check, and again while it asks to reboot.
	for i := 0; ; i++ {
		d.powerCycle()
		d.checkBootable(fmt.Sprintf("power-on %d", i+1))
		if killed, out := d.agent(nil, "boot-check"); killed {
			t.Fatalf("boot-check killed:\n%s", out)
		}
		if _, err := os.Stat(d.path("rebooted")); err != nil || i == 3 {
			break
		}
	}
	var j agent.Journal
	if b, err := os.ReadFile(d.path("state/journal.json")); err == nil {
		agentJournal(t, b, &j)
	}
	env := d.env()
	if next := d.nextBoots(); j.State != tc.want || !slices.Equal(next, []string{tc.wantSlot}) || env["upgrade_available"] == "1" {
		t.Fatalf("ended %s (%s) with boot env %s booting %v, want %s on slot %s", j.State, j.Result, counter(env), next, tc.want, tc.wantSlot)
	}
	installed := d.read("state/installed.json")
	if (tc.want == agent.StateCommitted) != strings.Contains(installed, `"version": "`+version+`"`) {
		t.Errorf("installed record %q after %s", installed, j.State)
	}
	if _, out := d.agent(nil, "status"); !strings.Contains(out, "state") {
		t.Errorf("status after recovery:\n%s", out)
	}
	return out
}

func agentJournal(t *testing.T, b []byte, j *agent.Journal) {
	t.Helper()
	if err := json.Unmarshal(b, j); err != nil {
		t.Fatalf("journal: %v", err)
	}
}

const moduleCrashConfig = `device_type = "sim-board"
state_dir = "state"
reboot_command = "touch rebooted"
[trust]
keys = ["release.pub"]
[modules]
dir = "modules"
[boot]
backend = "file"
path = "bootenv"
cmdline = "none"
[health]
commands = ["grep -q healthy etc/app/app.conf"]
`

// TestCrashModule is TestCrash for a module payload installed by the
// example single-file update module: ferry-agent is killed at every
// durable point of the install, the commit and the rollback (and in the
// middle of the module's download), then boot-check runs until there is
// nothing left to do. The managed file must hold the old or the new
// content as the journal says, and no module file tree may be left.
func TestCrashModule(t *testing.T) {
	for _, tc := range []struct {
		point   string // a crash point, or "bytes" for mid-download
		content string // of the new app.conf; "healthy" passes the health check
		want    agent.State
	}{
		{"verifying", "healthy", agent.StateFailed},
		{"writing", "healthy", agent.StateFailed},
		{"bytes", "healthy", agent.StateFailed},
		{"module-downloaded", "healthy", agent.StateFailed},
		{"written", "healthy", agent.StateFailed},
		// ArtifactInstall ran but the install was not yet tentative:
		// ArtifactRollback undoes it.
		{"module-installed", "healthy", agent.StateFailed},
		{"activated", "healthy", agent.StateFailed},
		{"tentative", "healthy", agent.StateCommitted},
		{"booted", "healthy", agent.StateCommitted},
		{"committing", "healthy", agent.StateCommitted},
		{"module-committed", "healthy", agent.StateCommitted},
		{"recorded", "healthy", agent.StateCommitted},
		{"committed", "healthy", agent.StateCommitted},
		{"rolling-back", "broken", agent.StateRolledBack},
		{"module-rolled-back", "broken", agent.StateRolledBack},
		{"rolled-back", "broken", agent.StateRolledBack},
	} {
		t.Run(tc.point, func(t *testing.T) {
			d := &crashDevice{t: t, dir: t.TempDir()}
			newConf := "app.conf " + tc.content + "\n" + strings.Repeat("setting = value\n", 20000)
			for name, content := range map[string]string{
				"agent.toml":       moduleCrashConfig,
				"bootenv":          "ferry_slot=a\n",
				"etc/app/app.conf": "app.conf factory, healthy\n",
				"payload/app.conf": newConf,
				"payload/filename": "app.conf\n",
				"payload/dest_dir": d.path("etc/app") + "\n",
			} {
				os.MkdirAll(filepath.Dir(d.path(name)), 0o755)
				if err := os.WriteFile(d.path(name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			module, err := os.ReadFile("../../examples/modules/single-file")
			if err != nil {
				t.Fatal(err)
			}
			os.Mkdir(d.path("modules"), 0o755)
			if err := os.WriteFile(d.path("modules/single-file"), module, 0o755); err != nil {
				t.Fatal(err)
			}
			d.tool("mkkey", "release")
			d.tool("mkbundle", "-o", "new.bundle", "-version", "1.0.0", "-key", "release.key", "-module", "payload")

			crash := []string{crashAtEnv + "=" + tc.point}
			if tc.point == "bytes" {
				crash = []string{crashAfterEnv + "=" + fmt.Sprint(len(newConf)/2)}
			}
			if killed, out := d.agent(crash, "install", "new.bundle"); !killed {
				t.Fatalf("install was not killed:\n%s", out)
			}
			for i := 0; i < 3; i++ {
				if killed, out := d.agent(nil, "boot-check"); killed {
					t.Fatalf("boot-check killed:\n%s", out)
				}
			}
			var j agent.Journal
			agentJournal(t, []byte(d.read("state/journal.json")), &j)
			if j.State != tc.want {
				t.Fatalf("ended %s (%s), want %s", j.State, j.Result, tc.want)
			}
			got := d.read("etc/app/app.conf")
			if wantNew := tc.want == agent.StateCommitted; (got == newConf) != wantNew || (!wantNew && got != "app.conf factory, healthy\n") {
				t.Errorf("ended %s with app.conf %q", j.State, trim(got))
			}
			if left, _ := filepath.Glob(d.path("state/modules/payloads/*/tree")); len(left) > 0 {
				t.Errorf("module file trees left: %v", left)
			}
			if left, _ := filepath.Glob(d.path("etc/app/*")); len(left) != 1 {
				t.Errorf("files left in etc/app: %v", left)
			}
			installed := d.read("state/installed.json")
			if (tc.want == agent.StateCommitted) != strings.Contains(installed, `"version": "1.0.0"`) {
				t.Errorf("installed record %q after %s", installed, j.State)
			}
		})
	}
}

// deltaImage is a healthy system of version: hexadecimal lines, of which
// changed (a line number) and the 100 after it differ between versions.
func deltaImage(version string, changed int) string {
	var b strings.Builder
	b.WriteString("system " + version + ", healthy\n")
	for i := range 20000 {
		line := fmt.Sprintf("%x", sha256.Sum256([]byte(strconv.Itoa(i))))
		if i >= changed && i < changed+100 {
			line = fmt.Sprintf("%x", sha256.Sum256([]byte(version+strconv.Itoa(i))))
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// TestCrashDelta is TestCrash for a delta install (bundle/FORMAT.md
// §15.5): the device runs 1.0.0, installed from a chunked bundle into
// slot b and committed; 2.0.0 comes from a mirror store directory,
// assembled from slot b's chunks and the chunks read from the store.
// ferry-agent is killed at every point of the install and in the middle
// of writing the slot; the device must boot a complete system after every
// power cut and end committed or undone.
func TestCrashDelta(t *testing.T) {
	v1, v2 := deltaImage("1.0.0", 5000), deltaImage("2.0.0", 5000)
	for _, tc := range []crashCase{
		{"verifying", v2, true, agent.StateFailed, "b"},
		{"writing", v2, true, agent.StateFailed, "b"},
		{"bytes", v2, true, agent.StateFailed, "b"},
		{"written", v2, true, agent.StateFailed, "b"},
		{"activated", v2, true, agent.StateCommitted, "a"},
		{"tentative", v2, true, agent.StateCommitted, "a"},
		{"rebooting", v2, true, agent.StateCommitted, "a"},
	} {
		// From a mirror directory the new chunks come as frames; from a
		// served mirror that holds the base, in its delta stream.
		for _, from := range []string{"directory", "stream"} {
			t.Run(tc.point+"/"+from, func(t *testing.T) {
				d, _ := newCrashDevice(t, v1, false)
				d.tool("mkbundle", "-o", "new.bundle", "-version", "1.0.0", "-key", "release.key", "-rootfs", "new.img", "-chunk")
				if killed, out := d.agent(nil, "install", "new.bundle"); killed || !strings.Contains(out, "rebooting") {
					t.Fatalf("install of 1.0.0:\n%s", out)
				}
				if slot := d.powerCycle(); slot != "b" {
					t.Fatalf("1.0.0 booted slot %s", slot)
				}
				if _, out := d.agent(nil, "boot-check"); !strings.Contains(out, "committed") {
					t.Fatalf("boot-check of 1.0.0:\n%s", out)
				}
				if err := os.WriteFile(d.path("v2.img"), []byte(v2), 0o644); err != nil {
					t.Fatal(err)
				}
				d.tool("mkbundle", "-o", "v2.bundle", "-version", "2.0.0", "-key", "release.key", "-rootfs", "v2.img", "-chunk")
				st, err := mirror.Init(d.path("mirror"), testutil.MirrorKey(t))
				bundles := []string{"v2.bundle"}
				if from == "stream" {
					bundles = append(bundles, "new.bundle") // a stream is made from the base's payload
				}
				for _, b := range bundles {
					if err == nil {
						_, err = st.Add(d.path(b))
					}
				}
				if err != nil {
					t.Fatal(err)
				}
				source, args, want := "mirror", []string(nil), "payload rootfs: delta from slot b"
				if from == "stream" {
					srv := httptest.NewServer(server.NewHandler(st, server.HandlerOptions{}))
					t.Cleanup(srv.Close)
					source = "oci://" + strings.TrimPrefix(srv.URL, "http://") + "/sim-os:2.0.0"
					args, want = []string{"--plain-http"}, "payload rootfs: delta stream from the mirror"
				}
				d.good = map[string]string{"a": v2, "b": v1}
				if out := d.crashAndRecover(tc, source, "2.0.0", args...); !strings.Contains(out, want) {
					t.Errorf("the install did not say %q:\n%s", want, out)
				}
				if tc.want == agent.StateCommitted {
					if _, out := d.agent(nil, "status"); !strings.Contains(out, "2.0.0") {
						t.Errorf("status:\n%s", out)
					}
				}
			})
		}
	}
}
