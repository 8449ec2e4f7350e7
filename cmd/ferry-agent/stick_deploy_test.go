package main

import (
	"crypto/ed25519"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/transport/assign"
	"github.com/ferry-update/ferry/transport/stick"
	"github.com/ferry-update/ferry/verify"
)

// TestStickDeployment carries a phased deployment to a site without a
// network link, with the real binaries: 'ferry media build --deployment'
// makes a stick image holding the bundle and the signed assignments of
// the current phase's devices; the managed devices read a copy taken off
// the image with mtools (as a mounted stick). A device not in the
// deployment, and one of a later phase, skip it and say why; an expired
// assignment and one for another device are refused, nothing installed;
// the canary installs. Its report, copied back onto the image and
// ingested, ends phase 1 — counted once though ingested twice — and the
// next stick carries the other devices' assignments. It runs on both
// databases (onEachDatabase).
func TestStickDeployment(t *testing.T) {
	ferry, agentBin := buildBinaries(t)
	onEachDatabase(t, func(t *testing.T) { testStickDeployment(t, ferry, agentBin) })
}

func testStickDeployment(t *testing.T, ferry, agentBin string) {
	work := t.TempDir()
	run := func(name string, args ...string) string { t.Helper(); return runTool(t, name, args...) }
	agent := func(dir string, args ...string) (int, string) { t.Helper(); return runAgent(t, agentBin, dir, args...) }
	m := filepath.Join(work, "m")
	run(ferry, "key", "generate", "-o", m+"-key")
	run(ferry, "mirror", "init", m, "--key", m+"-key.key")

	// Four managed devices that know their mirror only by its TUF root
	// (no network link); three of them are the site's group.
	config := "\n[mirror]\ntuf_root = \"" + filepath.Join(m, "tuf", "root.json") + "\"\nmanaged = true\n"
	devs, bundlePath := ociDevices(t, config, 4)
	ids := enrollAll(t, ferry, agentBin, m, devs) // device id -> its directory
	idOf := map[string]string{}
	for id, d := range ids {
		idOf[d] = id
	}
	run(ferry, "mirror", "add", m, bundlePath)
	outsider := devs[3]
	run(ferry, "fleet", "groups", m, "site-a", "--devices", idOf[devs[0]]+","+idOf[devs[1]]+","+idOf[devs[2]])
	run(ferry, "fleet", "deploy", m, "sim-os:1.0.0", "--group", "site-a", "--phases", "1,100%", "--soak", "0s")
	detail := func() devices.DeploymentDetail { t.Helper(); return deploymentDetail(t, ferry, m, "1") }
	d := detail()
	canary, others := ids[d.Targets[0].Device], []string{ids[d.Targets[1].Device], ids[d.Targets[2].Device]}

	// buildStick makes the stick image for the deployment's current
	// phase and returns it with a copy of its ferry/ directory, as a
	// device sees the stick mounted.
	buildStick := func(name string) (img, at, root string) {
		t.Helper()
		img = filepath.Join(work, name+".img")
		var res struct {
			Build struct {
				PartitionOffset int64    `json:"partitionOffset"`
				Assignments     []string `json:"assignments"`
			} `json:"build"`
		}
		if err := json.Unmarshal([]byte(run(ferry, "media", "build", "--out", img, "--deployment", "1", m, "--json")), &res); err != nil {
			t.Fatal(err)
		}
		at = img + "@@" + strconv.FormatInt(res.Build.PartitionOffset, 10)
		root = filepath.Join(work, name)
		os.MkdirAll(root, 0o755)
		run("mcopy", "-s", "-i", at, "::/ferry", root)
		return img, at, root
	}
	img, at, root := buildStick("stick1")
	if out := run("mdir", "-b", "-i", at, "::/ferry/assignments"); !strings.Contains(out, idOf[canary]) || strings.Count(out, ".json") != 1 {
		t.Fatalf("stick 1 assignments:\n%s", out)
	}
	untouched := func(dev string) {
		t.Helper()
		if b, _ := os.ReadFile(filepath.Join(dev, "slot-b.img")); len(b) != 0 {
			t.Fatalf("%s: slot b was written", dev)
		}
		if _, err := os.Stat(filepath.Join(dev, "state", "journal.json")); err == nil {
			t.Fatalf("%s: an install was journaled", dev)
		}
	}
	// lastReport is the report the device wrote last onto the stick.
	lastReport := func(dev string) *stick.Report {
		t.Helper()
		s, err := stick.OpenDir(root)
		if err != nil {
			t.Fatal(err)
		}
		reps, err := s.Reports()
		if err != nil {
			t.Fatal(err)
		}
		var last *stick.Report
		for _, r := range reps {
			if r.Report != nil && r.Report.DeviceID == deviceName(t, dev) {
				last = r.Report
			}
		}
		if last == nil {
			t.Fatalf("no report of %s on the stick", dev)
		}
		return last
	}

	// Not in the deployment, or in its next phase: skipped, with why.
	for _, dev := range append([]string{outsider}, others...) {
		code, out := agent(dev, "install", root)
		if code != 0 || !strings.Contains(out, "the stick carries no assignment for this device") {
			t.Fatalf("%s: exit %d\n%s", dev, code, out)
		}
		untouched(dev)
		if r := lastReport(dev); r.Result != stick.ResultSkipped || !strings.Contains(r.Reason, "installs only what it is assigned") {
			t.Fatalf("report %+v", r)
		}
	}
	// An assignment for another device (the canary's, under this one's
	// name): refused.
	asgDir := filepath.Join(root, "ferry", "assignments")
	canaryAsg, err := os.ReadFile(filepath.Join(asgDir, idOf[canary]+".json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(asgDir, idOf[others[0]]+".json"), canaryAsg, 0o644)
	code, out := agent(others[0], "install", root)
	if code != 1 || !strings.Contains(out, "assignment refused (foreign)") {
		t.Fatalf("another device's assignment: exit %d\n%s", code, out)
	}
	untouched(others[0])
	if r := lastReport(others[0]); r.Result != stick.ResultFailure || !strings.Contains(r.Error, "assignment refused (foreign)") {
		t.Fatalf("report %+v", r)
	}
	os.Remove(filepath.Join(asgDir, idOf[others[0]]+".json"))
	// Expired: signed with the mirror's own assignment key, but old.
	keyPEM, err := os.ReadFile(filepath.Join(m, "keys", "assign.key"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := verify.ParsePrivateKey(keyPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	expired, err := assign.Sign(&assign.Assignment{Mirror: mirrorIDOf(t, m), Device: idOf[canary], Deployment: 1, Bundle: "sim-os", Version: "1.0.0",
		Digest: d.Digest, Counter: 1, Issued: time.Now().Add(-48 * time.Hour), Expires: time.Now().Add(-24 * time.Hour)}, k.(ed25519.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(asgDir, idOf[canary]+".json"), expired, 0o644)
	code, out = agent(canary, "install", root)
	if code != 1 || !strings.Contains(out, "assignment refused (expired)") {
		t.Fatalf("expired assignment: exit %d\n%s", code, out)
	}
	untouched(canary)
	os.WriteFile(filepath.Join(asgDir, idOf[canary]+".json"), canaryAsg, 0o644)

	// The canary installs what its assignment names, and commits.
	code, out = agent(canary, "install", root)
	if code != 0 || !strings.Contains(out, "the stick assigns sim-os 1.0.0 (deployment 1)") {
		t.Fatalf("canary: exit %d\n%s", code, out)
	}
	checkInstalled(t, canary)
	if code, out := agent(canary, "boot-check"); code != 0 {
		t.Fatalf("canary boot-check: exit %d\n%s", code, out)
	}
	if r := lastReport(canary); r.Result != stick.ResultSuccess || len(r.Checkin) == 0 {
		t.Fatalf("canary report %+v", r)
	}

	// Back at the mirror: the reports go onto the image, which is
	// ingested twice; the canary's success counts once, and phase 2
	// starts.
	reports, _ := filepath.Glob(filepath.Join(root, "ferry", "reports", "*.json"))
	run("mcopy", append(append([]string{"-o", "-i", at}, reports...), "::/ferry/reports/")...)
	for i := range 2 {
		var ing struct{ Reports, New, Known, Signed int }
		out := run(ferry, "mirror", "ingest", m, img, "--json")
		if err := json.Unmarshal([]byte(out), &ing); err != nil {
			t.Fatal(err)
		}
		// 6 reports: 3 skipped, 2 refused, the canary's success; the second time all known.
		if ing.Reports != 6 || (i == 0 && (ing.New != 6 || ing.Signed != 6)) || (i == 1 && (ing.New != 0 || ing.Known != 6)) {
			t.Fatalf("ingest %d: %s", i+1, out)
		}
	}
	d = detail()
	if d.Progress[0].Succeeded != 1 || d.Progress[0].Failed != 0 || d.Phase != 1 || d.State != devices.Running {
		t.Fatalf("after ingest: phase %d %s %+v", d.Phase, d.State, d.Progress)
	}
	done := 0
	for _, e := range d.Events {
		if strings.HasPrefix(e.Message, "phase 1 of 2 done (1 succeeded, 0 failed)") {
			done++
		}
	}
	if done != 1 {
		t.Fatalf("phase 1 ended %d times: %+v", done, d.Events)
	}

	// The next stick carries the other two devices' assignments, to a
	// site mirror this time: it syncs the stick (the bundle, the
	// upstream's metadata and assignments into its relay), and builds
	// the sticks its technicians carry from the relay.
	img2, _, _ := buildStick("stick2")
	site := filepath.Join(work, "site")
	run(ferry, "key", "generate", "-o", site+"-key")
	run(ferry, "mirror", "init", site, "--key", site+"-key.key")
	if out := run(ferry, "mirror", "sync", site, "--from", img2); !strings.Contains(out, "assignments for 2 device(s) kept in the relay") {
		t.Fatalf("site sync:\n%s", out)
	}
	siteImg := filepath.Join(work, "site.img")
	var sres struct {
		Build struct {
			PartitionOffset int64    `json:"partitionOffset"`
			Deployment      int64    `json:"deployment"`
			Assignments     []string `json:"assignments"`
		} `json:"build"`
	}
	if err := json.Unmarshal([]byte(run(ferry, "media", "build", "--out", siteImg, "--relay", site, "--json")), &sres); err != nil {
		t.Fatal(err)
	}
	if sres.Build.Deployment != 1 || len(sres.Build.Assignments) != 2 {
		t.Fatalf("site stick %+v", sres.Build)
	}
	root = filepath.Join(work, "site-stick")
	os.MkdirAll(root, 0o755)
	run("mcopy", "-s", "-i", siteImg+"@@"+strconv.FormatInt(sres.Build.PartitionOffset, 10), "::/ferry", root)
	for _, dev := range others {
		if code, out := agent(dev, "install", root); code != 0 || !strings.Contains(out, "the stick assigns sim-os 1.0.0") {
			t.Fatalf("%s: exit %d\n%s", dev, code, out)
		}
		if code, out := agent(dev, "boot-check"); code != 0 {
			t.Fatalf("%s boot-check: exit %d\n%s", dev, code, out)
		}
	}
	// The site mirror keeps the upstream devices' reports for it (it
	// cannot judge them: they are bound to the upstream); the upstream
	// ingests the site's relay (carried on a stick, or read where both
	// can reach it) and counts them, once.
	if out := run(ferry, "mirror", "ingest", site, root); !strings.Contains(out, "2 reports of an upstream mirror's devices kept for it") {
		t.Fatalf("site ingest:\n%s", out)
	}
	if d = detail(); d.Progress[1].Succeeded != 0 {
		t.Fatalf("counted before the reports reached the upstream: %+v", d.Progress)
	}
	relay := filepath.Join(site, "relay")
	for range 2 {
		run(ferry, "mirror", "ingest", m, relay)
	}
	d = detail()
	if d.State != devices.Completed || d.Progress[1].Succeeded != 2 || d.Progress[1].Failed != 0 {
		t.Fatalf("end: %s %+v", d.State, d.Progress)
	}
	// Nothing assigned any more: no stick to build.
	cmd := exec.Command(ferry, "media", "build", "--out", filepath.Join(work, "stick3.img"), "--deployment", "1", m)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "deployment 1 is completed") {
		t.Fatalf("a stick for a completed deployment: %v\n%s", err, out)
	}
	checkRecordsWhereTold(t, m)
}

// deviceName is the device_id (name) of the device in dir.
func deviceName(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "agent.toml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "device_id = "); ok {
			return strings.Trim(v, `"`)
		}
	}
	t.Fatalf("%s: no device_id", dir)
	return ""
}
