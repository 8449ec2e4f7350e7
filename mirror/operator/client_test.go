package operator

import (
	"context"
	"crypto/ed25519"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/fleet"
)

// TestClient drives the fleet through the HTTP client (what 'ferry fleet
// … --mirror URL' uses) against the live API: reads, enrollment, groups,
// a deployment paused, resumed and aborted, and the typed errors the
// commands' hints rely on.
func TestClient(t *testing.T) {
	r := newRollout(t, "sqlite")
	ctx := context.Background()
	for _, bad := range [][2]string{{"ftp://x", r.ana}, {"http://", r.ana}, {"http://u:p@host", r.ana}, {r.url, "not-a-token"}} {
		if _, err := NewClient(bad[0], bad[1], ClientOptions{}); err == nil {
			t.Errorf("NewClient(%q, %.8q…) accepted", bad[0], bad[1])
		}
	}
	// A token crosses the network in clear only when asked to.
	var pe *PlainHTTPError
	if _, err := NewClient("http://mirror.example:5000", r.ana, ClientOptions{}); !errors.As(err, &pe) || strings.Contains(err.Error(), r.ana) {
		t.Errorf("plain http to another host: %v, want a *PlainHTTPError without the token", err)
	}
	for _, ok := range []string{"https://mirror.example", "http://localhost:5000", "http://127.0.0.2:5000", "http://[::1]:5000"} {
		if _, err := NewClient(ok, r.ana, ClientOptions{}); err != nil {
			t.Errorf("NewClient(%s): %v", ok, err)
		}
	}
	if _, err := NewClient("http://10.0.0.5:5000", r.ana, ClientOptions{PlainHTTP: true}); err != nil {
		t.Errorf("plain http allowed: %v", err)
	}
	c, err := NewClient(r.url+"/api/v1", r.ana, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ro, _ := NewClient(r.url, r.bo, ClientOptions{})

	recs, err := c.Records(ctx)
	if err != nil || len(recs) != 3 {
		t.Fatalf("Records: %d, %v", len(recs), err)
	}
	rec, hist, err := c.Show(ctx, r.devs[0].id[:10])
	if err != nil || rec.ID != r.devs[0].id || len(hist) != 1 {
		t.Errorf("Show: %+v %d %v", rec, len(hist), err)
	}
	var nf *devices.NotFoundError
	if _, _, err := c.Show(ctx, "0123456789abcdef"); !errors.As(err, &nf) {
		t.Errorf("Show of no device: %v, want *devices.NotFoundError", err)
	}
	fresh := newDevice("gw-4")
	res, err := c.Enroll(ctx, []devices.Enrollment{{PublicKey: fresh.key.Public().(ed25519.PublicKey), Name: "gw-4", DeviceType: "board-a", Labels: map[string]string{"site": "plant-2"}}}, "", r.clock.Now())
	if err != nil || len(res) != 1 || res[0].ID != fresh.id || res[0].After != devices.Enrolled {
		t.Errorf("Enroll: %+v, %v", res, err)
	}
	if rec, _, _ := r.db.Show(ctx, fresh.id); rec.EnrolledBy != "api:ana" || rec.Labels["site"] != "plant-2" {
		t.Errorf("enrolled by %q with labels %v, want api:ana with site=plant-2", rec.EnrolledBy, rec.Labels)
	}
	if rec, err := c.SetStatus(ctx, fresh.id, devices.Revoked, r.clock.Now()); err != nil || rec.Status != devices.Revoked {
		t.Errorf("SetStatus: %+v %v", rec, err)
	}
	var se *devices.StatusError
	if _, err := c.SetStatus(ctx, fresh.id, devices.Enrolled, r.clock.Now()); !errors.As(err, &se) || se.From != devices.Revoked || se.To != devices.Enrolled || se.ID != fresh.id {
		t.Errorf("approving a revoked device: %#v, want a *devices.StatusError from revoked", err)
	}
	if rec, err := c.SetLabels(ctx, r.devs[1].id, map[string]string{"line": "l2"}, r.clock.Now()); err != nil || rec.Labels["line"] != "l2" {
		t.Errorf("SetLabels: %+v %v", rec, err)
	}
	if g, err := c.PutGroup(ctx, devices.Group{Name: "l2", Kind: devices.Dynamic, Filter: "line = l2"}, r.clock.Now()); err != nil || g.Kind != devices.Dynamic {
		t.Errorf("PutGroup: %+v %v", g, err)
	}
	if gs, err := c.Groups(ctx); err != nil || len(gs) != 2 {
		t.Errorf("Groups: %+v %v", gs, err)
	}
	if _, members, err := c.GroupMembers(ctx, "l2"); err != nil || len(members) != 1 || members[0].ID != r.devs[1].id {
		t.Errorf("GroupMembers: %+v %v", members, err)
	}
	var gnf *devices.GroupNotFoundError
	if _, _, err := c.GroupMembers(ctx, "none"); !errors.As(err, &gnf) {
		t.Errorf("GroupMembers of no group: %v", err)
	}
	if err := c.DeleteGroup(ctx, "none"); !errors.As(err, &gnf) {
		t.Errorf("DeleteGroup of no group: %v", err)
	}
	if err := c.SetSettings(ctx, devices.Settings{}); err != nil {
		t.Error(err)
	}
	if s, err := c.Settings(ctx); err != nil || s.RequireApproval {
		t.Errorf("Settings: %+v %v", s, err)
	}

	spec := devices.DeploymentSpec{Group: "line-1", Phases: phases("1/1h/0", "100%/0s/0")}
	var ae *APIError
	if _, err := ro.Deploy(ctx, "sim-os:2.0.0", spec, r.clock.Now()); !errors.As(err, &ae) || ae.Status != http.StatusForbidden || ae.Reason != ReasonForbidden {
		t.Errorf("a read-only token deploys: %v", err)
	}
	dep, err := c.Deploy(ctx, "sim-os:2.0.0", spec, r.clock.Now())
	if err != nil || dep.State != devices.Running || dep.CreatedBy != "ana" {
		t.Fatalf("Deploy: %+v %v", dep, err)
	}
	if dep, err = c.Pause(ctx, dep.ID, "ignored", "maintenance", r.clock.Now()); err != nil || dep.State != devices.Paused {
		t.Errorf("Pause: %+v %v", dep, err)
	}
	if dep, err = c.Resume(ctx, dep.ID, "", r.clock.Now()); err != nil || dep.State != devices.Running {
		t.Errorf("Resume: %+v %v", dep, err)
	}
	// The fleet's refusals come back as the types the directory gives.
	var ste *devices.StateError
	if _, err := c.Resume(ctx, dep.ID, "", r.clock.Now()); !errors.As(err, &ste) || *ste != (devices.StateError{ID: dep.ID, State: devices.Running, Action: "resumed"}) {
		t.Errorf("resuming a running deployment: %#v", err)
	}
	var bnf *fleet.BundleNotFoundError
	if _, err := c.Deploy(ctx, "sim-os:9.9.9", spec, r.clock.Now()); !errors.As(err, &bnf) || bnf.Ref != "sim-os:9.9.9" || !slices.Contains(bnf.Versions, "2.0.0") {
		t.Errorf("deploying a bundle the mirror lacks: %#v", err)
	}
	var fe *devices.FilterError
	if _, err := c.PutGroup(ctx, devices.Group{Name: "bad", Kind: devices.Dynamic, Filter: "line ="}, r.clock.Now()); !errors.As(err, &fe) || err.Error() != "filter: at 6: want a value after '='" {
		t.Errorf("a bad filter: %#v", err)
	}
	if dep, err = c.Abort(ctx, dep.ID, "", "wrong group", r.clock.Now()); err != nil || dep.State != devices.Aborted {
		t.Errorf("Abort: %+v %v", dep, err)
	}
	d, err := c.DeploymentDetail(ctx, dep.ID)
	if err != nil || d.ID != dep.ID || len(d.Targets) != 3 || len(d.Events) < 4 || d.Events[len(d.Events)-1].Operator != "ana" {
		t.Errorf("DeploymentDetail: %+v %v", d, err)
	}
	var dnf *devices.DeploymentNotFoundError
	if _, err := c.DeploymentDetail(ctx, 99); !errors.As(err, &dnf) {
		t.Errorf("DeploymentDetail of none: %v", err)
	}
	if _, err := c.Approve(ctx, 99, "", r.clock.Now()); !errors.As(err, &dnf) {
		t.Errorf("Approve of none: %v", err)
	}
	if ds, err := c.Deployments(ctx); err != nil || len(ds) != 1 || ds[0].State != devices.Aborted {
		t.Errorf("Deployments: %+v %v", ds, err)
	}
	if err := c.Evaluate(ctx, r.clock.Now()); err != nil {
		t.Error(err)
	}
}
