package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/internal/testtool"
	"github.com/ferry-update/ferry/transport/assign"
	"github.com/ferry-update/ferry/transport/checkin"
	"github.com/ferry-update/ferry/verify"
)

// forger stands between devices and the mirror: it passes everything on
// and keeps the assignments the mirror sent, unless it is told to answer
// assignment requests itself.
type forger struct {
	next http.Handler
	mu   sync.Mutex
	fake []byte   // the answer to assignment requests; nil: the mirror's
	seen [][]byte // the assignments the mirror sent
}

func (f *forger) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	fake := f.fake
	f.mu.Unlock()
	if r.URL.Path != assign.Path {
		f.next.ServeHTTP(w, r)
		return
	}
	if fake != nil {
		w.Header().Set("Content-Type", "application/json")
		w.Write(fake)
		return
	}
	rec := httptest.NewRecorder()
	f.next.ServeHTTP(rec, r)
	if rec.Code == http.StatusOK {
		f.mu.Lock()
		f.seen = append(f.seen, rec.Body.Bytes())
		f.mu.Unlock()
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

// first is the first assignment the mirror sent.
func (f *forger) first() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seen[0]
}

func (f *forger) answer(b []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fake = b
}

// TestFleetDeployment runs the real binaries: three managed ferry-agents
// and 'ferry mirror serve'. Unassigned, a managed device installs
// nothing. A deployment starts with one canary; its health check fails,
// it rolls back and says so, the deployment pauses by itself, and the
// other devices are assigned nothing. A forged and an expired assignment
// are refused with a clear error and nothing installed; so is, later, a
// replayed older one. After a fix the
// operator resumes: the canary installs and commits, the next phase
// starts, and the other devices install; the deployment completes. It
// runs with the mirror's device records in SQLite and in PostgreSQL
// (FERRY_DATABASE, as a site that outgrew SQLite sets it).
func TestFleetDeployment(t *testing.T) {
	ferry, agentBin := buildBinaries(t)
	onEachDatabase(t, func(t *testing.T) { testFleetDeployment(t, ferry, agentBin) })
}

// onEachDatabase runs test twice: with the mirror's device records in
// SQLite (DIR/devices.db) and in PostgreSQL (FERRY_DATABASE set, as a
// site that outgrew SQLite sets it for every ferry command).
func onEachDatabase(t *testing.T, test func(t *testing.T)) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			if db == "postgres" {
				t.Setenv("FERRY_DATABASE", testtool.Postgres(t))
			}
			test(t)
		})
	}
}

// checkRecordsWhereTold fails t unless mirror dir keeps its own device
// records exactly when FERRY_DATABASE names none.
func checkRecordsWhereTold(t *testing.T, dir string) {
	t.Helper()
	_, err := os.Stat(filepath.Join(dir, devices.File))
	if inFile, inPostgres := err == nil, os.Getenv("FERRY_DATABASE") != ""; inFile == inPostgres {
		t.Errorf("%s in the mirror directory: %v; FERRY_DATABASE set: %v", devices.File, inFile, inPostgres)
	}
}

