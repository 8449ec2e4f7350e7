package qemu

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// cutPoint is where TestGRUBPowerCuts kills QEMU: once the guest's
// journal shows one of the states (watched every 20 ms), or once the
// trial boot of the new version is up (trial), plus a delay that spreads
// the cuts over the step. The delays only place the cut; no test outcome
// depends on timing: every cut must end in a good, committed system.
type cutPoint struct {
	name   string
	states string // regexp of journal states; "" for a cut in the trial boot
	delay  time.Duration
	// marker, for a cut in the trial boot, is a console line to wait for
	// after the trial came up (e.g. the agent's health check).
	marker string
}

var cutPoints = []cutPoint{
	{"install: verifying", "verifying|writing", 0, ""},
	{"install: writing, middle", "writing", 1500 * time.Millisecond, ""},
	{"install: written, activating", "written|tentative|rebooting", 0, ""},
	{"install: rebooting", "rebooting", 0, ""},
	{"trial boot: before boot-check", "", 0, ""},
	{"trial boot: committing", "", 900 * time.Millisecond, ""},
}

// TestGRUBPowerCuts cuts the power (SIGKILL to QEMU: the guest's page
// cache dies with it) at many points of installs from the mirror and of
// the commits that follow, one after the other on the same disk. After
// every cut the machine boots again, and it must come up on a good,
// committed system: the slot GRUB's block selects, no trial pending, the
// agent's last install finished or undone, and the installed record
// naming the version that runs.
func TestGRUBPowerCuts(t *testing.T) {
	t.Parallel()
	m, slot := powerCuts(t, getFixture(t), cutPoints, nil)
	if env := m.grubEnv(); env["upgrade_available"] != "0" || env["ferry_slot"] != slot {
		t.Fatalf("GRUB's block at the end: %v, running slot %s", env, slot)
	}
}

// powerCuts installs one release from the mirror per cut point on a new
// machine of f's platform, cuts the power at that point and requires a
// good, committed system after the next boot (and check, if set, on the
// running slot and version). It shuts the machine down cleanly at the end
// and returns it and the slot it ran last.
func powerCuts(t *testing.T, f *fixture, points []cutPoint, check func(m *machine, slot, version string)) (*machine, string) {
	t.Helper()
	var versions []string
	var rs []release
	for i := range points {
		v := fmt.Sprintf("2.%d.0", i+1)
		versions = append(versions, v)
		rs = append(rs, release{v, ""})
	}
	port := f.serve(t, f.bundlesOf(t, rs...)...)

	m := newMachine(t, f)
	m.start()
	slot, version, rc := m.ready()
	if slot != "a" || version != "1.0.0" || rc != "0" {
		t.Fatalf("first boot: slot %q version %q boot-check %s", slot, version, rc)
	}
	prev := version
	for i, p := range points {
		v := versions[i]
		src := fmt.Sprintf("oci://10.0.2.2:%s/%s:%s", port, bundleName, v)
		if p.states != "" {
			if m.installWatched(src, p.states) {
				t.Logf("cut %d (%s): the watcher missed the state; cutting as the guest resets", i+1, p.name)
			}
		} else {
			m.send("ferry-agent install --plain-http " + src)
			m.expect(markBooted + ` slot=[ab] version=` + v + `\r?\n`)
			if p.marker != "" {
				m.expect(p.marker)
			}
		}
		time.Sleep(p.delay)
		m.kill()
		m.start()
		slot, version, rc = m.ready()
		if rc != "0" {
			t.Fatalf("cut %d (%s): boot-check failed on slot %s %s (serial log %s)", i+1, p.name, slot, version, m.out.log)
		}
		// The install either went through or was undone: nothing else.
		if version != v && version != prev {
			t.Fatalf("cut %d (%s): runs %s, want %s or %s", i+1, p.name, version, prev, v)
		}
		prev = version
		m.requireCommitted(slot, version)
		if check != nil {
			check(m, slot, version)
		}
		t.Logf("cut %d (%s): came back on slot %s, version %s, committed", i+1, p.name, slot, version)
	}
	m.shutdown()
	t.Logf("%d power cuts, %d power-ons; serial logs in %s", len(points), m.boots, m.logs)
	return m, slot
}

// installWatched starts an install of src while a watcher prints the
// journal's state whenever it changes, and returns once the state matches
// the regexp states, or when the guest resets (true).
func (m *machine) installWatched(src, states string) (missed bool) {
	m.t.Helper()
	m.send(`(last=; while :; do s=$(grep -o '"state": *"[a-z-]*"' /var/lib/ferry/journal.json 2>/dev/null | head -n 1 | tr -d '" :'); ` +
		`[ "$s" != "$last" ] && echo "FERRY-STATE $s" && last=$s; sleep 0.02; done) & ferry-agent install --plain-http ` + src)
	// The watcher forks a few processes per look, slow under TCG, so it
	// can miss a short state such as "rebooting" (the reboot command
	// follows at once). The kernel's last line before a reset stands in
	// for it: the journal is on disk by then.
	got := m.expect(`FERRY-STATE state(` + states + `)\r?\n|reboot: Restarting system`)
	return strings.HasPrefix(got[0], "reboot:")
}
