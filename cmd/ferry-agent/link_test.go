package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/transport/checkin"
)

// TestSiteMirrorLink relays a phased deployment through a site mirror
// linked to its upstream over HTTP, with the real binaries: two 'ferry
// mirror serve' on loopback (the upstream with its console and API; the
// site with --relay), 'ferry mirror sync SITE --from URL' with a
// read-only token, and managed devices of the upstream (trusting its TUF
// root) that poll the site. The canary installs its assignment via the
// site; its check-in goes up with the next sync and the upstream counts
// it once, though it is sent twice; a forged check-in posted to the site
// is refused there, and a stranger's (a key the upstream never enrolled)
// is relayed and counts for nothing. A sync cut mid-way (the upstream's
// metadata unreachable) relays nothing, and so does one from a stopped
// upstream, which keeps the report it could not send; the next sync sends
// it and completes.
func TestSiteMirrorLink(t *testing.T) {
	ferry, agentBin := buildBinaries(t)
	work := t.TempDir()
	run := func(name string, args ...string) string { t.Helper(); return runTool(t, name, args...) }
	agent := func(dir string, args ...string) (int, string) { t.Helper(); return runAgent(t, agentBin, dir, args...) }
	up, site := filepath.Join(work, "up"), filepath.Join(work, "site")
	for _, m := range []string{up, site} {
		run(ferry, "key", "generate", "-o", m+"-key")
		run(ferry, "mirror", "init", m, "--key", m+"-key.key")
	}
	// The upstream's read-only token, for the site.
	os.WriteFile(filepath.Join(work, "pw"), []byte("site-relay-password\n"), 0o600)
	run(ferry, "fleet", "users", "add", up, "site-2", "--password-file", filepath.Join(work, "pw"))
	token := filepath.Join(work, "token")
	os.WriteFile(token, []byte(run(ferry, "fleet", "tokens", "create", up, "--user", "site-2")), 0o600)
	// All the devices poll from 127.0.0.1: lift the per-client rate.
	siteURL, stopSite := serveMirror(t, ferry, site, "--relay", "--checkin-rate", "1000", "--checkin-burst", "1000")
	defer stopSite()

	// Three managed devices of the upstream (its TUF root) whose mirror is
	// the site.
	config := "\n[mirror]\nurl = \"" + siteURL + "\"\ntuf_root = \"" + filepath.Join(up, "tuf", "root.json") + "\"\nmanaged = true\n"
	devs, bundlePath := ociDevices(t, config, 3)
	ids := enrollAll(t, ferry, agentBin, up, devs) // device id -> its directory
	run(ferry, "mirror", "add", up, bundlePath)
	run(ferry, "fleet", "deploy", up, "sim-os:1.0.0", "--filter", "type = sim-board", "--phases", "1,100%", "--soak", "0s")
	upURL, stopUp := serveMirror(t, ferry, up, "--console", "--checkin-rate", "1000", "--checkin-burst", "1000")
	detail := func() devices.DeploymentDetail { t.Helper(); return deploymentDetail(t, ferry, up, "1") }
	d := detail()
	canary := ids[d.Targets[0].Device]
	var others []string
	for _, tg := range d.Targets[1:] {
		others = append(others, ids[tg.Device])
	}

	// sync runs 'ferry mirror sync site --from from --json'.
	sync := func(from string) (mirror.SyncResult, error) {
		t.Helper()
		var res mirror.SyncResult
		out, err := runToolErr(ferry, "mirror", "sync", site, "--from", from, "--token-file", token, "--json")
		if jerr := json.Unmarshal([]byte(out), &res); jerr != nil && err == nil {
			t.Fatalf("sync: %v\n%s", jerr, out)
		}
		return res, err
	}
	res, err := sync(upURL)
	if err != nil || res.Relay == nil || len(res.Relay.Assignments) != 1 || res.Relay.Assignments[0] != d.Targets[0].Device || len(res.Bundles) != 1 {
		t.Fatalf("first sync: %v\n%+v", err, res)
	}

	// The canary installs what the upstream assigned it, from the site;
	// the others are assigned nothing yet.
	if code, out := agent(canary, "run", "--once"); code != 0 || !strings.Contains(out, "mirror assigns sim-os 1.0.0 (deployment 1)") {
		t.Fatalf("canary: exit %d\n%s", code, out)
	}
	checkInstalled(t, canary)
	if code, out := agent(canary, "boot-check"); code != 0 {
		t.Fatalf("canary boot-check: exit %d\n%s", code, out)
	}
	for _, o := range others {
		if code, out := agent(o, "run", "--once"); code != 0 || !strings.Contains(out, "assigns this device nothing") {
			t.Fatalf("a device of phase 2 during phase 1: exit %d\n%s", code, out)
		}
	}
	// The site recorded nothing of them; the upstream has not heard yet.
	if d := detail(); d.Progress[0].Succeeded != 0 {
		t.Fatalf("before the sync up: %+v", d.Progress)
	}
	reports := filepath.Join(site, "relay", "ferry", "reports")
	canaryReport := filepath.Join(reports, "net-"+d.Targets[0].Device+".json")
	kept, err := os.ReadFile(canaryReport)
	if err != nil {
		t.Fatalf("the canary's check-in is not kept on the site: %v", err)
	}

	// A forged check-in (the canary's, its payload changed) is refused by
	// the site; a stranger's, bound to the upstream, is kept for it; one
	// bound to a mirror the site does not relay is refused as foreign.
	var rep struct{ Checkin json.RawMessage }
	json.Unmarshal(kept, &rep)
	forged := bytes.Replace(rep.Checkin, []byte(`"payload":"`), []byte(`"payload":"AAAA`), 1)
	if st := post(t, siteURL, forged); st != http.StatusBadRequest && st != http.StatusUnauthorized {
		t.Fatalf("forged check-in: %d", st)
	}
	upID := mirrorIDOf(t, up)
	stranger := strangerCheckin(t, upID)
	if st := post(t, siteURL, stranger); st != http.StatusNoContent {
		t.Fatalf("stranger's check-in: %d", st)
	}
	if st := post(t, siteURL, strangerCheckin(t, strings.Repeat("ab", 32))); st != http.StatusMisdirectedRequest {
		t.Fatalf("foreign check-in: %d", st)
	}

	// Up: the canary's success counts; the stranger is pending upstream.
	res, err = sync(upURL)
	r := res.Reports
	if err != nil || r == nil || !slices.Contains(r.Recorded, filepath.Base(canaryReport)) || len(r.Recorded) != 3 || len(r.Pending) != 1 || len(r.Kept) != 0 {
		t.Fatalf("second sync: %v\n%+v", err, r)
	}
	if left, _ := os.ReadDir(reports); len(left) != 0 {
		t.Fatalf("acknowledged reports left on the site: %v", left)
	}
	d = detail()
	if d.Progress[0].Succeeded != 1 || res.Relay == nil || len(res.Relay.Assignments) != 2 {
		t.Fatalf("after the canary's report: %+v\n%+v", d.Progress, res.Relay)
	}
	// Sent again (a sync interrupted before it removed it): known, once.
	os.WriteFile(canaryReport, kept, 0o644)
	res, err = sync(upURL)
	if err != nil || res.Reports == nil || len(res.Reports.Known) != 1 || len(res.Reports.Recorded) != 0 {
		t.Fatalf("third sync: %v\n%+v", err, res.Reports)
	}
	phaseDone := func() int {
		n := 0
		for _, e := range detail().Events {
			if strings.Contains(e.Message, "phase 1 of 2 done") {
				n++
			}
		}
		return n
	}
	if n := phaseDone(); n != 1 {
		t.Fatalf("phase 1 ended %d times", n)
	}

	// Phase 2 through the site.
	for _, o := range others {
		if code, out := agent(o, "run", "--once"); code != 0 || !strings.Contains(out, "mirror assigns sim-os 1.0.0") {
			t.Fatalf("%s: exit %d\n%s", o, code, out)
		}
		if code, out := agent(o, "boot-check"); code != 0 {
			t.Fatalf("%s boot-check: exit %d\n%s", o, code, out)
		}
	}

	// Cut mid-way: the reports go up, the assignments come, then the
	// upstream's metadata cannot be read. Nothing is relayed; what the
	// upstream acknowledged is gone from the site.
	relayTUF := filepath.Join(site, "relay", "ferry", "tuf")
	before := treeOf(t, relayTUF)
	asgBefore := treeOf(t, filepath.Join(site, "relay", "ferry", "assignments"))
	target, _ := url.Parse(upURL)
	cut := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/tuf/") {
			c, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				c.Close()
			}
			return
		}
		httputil.NewSingleHostReverseProxy(target).ServeHTTP(w, r)
	}))
	defer cut.Close()
	res, err = sync(cut.URL)
	if err == nil || res.Reports == nil || len(res.Reports.Recorded) != 2 {
		t.Fatalf("cut sync: %v\n%+v", err, res.Reports)
	}
	if after := treeOf(t, relayTUF); !maps.EqualFunc(before, after, bytes.Equal) {
		t.Fatal("a cut sync changed the relayed metadata")
	}
	if after := treeOf(t, filepath.Join(site, "relay", "ferry", "assignments")); !maps.EqualFunc(asgBefore, after, bytes.Equal) {
		t.Fatal("a cut sync changed the relayed assignments")
	}
	if d := detail(); d.State != devices.Completed || d.Progress[1].Succeeded != 2 {
		t.Fatalf("after phase 2's reports: %s %+v", d.State, d.Progress)
	}
	// The upstream stopped: the sync fails, the site is as it was; served
	// again, the next sync completes (the deployment done: no
	// assignments left).
	// The canary polls again meanwhile: its check-in waits on the site.
	if code, out := agent(canary, "run", "--once"); code != 0 {
		t.Fatalf("canary: exit %d\n%s", code, out)
	}
	stopUp()
	if res, err := sync(upURL); err == nil || res.Reports == nil || len(res.Reports.Kept) != 1 {
		t.Fatalf("a sync from a stopped upstream: %v\n%+v", err, res.Reports)
	}
	if _, err := os.Stat(canaryReport); err != nil {
		t.Fatalf("a report the upstream did not acknowledge is gone: %v", err)
	}
	if after := treeOf(t, relayTUF); !maps.EqualFunc(before, after, bytes.Equal) {
		t.Fatal("a failed sync changed the relayed metadata")
	}
	upURL, stopUp = serveMirror(t, ferry, up, "--console")
	res, err = sync(upURL)
	if err != nil || res.Relay == nil || len(res.Relay.Assignments) != 0 || len(res.Reports.Recorded) != 1 {
		t.Fatalf("sync after the cut: %v\n%+v", err, res.Relay)
	}
	if left, _ := os.ReadDir(filepath.Join(site, "relay", "ferry", "assignments")); len(left) != 0 {
		t.Fatalf("assignments of a completed deployment left in the relay: %v", left)
	}
	if n := phaseDone(); n != 1 {
		t.Fatalf("phase 1 ended %d times", n)
	}
	stopUp()
}

// post sends body to the check-in endpoint of the mirror at base and
// returns the status.
func post(t *testing.T, base string, body []byte) int {
	t.Helper()
	resp, err := http.Post(base+checkin.Path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// strangerCheckin is a signed check-in, bound to mirror, of a device key
// no mirror enrolled.
func strangerCheckin(t *testing.T, mirrorID string) []byte {
	t.Helper()
	pub, key, _ := ed25519.GenerateKey(nil)
	inv := &checkin.Inventory{Mirror: mirrorID, Device: checkin.DeviceID(pub), PublicKey: pub, Counter: 1, Time: time.Now().UTC(),
		Name: "stranger", DeviceType: "sim-board", AgentVersion: "ferry-agent/test", Version: "0.0.0",
		Components: []checkin.Component{}, Slot: checkin.SlotState{Booted: "a"}, Result: "idle"}
	b, err := checkin.Sign(inv, key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// treeOf reads every file under dir, by path relative to it.
func treeOf(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out[strings.TrimPrefix(p, dir)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
