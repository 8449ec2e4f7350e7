package operator

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/transport/checkin"
)

// rollout is a fleet of three enrolled devices running sim-os 1.0.0, in
// the static group line-1, with sim-os 2.0.0 on the mirror.
type rollout struct {
	*testMirror
	devs []*device
	ana  string // operator
	cy   string // another operator
	bo   string // read-only
}

func newRollout(t *testing.T, backend string) *rollout {
	t.Helper()
	f := newFleet(t, backend)
	r := &rollout{testMirror: f, ana: f.user("ana", devices.Operator), cy: f.user("cy", devices.Operator), bo: f.user("bo", devices.ReadOnly)}
	for _, n := range []string{"gw-1", "gw-2", "gw-3"} {
		r.devs = append(r.devs, newDevice(n))
	}
	f.enroll(r.devs...)
	ids := []string{}
	for _, d := range r.devs {
		if got := f.checkin(d, nil); got != http.StatusNoContent {
			t.Fatalf("check-in of %s: %d", d.name, got)
		}
		ids = append(ids, d.id)
	}
	f.addBundle("sim-os", "2.0.0")
	if _, err := f.db.PutGroup(context.Background(), devices.Group{Name: "line-1", Kind: devices.Static, Devices: ids}, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	return r
}

// call makes an API request with a JSON body (v marshalled; nil: none)
// and decodes a 2xx answer into out.
func (r *rollout) call(method, path, token string, v any, status int, out any) []byte {
	r.t.Helper()
	var body *strings.Reader
	if v != nil {
		b, _ := json.Marshal(v)
		body = strings.NewReader(string(b))
	}
	var resp *http.Response
	var got []byte
	if body != nil {
		resp, got = r.api(method, path, token, body)
	} else {
		resp, got = r.api(method, path, token, nil)
	}
	if resp.StatusCode != status {
		r.t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, got, status)
	}
	if out != nil {
		if err := json.Unmarshal(got, out); err != nil {
			r.t.Fatalf("%s %s: %v\n%s", method, path, err, got)
		}
	}
	return got
}

// byDevice finds a device of the rollout by id.
func (r *rollout) byDevice(id string) *device {
	for _, d := range r.devs {
		if d.id == id {
			return d
		}
	}
	r.t.Fatalf("no device %s", id)
	return nil
}

// report has d report how its install of the deployment's bundle went:
// the assignment it acted on (from the engine), then result and msg.
func (r *rollout) report(d *device, dep int64, result, msg string) {
	r.t.Helper()
	a, err := r.db.AssignmentFor(context.Background(), d.id, r.clock.Now())
	if err != nil || a == nil || a.Deployment != dep {
		r.t.Fatalf("assignment of %s: %+v, %v; want one of deployment %d", d.name, a, err, dep)
	}
	got := r.checkin(d, func(inv *checkin.Inventory) {
		inv.Result, inv.Error = result, msg
		if result == "committed" {
			inv.Version = a.Version
		}
		inv.Install = &checkin.Install{Bundle: a.Bundle, Version: a.Version, Deployment: a.Deployment, Assignment: a.Counter}
	})
	if got != http.StatusNoContent {
		r.t.Fatalf("report of %s: %d", d.name, got)
	}
}

// detail is GET /api/v1/deployments/{id}.
func (r *rollout) detail(id int64) DeploymentDetail {
	r.t.Helper()
	var d DeploymentDetail
	r.call("GET", "/api/v1/deployments/"+strconv.FormatInt(id, 10), r.bo, nil, http.StatusOK, &d)
	return d
}

// phases makes phases of "SIZE/SOAK/FAILURES" each.
func phases(spec ...string) []devices.Phase {
	var out []devices.Phase
	for _, s := range spec {
		parts := strings.Split(s, "/")
		ps, err := devices.ParsePhases(parts[0], mustDuration(parts[1]), mustAmount(parts[2]))
		if err != nil {
			panic(err)
		}
		out = append(out, ps...)
	}
	return out
}

func mustDuration(s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return d
}

func mustAmount(s string) devices.Amount {
	a, err := devices.ParseAmount(s)
	if err != nil {
		panic(err)
	}
	return a
}

