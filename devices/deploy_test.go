package devices

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-update/ferry/transport/checkin"
)

const testDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000001"

// fleet is a test fleet: enrolled devices on a store, each with its
// next counter.
type fleet struct {
	t    *testing.T
	db   *DB
	devs []*device
	next map[string]uint64
}

func newFleet(t *testing.T, db *DB, n int) *fleet {
	t.Helper()
	f := &fleet{t: t, db: db, next: map[string]uint64{}}
	var es []Enrollment
	for i := range n {
		dv := newDevice(byte(10 + i))
		dv.inv.Name = fmt.Sprintf("gw-%02d", i+1)
		f.devs = append(f.devs, dv)
		es = append(es, Enrollment{PublicKey: dv.inv.PublicKey, Name: dv.inv.Name, DeviceType: "board-a"})
	}
	if _, err := db.Enroll(context.Background(), es, "file:test", t0); err != nil {
		t.Fatal(err)
	}
	return f
}

// report makes dv report, with what change sets, at at.
func (f *fleet) report(dv *device, at time.Time, change func(inv *checkin.Inventory)) {
	f.t.Helper()
	f.next[dv.inv.Device]++
	inv := dv.report(f.next[dv.inv.Device])
	inv.Time = at
	if change != nil {
		change(inv)
	}
	if out, err := f.db.Accept(context.Background(), inv, at, "10.0.0.1"); err != nil || out != Recorded {
		f.t.Fatalf("report of %s: %v %v", inv.Name, out, err)
	}
}

// installed reports an install of the assignment a ended with result.
func installed(a *Assignment, result, msg string) func(inv *checkin.Inventory) {
	return func(inv *checkin.Inventory) {
		inv.Result, inv.Error = result, msg
		inv.Install = &checkin.Install{Bundle: a.Bundle, Version: a.Version, Deployment: a.Deployment, Assignment: a.Counter}
		if result == "committed" {
			inv.Bundle, inv.Version = a.Bundle, a.Version
		}
	}
}

func (f *fleet) assignment(dv *device, at time.Time) *Assignment {
	f.t.Helper()
	a, err := f.db.AssignmentFor(context.Background(), dv.inv.Device, at)
	if err != nil {
		f.t.Fatal(err)
	}
	return a
}

// assigned returns the devices that have an assignment at at.
func (f *fleet) assigned(at time.Time) []*device {
	var out []*device
	for _, dv := range f.devs {
		if f.assignment(dv, at) != nil {
			out = append(out, dv)
		}
	}
	return out
}

