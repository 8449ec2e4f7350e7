package fleetload

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/fleet"
	"github.com/ferry-update/ferry/internal/testtool"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/mirror/server"
)

var pgServer testtool.SharedPostgres

func TestMain(m *testing.M) {
	code := m.Run()
	pgServer.Stop()
	os.Exit(code)
}

// TestRunShort runs the load generator's short mode against a real
// mirror server (its default limits) on SQLite and on PostgreSQL: 40
// devices enrolled from the list WriteEnrollList writes, 4 of them in a
// deployment that downloads a 3 MiB bundle in Range requests. Every
// answer must be valid (signed assignments for the 4, none for the
// others, every check-in recorded), no report lost, every started
// download verified, and the deployment must count the installs the
// devices reported. Nothing here is timed.
func TestRunShort(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) { testRunShort(t, backend) })
	}
}

func testRunShort(t *testing.T, backend string) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := mirror.Init(filepath.Join(dir, "m"), testutil.MirrorKey(t))
	if err != nil {
		t.Fatal(err)
	}
	path, _ := testutil.MakeBundle(t, dir, "bench-os", "2.0.0", 3<<20, 0, testutil.NewKey(t, "release"))
	if _, err := st.Add(path); err != nil {
		t.Fatal(err)
	}
	var db *devices.DB
	if backend == "postgres" {
		db, err = devices.OpenPostgres(ctx, pgServer.NewDB(t))
	} else {
		db, err = devices.OpenDir(st.Dir())
	}
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	devs, err := MakeDevices("test", 40, 4)
	if err != nil {
		t.Fatal(err)
	}
	var list bytes.Buffer
	if err := WriteEnrollList(&list, devs); err != nil {
		t.Fatal(err)
	}
	es, err := devices.ParseEnrollments(list.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := db.Enroll(ctx, es, "file:bench.jsonl", now); err != nil {
		t.Fatal(err)
	}
	l := &fleet.Local{DB: db, Store: st}
	phases, err := devices.ParsePhases("100%", 0, devices.Amount{})
	if err != nil {
		t.Fatal(err)
	}
	dep, err := l.Deploy(ctx, "bench-os:2.0.0", devices.DeploymentSpec{Filter: DownloadFilter, Phases: phases, CreatedBy: "bench"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if dep.Devices != 4 {
		t.Fatalf("the deployment reaches %d devices, want the 4 labelled %s", dep.Devices, LabelDownload)
	}
	size0, err := db.Size(ctx)
	if err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- server.Serve(sctx, ln, server.Options{Store: st, Limits: server.DefaultLimits(), Devices: db, Logf: t.Logf})
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	res, err := Run(ctx, Config{URL: "http://" + ln.Addr().String(), TrustedRoot: st.TUFPath("root.json"), StateDir: filepath.Join(dir, "tuf"),
		Devices: devs, Interval: time.Second, Duration: 3 * time.Second, Bundle: "bench-os", Version: "2.0.0", RangeSize: 1 << 20, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Kinds {
		if s.Errors != 0 {
			t.Errorf("%s: %d of %d requests failed or were answered wrong: %s", s.Kind, s.Errors, s.N, strings.Join(s.FirstErrors, "; "))
		}
	}
	if a, c := res.Stat(KindAssignment), res.Stat(KindCheckin); a.N != res.Polls || c.N != res.Polls || res.Polls < len(devs) {
		t.Errorf("%d polls, %d assignment requests, %d check-ins: want one of each per poll, at least one poll per device", res.Polls, a.N, c.N)
	}
	dl := res.Downloads
	if dl.Started != 4 || dl.Failed != 0 || dl.Done+dl.Unfinished != dl.Started {
		t.Errorf("downloads %+v: want 4 started, none failed", dl)
	}

	recs, err := db.Records(ctx)
	if err != nil {
		t.Fatal(err)
	}
	chk := Verify(res, recs)
	if !chk.OK() || chk.Sent != 2*res.Polls || chk.Recorded != chk.Sent || chk.Devices != len(devs) {
		t.Errorf("check %+v: want every one of %d check-ins recorded", chk, 2*res.Polls)
	}
	size1, err := db.Size(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if size1 <= size0 {
		t.Errorf("database size %d after %d check-ins, %d before", size1, chk.Recorded, size0)
	}

	// The deployment counted what the devices reported: each install
	// reported before the run ended succeeded, and no device failed.
	detail, err := db.DeploymentDetail(ctx, dep.ID)
	if err != nil {
		t.Fatal(err)
	}
	succeeded := 0
	for _, tg := range detail.Targets {
		switch tg.State {
		case devices.Succeeded:
			succeeded++
		case devices.Failed:
			t.Errorf("target %s failed: %s %s", tg.Name, tg.Result, tg.Error)
		}
	}
	if succeeded > dl.Done {
		t.Errorf("%d targets succeeded, only %d downloads done", succeeded, dl.Done)
	}

	// Verify notices a lost report.
	recs[0].Checkins--
	if chk := Verify(res, recs); chk.OK() || chk.Lost != 1 {
		t.Errorf("a report missing from the records: check %+v, want 1 lost", chk)
	}
}

// TestSummarize: percentiles by nearest rank.
func TestSummarize(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	s := summarize("x", ds, 2, nil)
	ms := time.Millisecond
	if s.N != 100 || s.Errors != 2 || s.P50 != 50*ms || s.P90 != 90*ms || s.P99 != 99*ms || s.Max != 100*ms || s.Sum != 5050*ms {
		t.Errorf("summarize: %+v", s)
	}
	if s := summarize("x", []time.Duration{7 * ms}, 0, nil); s.P50 != 7*ms || s.P99 != 7*ms {
		t.Errorf("one sample: %+v", s)
	}
	if s := summarize("x", nil, 0, nil); s.N != 0 || s.Max != 0 {
		t.Errorf("none: %+v", s)
	}
}

// TestMakeDevices: the same seed makes the same devices, each with its
// own loopback address; the list enrolls them with their labels.
func TestMakeDevices(t *testing.T) {
	a, err := MakeDevices("s", 300, 2)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := MakeDevices("s", 300, 2)
	addrs := map[string]bool{}
	for i := range a {
		if a[i].ID != b[i].ID || !a[i].Addr.Equal(b[i].Addr) {
			t.Fatalf("device %d differs between two runs", i)
		}
		if !a[i].Addr.IsLoopback() || addrs[a[i].Addr.String()] {
			t.Fatalf("device %d: address %s not loopback or taken", i, a[i].Addr)
		}
		addrs[a[i].Addr.String()] = true
		if a[i].Download != (i == 0 || i == 150) {
			t.Fatalf("device %d: download %v; want devices 0 and 150 (spread evenly)", i, a[i].Download)
		}
	}
	var list bytes.Buffer
	if err := WriteEnrollList(&list, a); err != nil {
		t.Fatal(err)
	}
	es, err := devices.ParseEnrollments(list.Bytes())
	if err != nil || len(es) != 300 || es[0].Labels[Label] != LabelDownload || es[2].Labels[Label] != LabelPoll || es[1].DeviceType != DeviceType {
		t.Fatalf("enrollment list: %d entries, %v", len(es), err)
	}
	for _, bad := range [][2]int{{0, 0}, {5, 6}, {5, -1}} {
		if _, err := MakeDevices("s", bad[0], bad[1]); err == nil {
			t.Errorf("MakeDevices(%d, %d) took it", bad[0], bad[1])
		}
	}
}

// TestExtrapolate: a minute's poll is 2,880 check-ins a device-day; the
// history cap holds 100 per device, reached after 50 minutes.
func TestExtrapolate(t *testing.T) {
	g := Extrapolate(1000, 1000+500*100, 100, time.Minute)
	if g.PerCheckin != 500 || g.CheckinsPerDeviceDay != 2880 || g.Uncapped10kDays != 500*2880*10000 ||
		g.Capped10k != 500*100*10000 || g.CapReachedAfter != 50*time.Minute {
		t.Errorf("extrapolate: %+v", g)
	}
	if g := Extrapolate(0, 10, 0, time.Minute); g != (Growth{}) {
		t.Errorf("no check-ins: %+v", g)
	}
}
