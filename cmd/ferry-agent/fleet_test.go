package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/transport/checkin"
)

// buildBinaries builds ferry and ferry-agent (as for a device: no cgo)
// into a temporary directory.
func buildBinaries(t *testing.T) (ferry, agent string) {
	t.Helper()
	return buildBinary(t, "ferry", "./cmd/ferry"), buildBinary(t, "ferry-agent", "./cmd/ferry-agent", "CGO_ENABLED=0")
}

// buildBinary builds the command pkg (relative to the repository) as
// name into a temporary directory, with env added to the environment.
func buildBinary(t *testing.T, name, pkg string, env ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// lockedBuffer collects a process's log while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(line + "\n")
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serveMirror runs 'ferry mirror serve DIR [FLAG...]' on a loopback port
// and returns its URL and its log; the server stops at the end of the
// test.
func serveMirror(t *testing.T, ferry, dir string, flags ...string) (string, func() string) {
	t.Helper()
	cmd := exec.Command(ferry, append([]string{"mirror", "serve", dir, "--listen", "127.0.0.1:0", "--refresh-interval", "0"}, flags...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	log := &lockedBuffer{}
	urlc := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			log.add(line)
			if _, u, ok := strings.Cut(line, " on http://"); ok && strings.Contains(line, "serving mirror") {
				urlc <- "http://" + u
			}
		}
		close(urlc)
	}()
	stop := sync.OnceFunc(func() {
		cmd.Process.Signal(syscall.SIGINT)
		<-done
		cmd.Wait()
	})
	t.Cleanup(stop)
	u, ok := <-urlc
	if !ok {
		t.Fatalf("ferry mirror serve did not start:\n%s", log)
	}
	return u, func() string { stop(); return log.String() }
}

// recorder forwards check-ins to a mirror and keeps the last one sent,
// as anyone on the network between device and mirror could.
type recorder struct {
	to   string
	mu   sync.Mutex
	last []byte
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if req.URL.Path == checkin.Path {
		r.mu.Lock()
		r.last = body
		r.mu.Unlock()
	}
	out, err := http.NewRequest(req.Method, r.to+req.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = req.Header.Clone()
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

func (r *recorder) lastCheckin() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// TestFleetCheckins runs the real binaries: ferry-agent checks in with
// 'ferry mirror serve' on loopback. An enrolled device's signed report is
// recorded; the same report replayed, the report changed on its way
// (forged), a report signed for another mirror and the report of a device
// no one enrolled are each refused (the last listed as pending) with
// their reason, in the answer and the mirror's log, and change no record.
func TestFleetCheckins(t *testing.T) {
	ferry, agentBin := buildBinaries(t)
	work := t.TempDir()
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), "FERRY_KEY_PASSPHRASE=")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s%s", filepath.Base(name), strings.Join(args, " "), err, out, stderr.String())
		}
		return string(out)
	}
	m, other := filepath.Join(work, "m"), filepath.Join(work, "other")
	for _, dir := range []string{m, other} {
		run(ferry, "key", "generate", "-o", dir+"-key")
		run(ferry, "mirror", "init", dir, "--key", dir+"-key.key")
	}
	mirrorURL, stopMirror := serveMirror(t, ferry, m)
	rec := &recorder{to: mirrorURL}
	proxy := httptest.NewServer(rec)
	defer proxy.Close()

	mirrorConfig := func(tufRoot string) string {
		return "\n[mirror]\nurl = \"" + proxy.URL + "\"\ntuf_root = \"" + tufRoot + "\"\n"
	}
	devA, bundlePath := ociDevice(t, mirrorConfig(filepath.Join(m, "tuf", "root.json")))
	setDeviceID(t, devA, "gw-a")
	devB, _ := ociDevice(t, mirrorConfig(filepath.Join(m, "tuf", "root.json")))
	setDeviceID(t, devB, "gw-b")
	agent := func(dir string, args ...string) (int, string, string) {
		cmd := exec.Command(agentBin, append([]string{"-c", filepath.Join(dir, "agent.toml")}, args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err != nil && cmd.ProcessState == nil {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
	}

	// The factory line: the device's identity into the enrollment list.
	code, idJSON, stderr := agent(devA, "identity", "--json")
	if code != 0 {
		t.Fatalf("identity: exit %d\n%s", code, stderr)
	}
	var id struct{ ID, Name string }
	if err := json.Unmarshal([]byte(idJSON), &id); err != nil || id.Name != "gw-a" {
		t.Fatalf("identity --json %q: %v", idJSON, err)
	}
	if fi, err := os.Stat(filepath.Join(devA, "state", "identity", "device.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("device key: %v, %v", fi, err)
	}
	list := filepath.Join(work, "line-1.jsonl")
	if err := os.WriteFile(list, []byte(idJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	run(ferry, "mirror", "devices", "enroll", m, "--file", list)

	// Enrolled: an install and the boot check after it check in at once,
	// and so does 'checkin'.
	for _, step := range [][]string{{"install", bundlePath}, {"boot-check"}} {
		if code, _, stderr := agent(devA, step...); code != 0 {
			t.Fatalf("%s: exit %d\n%s", step[0], code, stderr)
		}
	}
	code, out, stderr := agent(devA, "checkin")
	if code != 0 || !strings.Contains(out, "recorded") {
		t.Fatalf("checkin: exit %d\n%s%s", code, out, stderr)
	}
	recorded := rec.lastCheckin()
	show := func(id string) deviceShowJSON {
		t.Helper()
		var s deviceShowJSON
		if err := json.Unmarshal([]byte(run(ferry, "mirror", "devices", "show", m, id, "--json")), &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := show(id.ID)
	inv := before.Inventory
	if before.Status != devices.Enrolled || before.Checkins != 3 || len(before.History) != 3 || inv == nil || inv.Name != "gw-a" || inv.DeviceType != "sim-board" ||
		inv.Result != "committed" || inv.Version != "1.0.0" || len(inv.Components) != 1 || inv.Components[0].Name != "sim-os" || inv.Components[0].Version != "1.0.0" ||
		inv.Slot.Trial || inv.Slot.Booted != "b" || inv.AgentVersion == "" || inv.FreeBytes == 0 || before.History[2].Inventory.Result != "rebooting" {
		t.Fatalf("record after three check-ins: %+v\ninventory %+v", before.Record, inv)
	}

	post := func(body []byte) (int, checkin.ErrorBody) {
		t.Helper()
		resp, err := http.Post(mirrorURL+checkin.Path, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e checkin.ErrorBody
		json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e
	}
	// Replayed: the very report the device sent.
	if status, e := post(recorded); status != http.StatusConflict || e.Reason != checkin.Replayed {
		t.Errorf("replayed report: %d %+v", status, e)
	}
	// Forged: the report changed on its way, its signature kept.
	var env checkin.Envelope
	if err := json.Unmarshal(recorded, &env); err != nil {
		t.Fatal(err)
	}
	env.Payload = bytes.Replace(env.Payload, []byte(`"result":"committed"`), []byte(`"result":"rolled-back"`), 1)
	forged, _ := json.Marshal(env)
	if bytes.Equal(forged, recorded) || !bytes.Contains(recorded, []byte(`"signatures"`)) {
		t.Fatalf("the recorded check-in %s was not changed", recorded)
	}
	if status, e := post(forged); status != http.StatusUnauthorized || e.Reason != checkin.BadSignature {
		t.Errorf("forged report: %d %+v", status, e)
	}
	// Foreign: the device trusts another mirror's TUF root, so its report
	// is for that mirror.
	cfgPath := filepath.Join(devA, "agent.toml")
	cfg, _ := os.ReadFile(cfgPath)
	os.WriteFile(cfgPath, bytes.Replace(cfg, []byte(filepath.Join(m, "tuf")), []byte(filepath.Join(other, "tuf")), 1), 0o644)
	code, out, stderr = agent(devA, "checkin")
	if code != 1 || !strings.Contains(stderr, "421 Misdirected Request: check-in refused (foreign)") || !strings.Contains(stderr, "hint: [mirror] tuf_root is another mirror's") {
		t.Errorf("check-in for another mirror: exit %d\n%s%s", code, out, stderr)
	}
	// Unenrolled: listed as pending, nothing recorded.
	code, out, stderr = agent(devB, "checkin")
	if code != 0 || !strings.Contains(out, "is pending on") {
		t.Errorf("unenrolled device: exit %d\n%s%s", code, out, stderr)
	}

	after := show(id.ID)
	if !reflect.DeepEqual(before, after) {
		t.Errorf("refused reports changed the record:\nbefore %+v\nafter  %+v", before.Record, after.Record)
	}
	var listed struct{ Devices []devices.Record }
	json.Unmarshal([]byte(run(ferry, "mirror", "devices", "list", m, "--json")), &listed)
	if len(listed.Devices) != 2 || listed.Devices[0].Status != devices.Pending || listed.Devices[0].Name != "gw-b" || listed.Devices[0].Inventory != nil || listed.Devices[0].Checkins != 0 {
		t.Errorf("devices after the unenrolled one checked in: %+v", listed.Devices)
	}

	log := stopMirror()
	for _, want := range []string{
		"refused (replayed): device " + id.ID + ": counter ",
		"refused (bad-signature): the signature of device " + id.ID + " does not verify",
		"refused (foreign): device " + id.ID + " addressed its report to mirror ",
		"(gw-b) from 127.0.0.1: not enrolled, listed as pending; nothing recorded",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("the mirror's log does not say %q:\n%s", want, log)
		}
	}
}

// deviceShowJSON is what 'ferry mirror devices show --json' prints.
type deviceShowJSON struct {
	devices.Record
	History []devices.Report `json:"history"`
}