func (f *fleet) detail(id int64) *DeploymentDetail {
	f.t.Helper()
	d, err := f.db.DeploymentDetail(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

func (f *fleet) group() {
	f.t.Helper()
	var ids []string
	for _, dv := range f.devs {
		ids = append(ids, dv.inv.Device[:12])
	}
	if _, err := f.db.PutGroup(context.Background(), Group{Name: "line-1", Kind: Static, Devices: ids}, t0); err != nil {
		f.t.Fatal(err)
	}
}

func spec(phases string) DeploymentSpec {
	ps, err := ParsePhases(phases, time.Hour, Amount{})
	if err != nil {
		panic(err)
	}
	return DeploymentSpec{Bundle: "gateway", Version: "2.0.0", Digest: testDigest, Group: "line-1", Phases: ps, CreatedBy: "alice"}
}

// TestCanaryFailurePauses is the rollout of the demo: a canary, then
// everyone. The canary's health check fails: the deployment pauses by
// itself with the reason, and nobody else is assigned anything. After a
// fix it resumes: the canary tries again, a stale report of its first
// try does not count, its success starts the soak, and only once the
// soak is over does the rest of the fleet get the bundle.
func TestCanaryFailurePauses(t *testing.T) { eachBackend(t, testCanaryFailurePauses) }

func testCanaryFailurePauses(t *testing.T, newDB func(*testing.T) *DB) {
	ctx := context.Background()
	f := newFleet(t, newDB(t), 3)
	f.group()
	d, err := f.db.CreateDeployment(ctx, spec("1,100%"), t0)
	if err != nil {
		t.Fatal(err)
	}
	if d.State != Running || d.Devices != 3 || d.Progress[0].Assigned != 1 || d.Progress[1].Waiting != 2 {
		t.Fatalf("new deployment %+v", d)
	}
	got := f.assigned(t0)
	if len(got) != 1 {
		t.Fatalf("%d devices assigned, want the canary alone", len(got))
	}
	canary := got[0]
	a := f.assignment(canary, t0)
	if a.Bundle != "gateway" || a.Version != "2.0.0" || a.Digest != testDigest || a.Deployment != d.ID || a.Counter != uint64(t0.UnixMilli()) {
		t.Fatalf("assignment %+v", a)
	}

	// Installing: not a result yet.
	f.report(canary, t0.Add(time.Minute), installed(a, "rebooting", ""))
	// The health check fails: rolled back.
	f.report(canary, t0.Add(2*time.Minute), installed(a, "rolled-back", "health check failed: exit status 1"))
	dd := f.detail(d.ID)
	if dd.State != Paused || !strings.Contains(dd.Reason, "1 of 1 devices failed, more than the 0 allowed") || !strings.Contains(dd.Reason, "health check failed") {
		t.Fatalf("after the canary failed: %s %q", dd.State, dd.Reason)
	}
	if n := len(f.assigned(t0.Add(3 * time.Hour))); n != 0 {
		t.Fatalf("%d devices assigned while paused", n)
	}
	if dd.Events[len(dd.Events)-1].Kind != "auto-paused" {
		t.Fatalf("events %+v", dd.Events)
	}

	// Resume: the canary is assigned again, with a higher counter.
	t1 := t0.Add(time.Hour)
	if _, err := f.db.Resume(ctx, d.ID, "bob", t1); err != nil {
		t.Fatal(err)
	}
	a2 := f.assignment(canary, t1)
	if a2 == nil || a2.Counter <= a.Counter {
		t.Fatalf("after resume: %+v", a2)
	}
	// Its first try's result, reported again, does not count.
	f.report(canary, t1.Add(time.Minute), installed(a, "rolled-back", "health check failed"))
	if dd := f.detail(d.ID); dd.State != Running || dd.Progress[0].Failed != 0 {
		t.Fatalf("a stale report counted: %s %+v", dd.State, dd.Progress[0])
	}
	f.report(canary, t1.Add(2*time.Minute), installed(a2, "committed", ""))
	if n := len(f.assigned(t1.Add(30 * time.Minute))); n != 1 {
		t.Fatalf("%d assigned during the soak, want the canary", n)
	}
	// The soak (1h from the canary's report) is over: everyone.
	t2 := t1.Add(2*time.Minute + time.Hour)
	if n := len(f.assigned(t2)); n != 3 {
		t.Fatalf("%d assigned after the soak, want 3", n)
	}
	for _, dv := range f.devs {
		if dv != canary {
			f.report(dv, t2.Add(time.Minute), installed(f.assignment(dv, t2), "committed", ""))
		}
	}
	if err := f.db.Evaluate(ctx, t2.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	dd = f.detail(d.ID)
	if dd.State != Completed || dd.Progress[1].Succeeded != 2 || dd.Progress[0].Succeeded != 1 {
		t.Fatalf("end: %s %+v", dd.State, dd.Progress)
	}
	kinds := []string{}
	for _, e := range dd.Events {
		kinds = append(kinds, e.Kind)
	}
	if want := []string{"created", "device-failed", "auto-paused", "resumed", "phase", "completed"}; !reflect.DeepEqual(kinds, want) {
		t.Fatalf("events %v, want %v", kinds, want)
	}
	// Completed: devices keep their assignment (they run it).
	if f.assignment(canary, t2.Add(3*time.Hour)) == nil {
		t.Fatal("no assignment after completion")
	}
}

// TestThresholds: a phase allowed some failures goes on with them; the
// failure one beyond pauses.
func TestThresholds(t *testing.T) { eachBackend(t, testThresholds) }

func testThresholds(t *testing.T, newDB func(*testing.T) *DB) {
	ctx := context.Background()
	f := newFleet(t, newDB(t), 4)
	f.group()
	s := spec("50%:fail=1:soak=0s,100%:fail=0")
	d, err := f.db.CreateDeployment(ctx, s, t0)
	if err != nil {
		t.Fatal(err)
	}
	first := f.assigned(t0)
	if len(first) != 2 {
		t.Fatalf("%d assigned in phase 1, want 2", len(first))
	}
	f.report(first[0], t0, installed(f.assignment(first[0], t0), "failed", "no space left"))
	f.report(first[1], t0, installed(f.assignment(first[1], t0), "committed", ""))
	if dd := f.detail(d.ID); dd.State != Running || dd.Phase != 1 {
		t.Fatalf("one failure of one allowed: %s phase %d %q", dd.State, dd.Phase, dd.Reason)
	}
	var second []*device
	for _, dv := range f.assigned(t0) {
		if dv != first[0] && dv != first[1] {
			second = append(second, dv)
		}
	}
	if len(second) != 2 {
		t.Fatalf("phase 2 assigned %d", len(second))
	}
	// The failed device of phase 1 is not assigned again by itself.
	if f.assignment(first[0], t0) != nil {
		t.Fatal("a failed device is assigned again without a resume")
	}
	f.report(second[0], t0, installed(f.assignment(second[0], t0), "refused", "version 2.0.0 is below the installed 3.0.0"))
	if dd := f.detail(d.ID); dd.State != Paused || !strings.Contains(dd.Reason, "phase 2 of 2: 1 of 2 devices failed") {
		t.Fatalf("after a failure in phase 2: %s %q", dd.State, dd.Reason)
	}
}

// TestJudge is the phase logic as a table.
func TestJudge(t *testing.T) {
	min10 := t0.Add(-10 * time.Minute)
	for _, c := range []struct {
		name             string
		soak             time.Duration
		fail             string
		devices, ok, bad int
		doneAt           time.Time
		want             Verdict
	}{
		{"waiting for reports", 0, "0", 10, 5, 0, time.Time{}, Wait},
		{"all in, no soak", 0, "0", 10, 10, 0, t0, Advance},
		{"all in, soaking", time.Hour, "0", 10, 10, 0, min10, Wait},
		{"all in, soak over", 5 * time.Minute, "0", 10, 10, 0, min10, Advance},
		{"soak ends exactly now", 10 * time.Minute, "0", 10, 10, 0, min10, Advance},
		{"one failure, none allowed", time.Hour, "0", 10, 1, 1, time.Time{}, Halt},
		{"failures allowed, all in", 0, "2", 10, 8, 2, t0, Advance},
		{"one beyond the count", 0, "2", 10, 3, 3, time.Time{}, Halt},
		{"10% of 10 is 1", 0, "10%", 10, 9, 1, t0, Advance},
		{"10% of 9 rounds down to 0", 0, "10%", 9, 8, 1, t0, Halt},
		{"100% never halts", 0, "100%", 3, 0, 3, t0, Advance},
		{"empty phase passes", time.Hour, "0", 0, 0, 0, time.Time{}, Advance},
	} {
		t.Run(c.name, func(t *testing.T) {
			fail, err := ParseAmount(c.fail)
			if err != nil {
				t.Fatal(err)
			}
			p := Phase{Size: Amount{N: 100, Percent: true}, Soak: c.soak, MaxFailures: fail}
			if got := p.Judge(c.devices, c.ok, c.bad, c.doneAt, t0); got != c.want {
				t.Fatalf("Judge = %v, want %v", got, c.want)
			}
		})
	}
}

// TestPhaseSizes: how a fleet splits into phases.
func TestPhaseSizes(t *testing.T) {
	for _, c := range []struct {
		phases string
		n      int
		want   []int
	}{
		{"1,10%,50%,100%", 100, []int{1, 9, 40, 50}},
		{"1,10%,50%,100%", 3, []int{1, 0, 1, 1}},
		{"1,10%,50%,100%", 1, []int{1, 0, 0, 0}},
		{"5,50%", 4, []int{4, 0}},
		{"10%,20%", 10, []int{1, 9}}, // the last phase takes the rest
		{"100%", 7, []int{7}},
		{"2,3,100%", 10, []int{2, 1, 7}},
	} {
		ps, err := ParsePhases(c.phases, 0, Amount{})
		if err != nil {
			t.Fatal(err)
		}
		if got := PhaseSizes(ps, c.n); !reflect.DeepEqual(got, c.want) {
			t.Errorf("PhaseSizes(%s, %d) = %v, want %v", c.phases, c.n, got, c.want)
		}
	}
}

func TestParsePhases(t *testing.T) {
	ps, err := ParsePhases("1:soak=2h:fail=0, 10%, 100%:fail=5%", 30*time.Minute, Amount{N: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := []Phase{
		{Size: Amount{N: 1}, Soak: 2 * time.Hour, MaxFailures: Amount{}},
		{Size: Amount{N: 10, Percent: true}, Soak: 30 * time.Minute, MaxFailures: Amount{N: 1}},
		{Size: Amount{N: 100, Percent: true}, Soak: 30 * time.Minute, MaxFailures: Amount{N: 5, Percent: true}},
	}
	if !reflect.DeepEqual(ps, want) {
		t.Fatalf("got %+v", ps)
	}
	for _, bad := range []string{"", "0", "1,abc", "101%", "1:soak=-1h", "1:soak=x", "1:fail=x", "1:colour=red", "50%,10%", "5,3",
		strings.Repeat("1,", MaxPhases) + "100%"} {
		var se *SpecError
		if _, err := ParsePhases(bad, 0, Amount{}); !errors.As(err, &se) {
			t.Errorf("ParsePhases(%q) = %v, want a *SpecError", bad, err)
		}
	}
}

// TestApproval: on a site that requires it, a deployment waits for a
// second operator; its maker cannot approve it.
func TestApproval(t *testing.T) { eachBackend(t, testApproval) }

func testApproval(t *testing.T, newDB func(*testing.T) *DB) {
	ctx := context.Background()
	f := newFleet(t, newDB(t), 2)
	f.group()
	if err := f.db.SetSettings(ctx, Settings{RequireApproval: true}); err != nil {
		t.Fatal(err)
	}
	s := spec("1,100%")
	s.CreatedBy = ""
	var se *SpecError
	if _, err := f.db.CreateDeployment(ctx, s, t0); !errors.As(err, &se) {
		t.Fatalf("no operator named: %v", err)
	}
	d, err := f.db.CreateDeployment(ctx, spec("1,100%"), t0)
	if err != nil {
		t.Fatal(err)
	}
	if d.State != AwaitingApproval || len(f.assigned(t0)) != 0 {
		t.Fatalf("state %s, %d assigned", d.State, len(f.assigned(t0)))
	}
	var ae *ApprovalError
	if _, err := f.db.Approve(ctx, d.ID, "Alice", t0); !errors.As(err, &ae) {
		t.Fatalf("the maker approved: %v", err)
	}
	var ste *StateError
	if _, err := f.db.Resume(ctx, d.ID, "bob", t0); !errors.As(err, &ste) {
		t.Fatalf("resume before approval: %v", err)
	}
	if d, err = f.db.Approve(ctx, d.ID, "bob", t0); err != nil || d.State != Running || d.ApprovedBy != "bob" {
		t.Fatalf("approve: %+v %v", d, err)
	}
	if n := len(f.assigned(t0)); n != 1 {
		t.Fatalf("%d assigned after approval", n)
	}
	if _, err := f.db.Approve(ctx, d.ID, "carol", t0); !errors.As(err, &ste) {
		t.Fatalf("approved twice: %v", err)
	}
}

// TestOperatorActions: pause, resume and abort, and what each allows.
func TestOperatorActions(t *testing.T) { eachBackend(t, testOperatorActions) }

func testOperatorActions(t *testing.T, newDB func(*testing.T) *DB) {
	ctx := context.Background()
	f := newFleet(t, newDB(t), 2)
	f.group()
	d, err := f.db.CreateDeployment(ctx, spec("100%"), t0)
	if err != nil {
		t.Fatal(err)
	}
	if d, err = f.db.Pause(ctx, d.ID, "alice", "maintenance window", t0); err != nil || d.State != Paused || d.Reason != "paused by alice: maintenance window" {
		t.Fatalf("pause: %+v %v", d, err)
	}
	if n := len(f.assigned(t0)); n != 0 {
		t.Fatalf("%d assigned while paused", n)
	}
	var ste *StateError
	if _, err := f.db.Pause(ctx, d.ID, "alice", "", t0); !errors.As(err, &ste) {
		t.Fatalf("paused twice: %v", err)
	}
	if d, err = f.db.Resume(ctx, d.ID, "alice", t0); err != nil || d.State != Running {
		t.Fatalf("resume: %+v %v", d, err)
	}
	if d, err = f.db.Abort(ctx, d.ID, "alice", "wrong bundle", t0); err != nil || d.State != Aborted {
		t.Fatalf("abort: %+v %v", d, err)
	}
	if n := len(f.assigned(t0)); n != 0 {
		t.Fatalf("%d assigned after the abort", n)
	}
	for _, op := range []func() error{
		func() error { _, err := f.db.Resume(ctx, d.ID, "alice", t0); return err },
		func() error { _, err := f.db.Abort(ctx, d.ID, "alice", "", t0); return err },
	} {
		if err := op(); !errors.As(err, &ste) {
			t.Fatalf("after the abort: %v", err)
		}
	}
	var nf *DeploymentNotFoundError
	if _, err := f.db.Pause(ctx, 999, "alice", "", t0); !errors.As(err, &nf) {
		t.Fatalf("no such deployment: %v", err)
	}
	// A newer deployment to the same devices takes over.
	d2, err := f.db.CreateDeployment(ctx, spec("100%"), t0)
	if err != nil {
		t.Fatal(err)
	}
	if a := f.assignment(f.devs[0], t0); a == nil || a.Deployment != d2.ID {
		t.Fatalf("assignment %+v, want deployment %d", a, d2.ID)
	}
	// A device already running the version succeeds at its next report.
	dv := f.devs[1]
	f.report(dv, t0, func(inv *checkin.Inventory) { inv.Bundle, inv.Version = "gateway", "2.0.0" })
	if dd := f.detail(d2.ID); dd.Progress[0].Succeeded != 1 {
		t.Fatalf("progress %+v", dd.Progress)
	}
}

// TestGroups: static and dynamic groups, and labels.
func TestGroups(t *testing.T) { eachBackend(t, testGroups) }

func testGroups(t *testing.T, newDB func(*testing.T) *DB) {
	ctx := context.Background()
	f := newFleet(t, newDB(t), 3)
	if _, err := f.db.SetLabels(ctx, f.devs[0].inv.Device[:10], map[string]string{"site": "plant-2", "line": "3"}, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.SetLabels(ctx, f.devs[1].inv.Device, map[string]string{"site": "plant-2"}, t0); err != nil {
		t.Fatal(err)
	}
	var le *LabelError
	if _, err := f.db.SetLabels(ctx, f.devs[1].inv.Device, map[string]string{"Site!": "x"}, t0); !errors.As(err, &le) {
		t.Fatalf("bad label key: %v", err)
	}
	f.report(f.devs[2], t0, func(inv *checkin.Inventory) {
		inv.Components = []checkin.Component{{Name: "sim-os", Version: "1.4.0", Slot: "a"}}
	})
	g, err := f.db.PutGroup(ctx, Group{Name: "plant-2", Kind: Dynamic, Filter: `site = plant-2 AND NOT line = "3"`}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if g.Filter != `site = plant-2 and not line = 3` {
		t.Fatalf("canonical filter %q", g.Filter)
	}
	names := func(name string) []string {
		_, recs, err := f.db.GroupMembers(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range recs {
			out = append(out, r.Name)
		}
		return out
	}
	if got := names("plant-2"); !reflect.DeepEqual(got, []string{"gw-02"}) {
		t.Fatalf("plant-2: %v", got)
	}
	if _, err := f.db.PutGroup(ctx, Group{Name: "old-os", Kind: Dynamic, Filter: `component.sim-os < 2.0.0`}, t0); err != nil {
		t.Fatal(err)
	}
	if got := names("old-os"); !reflect.DeepEqual(got, []string{"gw-03"}) {
		t.Fatalf("old-os: %v", got)
	}
	if _, err := f.db.PutGroup(ctx, Group{Name: "two", Kind: Static, Devices: []string{f.devs[0].inv.Device[:8], f.devs[2].inv.Device}}, t0); err != nil {
		t.Fatal(err)
	}
	if got := names("two"); len(got) != 2 {
		t.Fatalf("two: %v", got)
	}
	// A revoked device leaves every group.
	if _, err := f.db.SetStatus(ctx, f.devs[2].inv.Device, Revoked, t0); err != nil {
		t.Fatal(err)
	}
	if got := names("two"); !reflect.DeepEqual(got, []string{"gw-01"}) {
		t.Fatalf("two after a revoke: %v", got)
	}
	gs, err := f.db.Groups(ctx)
	if err != nil || len(gs) != 3 {
		t.Fatalf("groups %v %v", gs, err)
	}
	var se *SpecError
	var fe *FilterError
	var nf *NotFoundError
	var gnf *GroupNotFoundError
	for _, c := range []struct {
		g    Group
		want any
	}{
		{Group{Name: "bad name!", Kind: Static}, &se},
		{Group{Name: "x", Kind: "sometimes"}, &se},
		{Group{Name: "x", Kind: Dynamic, Filter: "site = "}, &fe},
		{Group{Name: "x", Kind: Static, Devices: []string{"ffffffffff"}}, &nf},
		{Group{Name: "x", Kind: Static, Filter: "site = a"}, &se},
	} {
		if _, err := f.db.PutGroup(ctx, c.g, t0); !errors.As(err, c.want) {
			t.Errorf("PutGroup(%+v) = %v, want %T", c.g, err, c.want)
		}
	}
	if err := f.db.DeleteGroup(ctx, "two"); err != nil {
		t.Fatal(err)
	}
	if err := f.db.DeleteGroup(ctx, "two"); !errors.As(err, &gnf) {
		t.Fatalf("delete twice: %v", err)
	}
	if _, err := f.db.CreateDeployment(ctx, DeploymentSpec{Bundle: "gateway", Version: "2.0.0", Digest: testDigest, Group: "two", Phases: spec("100%").Phases}, t0); !errors.As(err, &gnf) {
		t.Fatalf("deploy to a deleted group: %v", err)
	}
	if _, err := f.db.CreateDeployment(ctx, DeploymentSpec{Bundle: "gateway", Version: "2.0.0", Digest: testDigest, Filter: "site = nowhere", Phases: spec("100%").Phases}, t0); !errors.As(err, &se) {
		t.Fatalf("deploy to nobody: %v", err)
	}
}

// TestReportCountedOnce: two mirrors on one database take the same
// device's failure reports at once; the failure counts once, and the
// deployment pauses once.
func TestReportCountedOnce(t *testing.T) {
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			ctx := context.Background()
			a, c := twoMirrors(t, b)
			f := newFleet(t, a, 4)
			f.group()
			d, err := a.CreateDeployment(ctx, spec("100%:fail=3"), t0)
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for _, dv := range f.devs {
				asg := f.assignment(dv, t0)
				for counter := uint64(1); counter <= 6; counter++ {
					inv := dv.report(counter)
					installed(asg, "rolled-back", "health check failed")(inv)
					wg.Add(1)
					go func(db *DB) {
						defer wg.Done()
						db.Accept(ctx, inv, t0, "10.0.0.1") // a lower counter after a higher one is refused as replayed
					}([]*DB{a, c}[counter%2])
				}
			}
			wg.Wait()
			dd := f.detail(d.ID)
			failures, pauses := 0, 0
			for _, e := range dd.Events {
				switch e.Kind {
				case "device-failed":
					failures++
				case "auto-paused":
					pauses++
				}
			}
			if dd.Progress[0].Failed != 4 || failures != 4 || pauses != 1 || dd.State != Paused {
				t.Fatalf("%d failed, %d failure events, %d pauses, %s", dd.Progress[0].Failed, failures, pauses, dd.State)
			}
		})
	}
}

// TestDeploymentOnEitherMirror: a deployment made on one mirror is seen
// and steered on the other, which shares its database: paused on one,
// nothing is assigned by either; resumed on the other, the canary is
// assigned by the first; its success, reported to the second, starts the
// next phase for both; aborted on the second, the first assigns nothing.
func TestDeploymentOnEitherMirror(t *testing.T) {
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			ctx := context.Background()
			a, c := twoMirrors(t, b)
			fa := newFleet(t, a, 3)
			fa.group()
			fc := &fleet{t: t, db: c, devs: fa.devs, next: fa.next}
			d, err := a.CreateDeployment(ctx, spec("1:soak=0s,100%"), t0)
			if err != nil {
				t.Fatal(err)
			}
			if ds, err := c.Deployments(ctx); err != nil || len(ds) != 1 || ds[0].ID != d.ID || ds[0].State != Running {
				t.Fatalf("the other mirror lists %+v, %v", ds, err)
			}
			canary := fc.assigned(t0)
			if len(canary) != 1 {
				t.Fatalf("%d devices assigned by the other mirror, want the canary", len(canary))
			}
			if _, err := c.Pause(ctx, d.ID, "bob", "checking", t0); err != nil {
				t.Fatal(err)
			}
			if got := fa.detail(d.ID).State; got != Paused || len(fa.assigned(t0)) != 0 || len(fc.assigned(t0)) != 0 {
				t.Fatalf("paused on one mirror: the other shows %s and assigns %d", got, len(fa.assigned(t0)))
			}
			if _, err := a.Resume(ctx, d.ID, "alice", t0); err != nil {
				t.Fatal(err)
			}
			asg := fa.assignment(canary[0], t0)
			if asg == nil || asg.Deployment != d.ID {
				t.Fatalf("resumed: canary assigned %+v", asg)
			}
			fc.report(canary[0], t0.Add(time.Minute), installed(asg, "committed", ""))
			if n := len(fa.assigned(t0.Add(2 * time.Minute))); n != 3 {
				t.Fatalf("after the canary's success on the other mirror, %d devices assigned, want 3", n)
			}
			if _, err := c.Abort(ctx, d.ID, "bob", "enough", t0.Add(3*time.Minute)); err != nil {
				t.Fatal(err)
			}
			if got := fa.detail(d.ID).State; got != Aborted || len(fa.assigned(t0.Add(4*time.Minute))) != 0 {
				t.Fatalf("aborted on one mirror: the other shows %s", got)
			}
		})
	}
}

// twoMirrors opens two handles on one new database of backend b, as two
// mirrors sharing it do.
func twoMirrors(t *testing.T, b string) (*DB, *DB) {
	t.Helper()
	var open func(string) (*DB, error)
	var where string
	switch b {
	case "sqlite":
		where = filepath.Join(t.TempDir(), File)
		open = Open
	case "postgres":
		where = newPostgresDB(t)
		open = func(url string) (*DB, error) { return OpenPostgres(context.Background(), url) }
	}
	var dbs [2]*DB
	for i := range dbs {
		db, err := open(where)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dbs[i] = db
	}
	return dbs[0], dbs[1]
}

// TestEnrollLabels: a factory list's labels land on the devices it
// enrolls, and a bad label fails the list.
func TestEnrollLabels(t *testing.T) { eachBackend(t, testEnrollLabels) }

func testEnrollLabels(t *testing.T, newDB func(*testing.T) *DB) {
	ctx := context.Background()
	db := newDB(t)
	dv := newDevice(42)
	pemKey := string(pemPublic(t, dv.inv.PublicKey))
	line := func(labels string) []byte {
		return []byte(fmt.Sprintf(`{"publicKey": %q, "name": "gw-42", "labels": %s}`, pemKey, labels))
	}
	var fe *EnrollFileError
	if _, err := ParseEnrollments(line(`{"Bad Key": "x"}`)); !errors.As(err, &fe) {
		t.Fatalf("bad label: %v", err)
	}
	es, err := ParseEnrollments(line(`{"site": "plant-2", "line": "3"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Enroll(ctx, es, "file:test", t0); err != nil {
		t.Fatal(err)
	}
	rec, _ := show(t, db, dv.inv.Device)
	if !reflect.DeepEqual(rec.Labels, map[string]string{"site": "plant-2", "line": "3"}) {
		t.Fatalf("labels %v", rec.Labels)
	}
	recs, err := db.Records(ctx)
	if err != nil || len(recs) != 1 || recs[0].Labels["site"] != "plant-2" {
		t.Fatalf("records %+v %v", recs, err)
	}
}

func pemPublic(t *testing.T, pub ed25519.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}
