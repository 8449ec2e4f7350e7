package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/transport/checkin"
	"github.com/ferry-update/ferry/transport/stick"
)

// stickReports reads the reports on the stick at dir.
func stickReports(t *testing.T, dir string) []stick.ReportFile {
	t.Helper()
	s, err := stick.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	reps, err := s.Reports()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reps {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	return reps
}

// An A/B install from a stick is reported pending: nothing is decided
// until boot-check. boot-check then rewrites the same report with the
// outcome while the stick is still in.
func TestStickReportPendingUntilBootCheck(t *testing.T) {
	e := newTrustEnv(t)
	e.cfg.DeviceID = "gw-0020"
	st, _ := mirrorFor(t, e.bundle(bundleSpec{version: "1.0.0", rootfs: "new system"}))
	dir := makeStick(t, st)
	e.cfg.Stick.MountPoints = []string{dir}
	s, err := stick.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	a := e.open()
	res, rep, err := a.InstallStick(context.Background(), s)
	a.Close()
	if err != nil || res == nil || rep.Result != stick.ResultPending || rep.VersionAfter != "" {
		t.Fatalf("install: %+v, %+v, %v; want a pending report", res, rep, err)
	}
	reps := stickReports(t, dir)
	if len(reps) != 1 || reps[0].Report.Result != stick.ResultPending {
		t.Fatalf("on the stick before boot-check: %+v", reps)
	}
	file := reps[0].Name

	if err := e.bootCheck(); err != nil { // the simulation booted slot b
		t.Fatal(err)
	}
	reps = stickReports(t, dir)
	if len(reps) != 1 || reps[0].Name != file {
		t.Fatalf("reports after boot-check: %+v, want %s rewritten", reps, file)
	}
	if r := reps[0].Report; r.Result != stick.ResultSuccess || r.VersionAfter != "1.0.0" || r.BundleVersion != "1.0.0" || r.DeviceID != "gw-0020" {
		t.Errorf("report after boot-check: %+v", r)
	}
	if _, err := os.Stat(e.path("state/" + stickReportFile)); !os.IsNotExist(err) {
		t.Errorf("the pending report is still kept: %v", err)
	}
}

// A failed health check rolls back; the stick was taken out meanwhile, so
// the outcome goes onto the next stick put in.
func TestStickReportDecidedWithoutStick(t *testing.T) {
	e := newTrustEnv(t)
	e.cfg.DeviceID = "gw-0021"
	e.cfg.Health.Commands = []string{"exit 3"}
	st, _ := mirrorFor(t, e.bundle(bundleSpec{version: "1.0.0", rootfs: "bad system"}))
	dir := makeStick(t, st)
	s, err := stick.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	a := e.open()
	if _, rep, err := a.InstallStick(context.Background(), s); err != nil || rep.Result != stick.ResultPending {
		t.Fatalf("install: %+v, %v", rep, err)
	}
	a.Close()
	taken := filepath.Join(t.TempDir(), "taken-out")
	if err := os.Rename(dir, taken); err != nil { // the stick is taken out
		t.Fatal(err)
	}
	e.cfg.Stick.MountPoints = []string{dir}
	if err := e.bootCheck(); err == nil {
		t.Fatal("boot-check passed a failing health check")
	}
	if reps := stickReports(t, taken); len(reps) != 1 || reps[0].Report.Result != stick.ResultPending {
		t.Fatalf("the stick taken out: %+v", reps)
	}

	next := makeStick(t, st) // another stick, same bundle
	s2, err := stick.OpenDir(next)
	if err != nil {
		t.Fatal(err)
	}
	a = e.open()
	defer a.Close()
	if _, _, err := a.InstallStick(context.Background(), s2); err != nil {
		t.Logf("second install: %v", err)
	}
	var rolled *stick.Report
	for _, r := range stickReports(t, next) {
		if r.Report.Result == stick.ResultRolledBack {
			rolled = r.Report
		}
	}
	if rolled == nil || rolled.DeviceID != "gw-0021" || rolled.BundleVersion != "1.0.0" || !strings.Contains(rolled.Error, "health check failed") {
		t.Errorf("the next stick lacks the rolled-back report: %+v", stickReports(t, next))
	}
}

// A skipped report says why, and what the stick held.
func TestStickReportSkippedSaysWhy(t *testing.T) {
	e := newTrustEnv(t)
	e.cfg.DeviceID = "gw-0022"
	st, _ := mirrorFor(t, e.bundle(bundleSpec{version: "3.0.0", rootfs: "x", deviceTypes: []string{"other-board"}}))
	dir := makeStick(t, st)
	s, err := stick.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	a := e.open()
	defer a.Close()
	res, rep, err := a.InstallStick(context.Background(), s)
	if err != nil || res != nil {
		t.Fatalf("%+v, %v", res, err)
	}
	if rep.Result != stick.ResultSkipped || rep.Reason != "no bundle on the stick fits device type "+e.cfg.DeviceType ||
		len(rep.Offered) != 1 || rep.Offered[0] != "sim-os 3.0.0 (other-board)" {
		t.Errorf("report %+v", rep)
	}
	if reps := stickReports(t, dir); len(reps) != 1 || reps[0].Report.Reason != rep.Reason || len(reps[0].Report.Offered) != 1 {
		t.Errorf("on the stick: %+v", reps)
	}
}

// A device that knows its mirror puts its signed check-in into the
// decided stick report, for the mirror to judge and count ('ferry mirror
// ingest'); the pending report goes without one.
func TestStickReportCarriesSignedCheckin(t *testing.T) {
	e := newTrustEnv(t)
	e.cfg.DeviceID = "gw-0022"
	st, mc := mirrorFor(t, e.bundle(bundleSpec{version: "1.0.0", rootfs: "new system"}))
	e.cfg.Mirror = MirrorConfig{TUFRoot: mc.TUFRoot}
	dir := makeStick(t, st)
	e.cfg.Stick.MountPoints = []string{dir}
	s, err := stick.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	a := e.open()
	_, rep, err := a.InstallStick(context.Background(), s)
	a.Close()
	if err != nil || rep.Result != stick.ResultPending || len(rep.Checkin) != 0 {
		t.Fatalf("install: %+v, %v; want a pending report without a check-in", rep, err)
	}
	if err := e.bootCheck(); err != nil {
		t.Fatal(err)
	}
	reps := stickReports(t, dir)
	if len(reps) != 1 || reps[0].Report.Result != stick.ResultSuccess {
		t.Fatalf("reports: %+v", reps)
	}
	inv, err := checkin.OpenSigned(reps[0].Report.Checkin)
	if err != nil {
		t.Fatalf("the report's check-in: %v", err)
	}
	ids, err := st.MirrorIDs()
	if err != nil {
		t.Fatal(err)
	}
	if inv.Mirror != ids[0] || inv.Name != "gw-0022" || inv.Result != "committed" || inv.Version != "1.0.0" ||
		inv.Install == nil || inv.Install.Version != "1.0.0" {
		t.Fatalf("check-in %+v", inv)
	}
}