// TestAPIDeployments drives a phased deployment through the API on both
// backends: a canary whose failure pauses it by itself, resume, pause and
// abort by operators (a read-only token refused), a second operator's
// approval where the site requires it, and a soak that ends with the
// mirror's clock.
func TestAPIDeployments(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		r := newRollout(t, backend)
		var gl GroupList
		r.call("GET", "/api/v1/groups", r.bo, nil, http.StatusOK, &gl)
		if len(gl.Groups) != 1 || gl.Groups[0].Name != "line-1" || len(gl.Groups[0].Devices) != 3 {
			t.Errorf("groups = %+v", gl)
		}
		req := DeployRequest{Bundle: "sim-os:2.0.0", Group: "line-1", Phases: phases("1/1h/0", "100%/0s/1")}
		r.call("POST", "/api/v1/deployments", r.bo, req, http.StatusForbidden, nil)
		var dep devices.Deployment
		r.call("POST", "/api/v1/deployments", r.ana, req, http.StatusCreated, &dep)
		if dep.State != devices.Running || dep.Devices != 3 || dep.CreatedBy != "ana" || !strings.HasPrefix(dep.Digest, "sha256:") {
			t.Fatalf("deployment = %+v", dep)
		}
		d := r.detail(dep.ID)
		var canary *device
		for _, tg := range d.Targets {
			if tg.Phase == 0 {
				if tg.State != devices.Assigned || canary != nil {
					t.Fatalf("phase 1 target %+v: want one canary, assigned", tg)
				}
				canary = r.byDevice(tg.Device)
			}
		}

		// The canary fails its health check: the phase allows 0 failures,
		// so the deployment pauses by itself, and says why.
		r.report(canary, dep.ID, "rolled-back", "health check: service gateway did not start")
		d = r.detail(dep.ID)
		if d.Deployment.State != devices.Paused || !strings.Contains(d.Deployment.Reason, "1 of 1 devices failed, more than the 0 allowed") {
			t.Fatalf("after the canary failed: %s (%q), want paused with the reason", d.Deployment.State, d.Deployment.Reason)
		}
		if p := d.Deployment.Progress[0]; p.Failed != 1 || p.Succeeded != 0 {
			t.Errorf("phase 1 progress = %+v", p)
		}
		failed := false
		for _, tg := range d.Targets {
			if tg.Device == canary.id && tg.State == devices.Failed && tg.Error == "health check: service gateway did not start" {
				failed = true
			}
		}
		if !failed {
			t.Errorf("the canary's failure and its error are not in the targets: %+v", d.Targets)
		}

		base := "/api/v1/deployments/" + strconv.FormatInt(dep.ID, 10)
		r.call("POST", base+"/resume", r.bo, nil, http.StatusForbidden, nil)
		r.call("POST", base+"/resume", r.ana, nil, http.StatusOK, &dep)
		if dep.State != devices.Running {
			t.Errorf("resumed: %s", dep.State)
		}
		r.call("POST", base+"/resume", r.ana, nil, http.StatusConflict, nil)
		r.call("POST", base+"/pause", r.cy, ReasonRequest{Reason: "the line stops for lunch"}, http.StatusOK, &dep)
		if dep.State != devices.Paused || !strings.Contains(dep.Reason, "the line stops for lunch") {
			t.Errorf("paused: %s %q", dep.State, dep.Reason)
		}
		r.call("POST", base+"/abort", r.ana, ReasonRequest{Reason: "bad build"}, http.StatusOK, &dep)
		if dep.State != devices.Aborted {
			t.Errorf("aborted: %s", dep.State)
		}
		r.call("POST", base+"/resume", r.ana, nil, http.StatusConflict, nil)
		r.call("POST", "/api/v1/deployments/999/abort", r.ana, nil, http.StatusNotFound, nil)
		d = r.detail(dep.ID)
		kinds := []string{}
		for _, e := range d.Events {
			kinds = append(kinds, e.Operator+":"+e.Kind)
		}
		for _, want := range []string{":device-failed", "ana:resume", "cy:pause", "ana:abort"} {
			if !strings.Contains(strings.Join(kinds, " "), want) {
				t.Errorf("the log lacks %s: %v", want, kinds)
			}
		}

		// A second operator's approval, where the site asks for it; then a
		// canary that succeeds, and the next phase once the soak is over.
		var set devices.Settings
		r.call("PUT", "/api/v1/settings", r.ana, devices.Settings{RequireApproval: true}, http.StatusOK, &set)
		r.call("POST", "/api/v1/deployments", r.ana, req, http.StatusCreated, &dep)
		if dep.State != devices.AwaitingApproval {
			t.Fatalf("with approval required: %s", dep.State)
		}
		base = "/api/v1/deployments/" + strconv.FormatInt(dep.ID, 10)
		r.call("POST", base+"/approve", r.ana, nil, http.StatusForbidden, nil)
		r.call("POST", base+"/approve", r.cy, nil, http.StatusOK, &dep)
		if dep.State != devices.Running || dep.ApprovedBy != "cy" {
			t.Fatalf("approved by cy: %s by %q", dep.State, dep.ApprovedBy)
		}
		d = r.detail(dep.ID)
		for _, tg := range d.Targets {
			if tg.Phase == 0 {
				canary = r.byDevice(tg.Device)
			}
		}
		r.report(canary, dep.ID, "committed", "")
		if d = r.detail(dep.ID); d.Deployment.Phase != 0 {
			t.Fatalf("the next phase began before the soak: phase %d", d.Deployment.Phase)
		}
		r.clock.Add(61 * time.Minute)
		if d = r.detail(dep.ID); d.Deployment.Phase != 1 || d.Deployment.Progress[1].Assigned != 2 {
			t.Fatalf("after the soak: phase %d, %+v", d.Deployment.Phase, d.Deployment.Progress)
		}
		var dl DeploymentList
		r.call("GET", "/api/v1/deployments", r.bo, nil, http.StatusOK, &dl)
		if len(dl.Deployments) != 2 || dl.Deployments[0].ID != dep.ID {
			t.Errorf("deployments: %d, first %d; want 2, newest first", len(dl.Deployments), dl.Deployments[0].ID)
		}

		var rec devices.Record
		r.call("POST", "/api/v1/devices/"+canary.id[:12]+"/labels", r.ana, LabelsRequest{Set: map[string]string{"site": "plant-2"}}, http.StatusOK, &rec)
		if rec.Labels["site"] != "plant-2" {
			t.Errorf("labels: %v", rec.Labels)
		}
		r.call("DELETE", "/api/v1/groups/line-1", r.bo, nil, http.StatusForbidden, nil)
		r.call("DELETE", "/api/v1/groups/line-1", r.ana, nil, http.StatusNoContent, nil)
		r.call("GET", "/api/v1/groups/line-1", r.bo, nil, http.StatusNotFound, nil)
		var g devices.Group
		r.call("PUT", "/api/v1/groups/plant-2", r.ana, devices.Group{Kind: devices.Dynamic, Filter: "site = plant-2"}, http.StatusOK, &g)
		var gd GroupDetail
		r.call("GET", "/api/v1/groups/plant-2", r.bo, nil, http.StatusOK, &gd)
		if len(gd.Devices) != 1 || gd.Devices[0].ID != canary.id {
			t.Errorf("dynamic group plant-2: %+v", gd.Devices)
		}
		r.call("PUT", "/api/v1/groups/bad", r.ana, devices.Group{Kind: devices.Dynamic, Filter: "site = = x"}, http.StatusBadRequest, nil)
	})
}

