package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/internal/testtool"
)

// TestTwoMirrorsOneDeployment runs one deployment through two
// 'ferry mirror serve' instances of one mirror (copies of its directory)
// that keep their records in one PostgreSQL database, with the real
// binaries, each device polling whichever mirror it is pointed at: the
// canary fails its health check through one mirror and the deployment
// pauses on both; resumed on the other's directory, the canary commits
// through the first and the rest of the fleet installs through either;
// both see the deployment complete, each report counted once.
func TestTwoMirrorsOneDeployment(t *testing.T) {
	ferry, agentBin := buildBinaries(t)
	t.Setenv("FERRY_DATABASE", testtool.Postgres(t))
	work := t.TempDir()
	run := func(name string, args ...string) string { t.Helper(); return runTool(t, name, args...) }
	agent := func(dir string, args ...string) (int, string) { t.Helper(); return runAgent(t, agentBin, dir, args...) }
	m1, m2 := filepath.Join(work, "m1"), filepath.Join(work, "m2")
	run(ferry, "key", "generate", "-o", m1+"-key")
	run(ferry, "mirror", "init", m1, "--key", m1+"-key.key")

	// Devices are pointed at a mirror once both serve (pointAt).
	const unset = "http://mirror.invalid:1"
	config := "\n[mirror]\nurl = \"" + unset + "\"\ntuf_root = \"" + filepath.Join(m1, "tuf", "root.json") + "\"\nmanaged = true\n"
	devs, bundlePath := ociDevices(t, config, 3)
	for _, d := range devs {
		cfg, _ := os.ReadFile(filepath.Join(d, "agent.toml"))
		cfg = append(cfg, []byte("[health]\ncommands = [\"test -f "+filepath.Join(d, "healthy")+"\"]\n")...)
		os.WriteFile(filepath.Join(d, "agent.toml"), cfg, 0o644)
	}
	ids := enrollAll(t, ferry, agentBin, m1, devs)
	run(ferry, "mirror", "add", m1, bundlePath)
	run(ferry, "fleet", "deploy", m1, "sim-os:1.0.0", "--filter", "type = sim-board", "--phases", "1,100%", "--soak", "0s")
	// The second instance: the same mirror (its metadata, bundles and
	// assignment key), as a second machine would hold it.
	if err := os.CopyFS(m2, os.DirFS(m1)); err != nil {
		t.Fatal(err)
	}
	lift := []string{"--checkin-rate", "1000", "--checkin-burst", "1000"}
	url1, _ := serveMirror(t, ferry, m1, lift...)
	url2, _ := serveMirror(t, ferry, m2, lift...)
	pointAt := func(dev, url string) {
		t.Helper()
		p := filepath.Join(dev, "agent.toml")
		b, err := os.ReadFile(p)
		if err == nil {
			s := strings.NewReplacer(`"`+unset+`"`, `"`+url+`"`, `"`+url1+`"`, `"`+url+`"`, `"`+url2+`"`, `"`+url+`"`).Replace(string(b))
			err = os.WriteFile(p, []byte(s), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	detail := func(m string) devices.DeploymentDetail { t.Helper(); return deploymentDetail(t, ferry, m, "1") }
	d := detail(m2)
	canary := ids[d.Targets[0].Device]
	var others []string
	for _, tg := range d.Targets[1:] {
		others = append(others, ids[tg.Device])
	}
	if d.State != devices.Running || len(others) != 2 {
		t.Fatalf("the deployment as the second mirror sees it: %+v", d)
	}
	for _, o := range others {
		os.WriteFile(filepath.Join(o, "healthy"), nil, 0o644)
	}

	// The canary, through the second mirror: installed, unhealthy, rolled
	// back; the deployment pauses, and the first mirror assigns nothing.
	pointAt(canary, url2)
	if code, out := agent(canary, "run", "--once"); code != 0 || !strings.Contains(out, "mirror assigns sim-os 1.0.0 (deployment 1)") {
		t.Fatalf("canary via the second mirror: exit %d\n%s", code, out)
	} else if !strings.Contains(out, "oci://"+hostOf(url2)+"/") {
		t.Fatalf("the canary did not install from the second mirror:\n%s", out)
	}
	if code, out := agent(canary, "boot-check"); code == 0 || !strings.Contains(out, "health check") {
		t.Fatalf("canary boot-check: exit %d\n%s", code, out)
	}
	for _, m := range []string{m1, m2} {
		if d := detail(m); d.State != devices.Paused || !strings.Contains(d.Reason, "1 of 1 devices failed") {
			t.Fatalf("%s after the canary failed: %s %q", filepath.Base(m), d.State, d.Reason)
		}
	}
	pointAt(others[0], url1)
	pointAt(others[1], url2)
	for _, o := range others {
		if code, out := agent(o, "run", "--once"); code != 0 || !strings.Contains(out, "assigns this device nothing") {
			t.Fatalf("a device while paused: exit %d\n%s", code, out)
		}
	}

	// Resumed on the second mirror's directory; the canary, now through
	// the first mirror, commits, which starts phase 2 for both.
	os.WriteFile(filepath.Join(canary, "healthy"), nil, 0o644)
	run(ferry, "fleet", "resume", m2, "1")
	pointAt(canary, url1)
	for i, dev := range append([]string{canary}, others...) {
		via := []string{url1, url1, url2}[i]
		if code, out := agent(dev, "run", "--once"); code != 0 || !strings.Contains(out, "mirror assigns sim-os 1.0.0") || !strings.Contains(out, "oci://"+hostOf(via)+"/") {
			t.Fatalf("after resume, through %s: exit %d\n%s", via, code, out)
		}
		if code, out := agent(dev, "boot-check"); code != 0 {
			t.Fatalf("boot-check after resume: exit %d\n%s", code, out)
		}
	}
	for _, m := range []string{m1, m2} {
		d := detail(m)
		if d.State != devices.Completed || d.Progress[0].Succeeded != 1 || d.Progress[1].Succeeded != 2 || d.Progress[0].Failed != 0 {
			t.Errorf("%s at the end: %s %+v", filepath.Base(m), d.State, d.Progress)
		}
	}
	for _, m := range []string{m1, m2} {
		if _, err := os.Stat(filepath.Join(m, devices.File)); err == nil {
			t.Errorf("%s keeps records of its own", filepath.Base(m))
		}
	}
}

// hostOf is the host:port of an http:// URL.
func hostOf(url string) string { return strings.TrimPrefix(url, "http://") }