func testFleetDeployment(t *testing.T, ferry, agentBin string) {
	work := t.TempDir()
	run := func(name string, args ...string) string { t.Helper(); return runTool(t, name, args...) }
	m := filepath.Join(work, "m")
	run(ferry, "key", "generate", "-o", m+"-key")
	run(ferry, "mirror", "init", m, "--key", m+"-key.key")
	// All the devices check in from 127.0.0.1: lift the per-client rate.
	mirrorURL, stopMirror := serveMirror(t, ferry, m, "--checkin-rate", "1000", "--checkin-burst", "1000")
	fg := &forger{next: &recorder{to: mirrorURL}}
	proxy := httptest.NewServer(fg)
	defer proxy.Close()

	// Three managed devices that trust one release key; a health check
	// each, which passes once the file "healthy" is there.
	config := "\n[mirror]\nurl = \"" + proxy.URL + "\"\ntuf_root = \"" + filepath.Join(m, "tuf", "root.json") + "\"\nmanaged = true\n"
	devs, bundlePath := ociDevices(t, config, 3)
	// agent runs ferry-agent on a device: its exit code, and its stdout
	// and stderr together.
	agent := func(dir string, args ...string) (int, string) { t.Helper(); return runAgent(t, agentBin, dir, args...) }
	var list bytes.Buffer
	ids := map[string]string{} // device id -> its directory
	for i, d := range devs {
		setDeviceID(t, d, "gw-0"+string(rune('1'+i)))
		cfg, _ := os.ReadFile(filepath.Join(d, "agent.toml"))
		cfg = append(cfg, []byte("[health]\ncommands = [\"test -f "+filepath.Join(d, "healthy")+"\"]\n")...)
		os.WriteFile(filepath.Join(d, "agent.toml"), cfg, 0o644)
		out := run(agentBin, "-c", filepath.Join(d, "agent.toml"), "identity", "--json")
		var id struct{ ID string }
		json.Unmarshal([]byte(out), &id)
		ids[id.ID] = d
		list.WriteString(out)
	}
	os.WriteFile(filepath.Join(work, "line.jsonl"), list.Bytes(), 0o644)
	run(ferry, "fleet", "enroll", m, "--file", filepath.Join(work, "line.jsonl"))
	run(ferry, "mirror", "add", m, bundlePath)

	untouched := func(d string) {
		t.Helper()
		if b, _ := os.ReadFile(filepath.Join(d, "slot-b.img")); len(b) != 0 {
			t.Fatalf("%s: slot b was written", d)
		}
		if _, err := os.Stat(filepath.Join(d, "state", "journal.json")); err == nil {
			t.Fatalf("%s: an install was journaled", d)
		}
	}
	// Nothing assigned: a managed device installs nothing, though the
	// mirror lists a bundle for it.
	code, out := agent(devs[0], "run", "--once")
	if code != 0 || !strings.Contains(out, "assigns this device nothing: as a managed device it installs nothing") {
		t.Fatalf("unassigned: exit %d\n%s", code, out)
	}
	untouched(devs[0])

	run(ferry, "fleet", "deploy", m, "sim-os:1.0.0", "--filter", "type = sim-board", "--phases", "1,100%", "--soak", "0s")
	detail := func() devices.DeploymentDetail { t.Helper(); return deploymentDetail(t, ferry, m, "1") }
	d := detail()
	canary := ids[d.Targets[0].Device]
	var others []string
	for _, tg := range d.Targets[1:] {
		others = append(others, ids[tg.Device])
	}
	if d.State != devices.Running || d.Targets[0].State != devices.Assigned || len(others) != 2 {
		t.Fatalf("deployment %+v", d)
	}
	for _, o := range others {
		os.WriteFile(filepath.Join(o, "healthy"), nil, 0o644)
	}

	// Forged: signed by a key the mirror's metadata does not publish.
	_, stranger, _ := ed25519.GenerateKey(nil)
	forged, err := assign.Sign(&assign.Assignment{Mirror: mirrorIDOf(t, m), Device: d.Targets[0].Device, Deployment: 1, Bundle: "sim-os", Version: "1.0.0",
		Digest: d.Digest, Counter: uint64(time.Now().UnixMilli()) + 1e6, Issued: time.Now(), Expires: time.Now().Add(time.Hour)}, stranger)
	if err != nil {
		t.Fatal(err)
	}
	fg.answer(forged)
	code, out = agent(canary, "run", "--once")
	if code != 1 || !strings.Contains(out, "the mirror's assignment is refused, nothing is installed: assignment refused (bad-signature)") || !strings.Contains(out, "hint: the assignment is not signed by a key") {
		t.Fatalf("forged assignment: exit %d\n%s", code, out)
	}
	untouched(canary)
	// Expired: signed with the mirror's own assignment key, but old.
	keyPEM, err := os.ReadFile(filepath.Join(m, "keys", "assign.key"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := verify.ParsePrivateKey(keyPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	expired, err := assign.Sign(&assign.Assignment{Mirror: mirrorIDOf(t, m), Device: d.Targets[0].Device, Deployment: 1, Bundle: "sim-os", Version: "1.0.0",
		Digest: d.Digest, Counter: 1, Issued: time.Now().Add(-48 * time.Hour), Expires: time.Now().Add(-24 * time.Hour)}, k.(ed25519.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	fg.answer(expired)
	code, out = agent(canary, "run", "--once")
	if code != 1 || !strings.Contains(out, "assignment refused (expired)") {
		t.Fatalf("expired assignment: exit %d\n%s", code, out)
	}
	untouched(canary)
	fg.answer(nil)

	// The others are not in the first phase: nothing for them.
	for _, o := range others {
		if code, out := agent(o, "run", "--once"); code != 0 || !strings.Contains(out, "assigns this device nothing") {
			t.Fatalf("a device of phase 2 during phase 1: exit %d\n%s", code, out)
		}
		untouched(o)
	}

	// The canary installs, reboots, and fails its health check.
	if code, out := agent(canary, "run", "--once"); code != 0 || !strings.Contains(out, "mirror assigns sim-os 1.0.0 (deployment 1)") {
		t.Fatalf("canary: exit %d\n%s", code, out)
	}
	checkInstalled(t, canary)
	code, out = agent(canary, "boot-check")
	if code == 0 || !strings.Contains(out, "health check") {
		t.Fatalf("canary boot-check: exit %d\n%s", code, out)
	}
	d = detail()
	if d.State != devices.Paused || !strings.Contains(d.Reason, "phase 1 of 2: 1 of 1 devices failed, more than the 0 allowed") || !strings.Contains(d.Reason, "rolled-back") {
		t.Fatalf("after the canary failed: %s %q", d.State, d.Reason)
	}
	status := run(ferry, "fleet", "status", m)
	if !strings.Contains(status, "deployment 1 is paused: phase 1 of 2: 1 of 1 devices failed") {
		t.Fatalf("fleet status:\n%s", status)
	}
	// Paused: the others are still assigned nothing.
	for _, o := range others {
		if code, out := agent(o, "run", "--once"); code != 0 || !strings.Contains(out, "assigns this device nothing") {
			t.Fatalf("a device while paused: exit %d\n%s", code, out)
		}
		untouched(o)
	}

	// The fix, then resume: the canary tries again and commits; the next
	// phase starts at once (no soak) and the others install.
	os.WriteFile(filepath.Join(canary, "healthy"), nil, 0o644)
	run(ferry, "fleet", "resume", m, "1")
	for _, dev := range append([]string{canary}, others...) {
		if code, out := agent(dev, "run", "--once"); code != 0 || !strings.Contains(out, "mirror assigns sim-os 1.0.0") {
			t.Fatalf("%s after resume: exit %d\n%s", dev, code, out)
		}
		if code, out := agent(dev, "boot-check"); code != 0 {
			t.Fatalf("%s boot-check: exit %d\n%s", dev, code, out)
		}
	}
	// Replayed: the canary's first assignment, genuine but older than the
	// one it accepted since.
	fg.answer(fg.first())
	code, out = agent(canary, "run", "--once")
	if code != 1 || !strings.Contains(out, "assignment refused (replayed)") {
		t.Fatalf("replayed assignment: exit %d\n%s", code, out)
	}
	fg.answer(nil)
	d = detail()
	if d.State != devices.Completed || d.Progress[0].Succeeded != 1 || d.Progress[1].Succeeded != 2 {
		t.Fatalf("end: %s %+v\n%+v\n%s", d.State, d.Progress, d.Targets, run(ferry, "fleet", "devices", m))
	}
	// Installed: the next poll installs nothing more.
	if code, out := agent(canary, "run", "--once"); code != 0 || !strings.Contains(out, "installed already") {
		t.Fatalf("after the deployment: exit %d\n%s", code, out)
	}
	stopMirror()
	checkRecordsWhereTold(t, m)
}

// mirrorIDOf is the mirror id of the mirror directory dir.
func mirrorIDOf(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "tuf", "root.json"))
	if err != nil {
		t.Fatal(err)
	}
	id, err := checkin.MirrorID(b)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// runTool runs a binary with the environment of the fleet tests (no key
// passphrase, operator alice) and fails the test if it fails; its
// stdout.
func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := runToolErr(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return out
}

// runToolErr is runTool that returns the error (with the stderr) rather
// than failing the test.
func runToolErr(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "FERRY_KEY_PASSPHRASE=", "FERRY_OPERATOR=alice", "MTOOLS_SKIP_CHECK=1", "MTOOLSRC=/dev/null")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%w: %s", err, stderr.String())
	}
	return string(out), nil
}

// runAgent runs ferry-agent on the device in dir: its exit code, and its
// stdout and stderr together.
func runAgent(t *testing.T, bin, dir string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"-c", filepath.Join(dir, "agent.toml")}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil && cmd.ProcessState == nil {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// deploymentDetail is 'ferry fleet status DIR ID --json'.
func deploymentDetail(t *testing.T, ferry, dir, id string) devices.DeploymentDetail {
	t.Helper()
	var d devices.DeploymentDetail
	if err := json.Unmarshal([]byte(runTool(t, ferry, "fleet", "status", dir, id, "--json")), &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// enrollAll names the devices gw-01, gw-02, ... and enrolls them on the
// mirror dir from a factory list of their identities; it returns each
// device's directory by its id.
func enrollAll(t *testing.T, ferry, agentBin, dir string, devs []string) map[string]string {
	t.Helper()
	var list strings.Builder
	ids := map[string]string{}
	for i, d := range devs {
		setDeviceID(t, d, "gw-0"+strconv.Itoa(i+1))
		out := runTool(t, agentBin, "-c", filepath.Join(d, "agent.toml"), "identity", "--json")
		var id struct{ ID string }
		json.Unmarshal([]byte(out), &id)
		ids[id.ID] = d
		list.WriteString(out)
	}
	p := filepath.Join(t.TempDir(), "line.jsonl")
	os.WriteFile(p, []byte(list.String()), 0o644)
	runTool(t, ferry, "fleet", "enroll", dir, "--file", p)
	return ids
}