// TestConsoleDeployForm: a deployment form that is not valid comes back
// with what was wrong and what was typed; a read-only user's forged form
// is refused; a valid one leads to the deployment's page.
func TestConsoleDeployForm(t *testing.T) {
	r := newRollout(t, "sqlite")
	op, ro := r.browser(), r.browser()
	_, csrf := op.login("ana", "ana-password!")
	_, roCSRF := ro.login("bo", "bo-password!")
	form := func(csrf, phases string) url.Values {
		return url.Values{"csrf": {csrf}, "bundle": {"sim-os:2.0.0"}, "group": {"line-1"}, "phases": {phases}, "soak": {"1h"}, "maxFailures": {"0"}}
	}
	resp, page := op.do("POST", "/console/deployments", form(csrf, "1,lots"), nil)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, `id="problem">phases: phase 2: size`) || !strings.Contains(page, `value="1,lots"`) {
		t.Errorf("a bad form: %d\n%s", resp.StatusCode, page)
	}
	if resp, _ := ro.do("POST", "/console/deployments", form(roCSRF, "1,100%"), nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a read-only user's deployment: %d", resp.StatusCode)
	}
	if resp, _ := op.do("POST", "/console/deployments", form("", "1,100%"), nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a deployment form without the CSRF token: %d", resp.StatusCode)
	}
	if ds, _ := r.db.Deployments(context.Background()); len(ds) != 0 {
		t.Fatalf("refused forms made %d deployments", len(ds))
	}
	resp, _ = op.do("POST", "/console/deployments", form(csrf, "1,100%"), nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/deployments/1" {
		t.Errorf("a good form: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, action := range []string{"pause", "abort"} {
		if resp, _ := ro.do("POST", "/console/deployments/1/"+action, url.Values{"csrf": {roCSRF}}, nil); resp.StatusCode != http.StatusForbidden {
			t.Errorf("a read-only user's %s: %d", action, resp.StatusCode)
		}
	}
	if resp, page := op.do("POST", "/console/deployments/1/resume", url.Values{"csrf": {csrf}}, nil); resp.StatusCode != http.StatusConflict || !strings.Contains(page, `id="reason">conflict<`) {
		t.Errorf("resuming a running deployment: %d", resp.StatusCode)
	}
}
