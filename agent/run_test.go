package agent

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/mirror/server"
	"github.com/ferry-update/ferry/transport/stick"
	"github.com/ferry-update/ferry/verify"
)

func TestRootRotationIsKept(t *testing.T) {
	e := newTrustEnv(t)
	s2 := e.next(e.root1, func(s *verify.RootSigned) { s.AddKey(verify.RoleRelease, e.rel3.PublicKey()) })
	r2 := e.sign(s2, e.rootKey)
	e.write("2.root.json", string(r2.Bytes()))
	if err := e.do(func(a *Agent) error {
		_, err := a.ApplyRootFiles([]string{e.path("2.root.json")})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// Stored before use, and trusted from then on.
	a := e.open()
	if v := a.Root().Version(); v != 2 {
		t.Fatalf("root v%d after the update, want v2", v)
	}
	if st, _ := a.Status(); st.Trust == nil || st.Trust.RootVersion != 2 || st.Trust.Keys != 3 {
		t.Errorf("status trust %+v", st.Trust)
	}
	if _, err := a.ApplyRoots([][]byte{e.root1.Bytes()}); err != nil {
		t.Errorf("an older root offered again: %v (want it ignored)", err)
	}
	b := e.bundle(bundleSpec{version: "1.0.0", rootfs: "new", signer: e.rel3})
	a.Close()
	if err := e.install(b); err != nil {
		t.Fatalf("bundle signed by a key of root v2: %v", err)
	}
}

func TestRunnerMirror(t *testing.T) {
	e := newTrustEnv(t)
	st, mc := mirrorFor(t, e.bundle(bundleSpec{version: "1.0.0", rootfs: "system from the mirror"}))
	db, err := devices.OpenDir(st.Dir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	srv := httptest.NewServer(server.NewHandler(st, server.HandlerOptions{Devices: db}))
	defer srv.Close()
	mc.URL = srv.URL
	e.cfg.Mirror = mc
	e.cfg.DeviceID = "gw-0001"
	// The factory line enrolled the device's key (ferry-agent identity).
	id, err := LoadIdentity(e.cfg)
	if err != nil || !id.Created {
		t.Fatalf("identity %+v, %v", id, err)
	}
	es, err := devices.ParseEnrollments([]byte(id.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Enroll(context.Background(), es, "test", time.Now()); err != nil {
		t.Fatal(err)
	}

	r := &Runner{Config: e.cfg}
	out, err := r.Once(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if out.Source != "mirror" || !out.Rebooting || out.Result == nil || out.Result.Version != "1.0.0" {
		t.Fatalf("outcome %+v", out)
	}
	if got := e.read("slot-b.img"); got != "system from the mirror" {
		t.Errorf("slot b holds %q", got)
	}
	if got := e.read("reboots"); got != "reboot\n" {
		t.Errorf("reboots %q", got)
	}
	recs, err := db.Records(context.Background())
	if err != nil || len(recs) != 1 {
		t.Fatalf("devices %+v, %v", recs, err)
	}
	inv := recs[0].Inventory
	if recs[0].ID != id.ID || recs[0].Checkins != 1 || inv == nil || inv.Name != "gw-0001" || inv.Result != "rebooting" || !inv.Slot.Trial || inv.FreeBytes == 0 {
		t.Errorf("record %+v, inventory %+v", recs[0], inv)
	}
	if legacy, err := devices.ListDir(st.Dir()); err != nil || len(legacy) != 0 {
		t.Errorf("legacy devices %+v, %v", legacy, err)
	}
}

func TestRunnerBacksOffWhenMirrorIsDown(t *testing.T) {
	e := newTrustEnv(t)
	srv := httptest.NewServer(nil)
	srv.Close() // nothing listens there any more
	_, mc := mirrorFor(t)
	e.cfg.Mirror = MirrorConfig{URL: srv.URL, TUFRoot: mc.TUFRoot, Interval: Duration{time.Minute}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var waits []time.Duration
	r := &Runner{Config: e.cfg, Sleep: func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d)
		if len(waits) == 6 {
			cancel()
			return ctx.Err()
		}
		return nil
	}}
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{1, 2, 4, 8, 10, 10}
	if len(waits) != len(want) || r.Failures() != 6 {
		t.Fatalf("%d polls, %d failures, waits %v", len(waits), r.Failures(), waits)
	}
	for i, w := range want {
		if waits[i] != w*time.Minute {
			t.Errorf("wait %d is %v, want %v", i+1, waits[i], w*time.Minute)
		}
	}
}

// makeStick copies a mirror store into DIR/ferry/, as a stick holds it.
func makeStick(t *testing.T, st *mirror.Store) string {
	t.Helper()
	root := t.TempDir()
	src := st.Dir()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if strings.HasPrefix(rel, "keys") {
			return filepath.SkipDir
		}
		dst := filepath.Join(root, stick.Dir, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func TestRunnerStick(t *testing.T) {
	e := newTrustEnv(t)
	e.cfg.DeviceID = "gw-0002"
	// The bundle is signed by a key only root v2 (on the stick) trusts.
	st, _ := mirrorFor(t,
		e.bundle(bundleSpec{version: "1.0.0", rootfs: "old"}),
		e.bundle(bundleSpec{version: "2.0.0", rootfs: "system from the stick", signer: e.rel3}),
		e.bundle(bundleSpec{version: "3.0.0", rootfs: "other board", deviceTypes: []string{"other-board"}}))
	dir := makeStick(t, st)
	s2 := e.next(e.root1, func(s *verify.RootSigned) { s.AddKey(verify.RoleRelease, e.rel3.PublicKey()) })
	os.MkdirAll(filepath.Join(dir, "ferry", "roots"), 0o755)
	os.WriteFile(filepath.Join(dir, "ferry", "roots", "2.root.json"), e.sign(s2, e.rootKey).Bytes(), 0o644)

	r := &Runner{Config: e.cfg, FindStick: func() (*stick.Stick, error) { return stick.OpenDir(dir) }}
	out, err := r.Once(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if out.Source != "stick" || !out.Rebooting || out.Report == nil {
		t.Fatalf("outcome %+v", out)
	}
	if got := e.read("slot-b.img"); got != "system from the stick" {
		t.Errorf("slot b holds %q", got)
	}
	s, err := stick.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	reps, err := s.Reports()
	if err != nil || len(reps) != 1 || reps[0].Report == nil {
		t.Fatalf("reports %+v, %v", reps, err)
	}
	rep := reps[0].Report
	if rep.DeviceID != "gw-0002" || rep.Result != stick.ResultPending || rep.BundleVersion != "2.0.0" || rep.VersionAfter != "" || rep.VersionBefore != "" || rep.Finished.IsZero() {
		t.Errorf("report %+v", rep)
	}
	b, _ := os.ReadFile(e.path("state/root.json"))
	if r, err := verify.ParseRoot(b); err != nil || r.Version() != 2 {
		t.Errorf("root v2 from the stick was not kept: %v", err)
	}
}

func TestRunnerStickRefusedReport(t *testing.T) {
	e := newTrustEnv(t)
	e.cfg.DeviceID = "gw-0003"
	st, _ := mirrorFor(t, e.bundle(bundleSpec{version: "1.0.0", rootfs: "x", signer: e.rel3}))
	dir := makeStick(t, st)
	s, err := stick.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	a := e.open()
	_, rep, err := a.InstallStick(context.Background(), s)
	var re *RefusedError
	if !errors.As(err, &re) || rep.Result != stick.ResultFailure || !strings.Contains(rep.Error, "0 valid signature") {
		t.Fatalf("err %v, report %+v", err, rep)
	}
	if reps, _ := s.Reports(); len(reps) != 1 {
		t.Errorf("%d reports on the stick", len(reps))
	}
}
