package devices

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-update/ferry/transport/checkin"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// device is a test device: its key and the next report it makes.
type device struct {
	key ed25519.PrivateKey
	inv checkin.Inventory
}

func newDevice(seed byte) *device {
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	key := ed25519.NewKeyFromSeed(s)
	pub := key.Public().(ed25519.PublicKey)
	return &device{key: key, inv: checkin.Inventory{Mirror: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Device: checkin.DeviceID(pub), PublicKey: pub,
		Time: t0, Name: "gw", DeviceType: "board-a", AgentVersion: "v1", Version: "1.0.0", Components: []checkin.Component{}, Result: "idle"}}
}

// report is the device's next report, counter c.
func (dv *device) report(c uint64) *checkin.Inventory {
	inv := dv.inv
	inv.Counter = c
	return &inv
}

func (dv *device) enrollment() Enrollment {
	return Enrollment{PublicKey: dv.inv.PublicKey}
}

func show(t *testing.T, d *DB, id string) (*Record, []Report) {
	t.Helper()
	r, h, err := d.Show(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r, h
}

func reason(err error) checkin.Reason {
	var re *checkin.RefusedError
	if errors.As(err, &re) {
		return re.Reason
	}
	return ""
}

// TestAcceptPendingThenEnrolled: a device the mirror does not know is
// listed as pending and nothing it says is kept; once enrolled its
// reports are recorded (the latest one it sent while pending too, once),
// and a replayed or rolled-back counter changes nothing.
func TestAcceptPendingThenEnrolled(t *testing.T) { eachBackend(t, testAcceptPendingThenEnrolled) }

func testAcceptPendingThenEnrolled(t *testing.T, newDB func(*testing.T) *DB) {
	ctx := context.Background()
	d := newDB(t)
	dv := newDevice(1)
	dv.inv.Name, dv.inv.DeviceType = "gw-7", "board-b"
	if out, err := d.Accept(ctx, dv.report(10), t0, "10.0.0.7"); err != nil || out != Listed {
		t.Fatalf("first contact: %v, %v", out, err)
	}
	rec, hist := show(t, d, dv.inv.Device)
	if rec.Status != Pending || rec.Inventory != nil || len(hist) != 0 || rec.Contacts != 1 || rec.Name != "gw-7" || rec.DeviceType != "board-b" || rec.Counter != 10 {
		t.Fatalf("pending record %+v, history %d", rec, len(hist))
	}
	// While pending: what it says does not change the record; only the
	// mirror's own facts (when, from where) move.
	dv.inv.Name, dv.inv.DeviceType = "evil", "other"
	if out, err := d.Accept(ctx, dv.report(11), t0.Add(time.Minute), "10.0.0.8"); err != nil || out != Listed {
		t.Fatalf("second contact: %v, %v", out, err)
	}
	rec, _ = show(t, d, dv.inv.Device)
	if rec.Name != "gw-7" || rec.DeviceType != "board-b" || rec.Contacts != 2 || rec.Remote != "10.0.0.8" || !rec.LastSeen.Equal(t0.Add(time.Minute)) {
		t.Fatalf("pending record after a second contact: %+v", rec)
	}
	if _, err := d.Accept(ctx, dv.report(11), t0.Add(2*time.Minute), "x"); reason(err) != checkin.Replayed {
		t.Fatalf("replayed pending contact: %v", err)
	}

	res, err := d.Enroll(ctx, []Enrollment{dv.enrollment()}, "file:keys", t0)
	if err != nil || len(res) != 1 || res[0].Before != Pending || res[0].After != Enrolled {
		t.Fatalf("enroll: %+v, %v", res, err)
	}
	// The latest pending contact (11) recorded nothing: enrolled, the
	// device's very report is taken once (a stick ingested again), an
	// older one is still replayed.
	if _, err := d.Accept(ctx, dv.report(10), t0.Add(2*time.Minute), "x"); reason(err) != checkin.Replayed {
		t.Fatalf("older pending contact after enrollment: %v", err)
	}
	if out, err := d.Accept(ctx, dv.report(11), t0.Add(2*time.Minute), "stick:s"); err != nil || out != Recorded {
		t.Fatalf("latest pending contact after enrollment: %v, %v", out, err)
	}
	if _, err := d.Accept(ctx, dv.report(11), t0.Add(2*time.Minute), "x"); reason(err) != checkin.Replayed {
		t.Fatalf("latest pending contact again: %v", err)
	}
	dv.inv.Name, dv.inv.Version = "gw-7", "1.1.0"
	if out, err := d.Accept(ctx, dv.report(12), t0.Add(3*time.Minute), "10.0.0.7"); err != nil || out != Recorded {
		t.Fatalf("enrolled: %v, %v", out, err)
	}
	before, hist := show(t, d, dv.inv.Device)
	if before.Inventory == nil || !reflect.DeepEqual(*before.Inventory, *dv.report(12)) || len(hist) != 2 || before.Checkins != 2 || before.EnrolledBy != "file:keys" {
		t.Fatalf("enrolled record %+v, history %+v", before, hist)
	}
	for _, c := range []uint64{12, 5} {
		if _, err := d.Accept(ctx, dv.report(c), t0.Add(4*time.Minute), "evil"); reason(err) != checkin.Replayed {
			t.Errorf("counter %d: %v, want replayed", c, err)
		}
	}
	late := dv.report(13)
	late.Time = t0.Add(4*time.Minute + MaxClockAhead + time.Second)
	if _, err := d.Accept(ctx, late, t0.Add(4*time.Minute), "evil"); reason(err) != checkin.ClockAhead {
		t.Errorf("dated ahead: %v", err)
	}
	after, hist := show(t, d, dv.inv.Device)
	if !reflect.DeepEqual(before, after) || len(hist) != 2 {
		t.Errorf("refused reports changed the record:\n%+v\n%+v", before, after)
	}
}

// TestStatusMoves: approve, reject and revoke, and what each refuses.
func TestStatusMoves(t *testing.T) { eachBackend(t, testStatusMoves) }

func testStatusMoves(t *testing.T, newDB func(*testing.T) *DB) {
	ctx := context.Background()
	cases := []struct {
		name     string
		from, to Status
		ok       bool
	}{
		{"approve pending", Pending, Enrolled, true},
		{"reject pending", Pending, Rejected, true},
		{"revoke pending", Pending, Revoked, true},
		{"approve rejected", Rejected, Enrolled, true},
		{"revoke enrolled", Enrolled, Revoked, true},
		{"reject enrolled", Enrolled, Rejected, false},
		{"approve revoked", Revoked, Enrolled, false},
		{"reject revoked", Revoked, Rejected, false},
		{"approve enrolled (nothing to do)", Enrolled, Enrolled, true},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := newDB(t)
			dv := newDevice(byte(i + 1))
			if _, err := d.Accept(ctx, dv.report(1), t0, "r"); err != nil {
				t.Fatal(err)
			}
			switch c.from {
			case Enrolled:
				_, err := d.SetStatus(ctx, dv.inv.Device, Enrolled, t0)
				if err != nil {
					t.Fatal(err)
				}
			case Rejected, Revoked:
				if _, err := d.SetStatus(ctx, dv.inv.Device, c.from, t0); err != nil {
					t.Fatal(err)
				}
			}
			rec, err := d.SetStatus(ctx, dv.inv.Device[:MinPrefix], c.to, t0.Add(time.Hour))
			var se *StatusError
			if c.ok != (err == nil) || (!c.ok && !errors.As(err, &se)) {
				t.Fatalf("%s to %s: %+v, %v", c.from, c.to, rec, err)
			}
			got, _ := show(t, d, dv.inv.Device)
			want := c.to
			if !c.ok {
				want = c.from
			}
			if got.Status != want {
				t.Errorf("status %s, want %s", got.Status, want)
			}
			// What each status does to the next report.
			out, err := d.Accept(ctx, dv.report(2), t0.Add(2*time.Hour), "r")
			switch want {
			case Enrolled:
				if err != nil || out != Recorded {
					t.Errorf("enrolled device's report: %v, %v", out, err)
				}
			case Rejected, Revoked:
				if r := reason(err); string(r) != string(want) {
					t.Errorf("%s device's report: %v", want, err)
				}
			}
		})
	}
}

func TestEnrollLeavesRefusedDevices(t *testing.T) { eachBackend(t, testEnrollLeavesRefusedDevices) }

func testEnrollLeavesRefusedDevices(t *testing.T, newDB func(*testing.T) *DB) {
	ctx := context.Background()
	d := newDB(t)
	a, b, c := newDevice(1), newDevice(2), newDevice(3)
	for _, dv := range []*device{b, c} {
		if _, err := d.Accept(ctx, dv.report(1), t0, "r"); err != nil {
			t.Fatal(err)
		}
	}
	d.SetStatus(ctx, b.inv.Device, Rejected, t0)
	d.SetStatus(ctx, c.inv.Device, Revoked, t0)
	res, err := d.Enroll(ctx, []Enrollment{{PublicKey: a.inv.PublicKey, Name: "gw-a", DeviceType: "board-a"}, b.enrollment(), c.enrollment()}, "file:x", t0)
	if err != nil {
		t.Fatal(err)
	}
	want := []Status{Enrolled, Rejected, Revoked}
	for i, r := range res {
		if r.After != want[i] || (i > 0 && r.Note == "") {
			t.Errorf("result %d: %+v, want %s", i, r, want[i])
		}
	}
	rec, _ := show(t, d, a.inv.Device)
	if rec.Name != "gw-a" || rec.DeviceType != "board-a" || !rec.LastSeen.IsZero() {
		t.Errorf("enrolled before its first contact: %+v", rec)
	}
}

func TestHistoryBounded(t *testing.T) { eachBackend(t, testHistoryBounded) }

func testHistoryBounded(t *testing.T, newDB func(*testing.T) *DB) {
	ctx := context.Background()
	d := newDB(t)
	dv := newDevice(1)
	d.Enroll(ctx, []Enrollment{dv.enrollment()}, "t", t0)
	const n = 3*HistoryPerDevice + 5
	for i := range n {
		if _, err := d.Accept(ctx, dv.report(uint64(i+1)), t0.Add(time.Duration(i)*time.Second), "r"); err != nil {
			t.Fatal(err)
		}
		// Stored: cut back every historyTrimEvery check-ins.
		var stored int
		if err := d.db.QueryRow(`SELECT count(*) FROM fleet_reports WHERE device_id = ?`, dv.inv.Device).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if max := HistoryPerDevice + historyTrimEvery - 1; stored > max {
			t.Fatalf("after %d check-ins %d reports stored, more than %d", i+1, stored, max)
		}
		if trimmed := (i+1)%historyTrimEvery == 0 && i+1 >= HistoryPerDevice; trimmed && stored != HistoryPerDevice {
			t.Fatalf("after %d check-ins (a trim) %d reports stored, want %d", i+1, stored, HistoryPerDevice)
		}
	}
	rec, hist := show(t, d, dv.inv.Device)
	if len(hist) != HistoryPerDevice || hist[0].Counter != n || hist[len(hist)-1].Counter != n-HistoryPerDevice+1 || rec.Checkins != n {
		t.Errorf("%d shown, newest %d, oldest %d, check-ins %d", len(hist), hist[0].Counter, hist[len(hist)-1].Counter, rec.Checkins)
	}
}

func TestMaxDevicesCountsPending(t *testing.T) { eachBackend(t, testMaxDevicesCountsPending) }

func testMaxDevicesCountsPending(t *testing.T, newDB func(*testing.T) *DB) {
	ctx := context.Background()
	d := newDB(t)
	d.SetMaxDevices(2)
	for i := range 2 {
		if _, err := d.Accept(ctx, newDevice(byte(i+1)).report(1), t0, "r"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.Accept(ctx, newDevice(9).report(1), t0, "r"); !errors.Is(err, ErrTooMany) {
		t.Errorf("third device: %v", err)
	}
}

func TestResolvePrefix(t *testing.T) { eachBackend(t, testResolvePrefix) }

func testResolvePrefix(t *testing.T, newDB func(*testing.T) *DB) {
	ctx := context.Background()
	d := newDB(t)
	dv := newDevice(1)
	d.Accept(ctx, dv.report(1), t0, "r")
	var nf *NotFoundError
	for _, id := range []string{dv.inv.Device[:MinPrefix-1], "zzzzzzzzzz", "ffffffffff"} {
		if _, _, err := d.Show(ctx, id); !errors.As(err, &nf) {
			t.Errorf("Show(%q): %v", id, err)
		}
	}
	// Two ids with the same prefix: make one by hand.
	if _, err := d.db.Exec(`INSERT INTO fleet_devices (`+recordColumns+`) VALUES (?, ?, 'pending', '', '', '', 0, 0, 0, '', 0, 0, 0, '')`, dv.inv.Device[:20]+"0000000000000000000000000000000000000000000000000000"[:44], []byte{0}); err != nil {
		t.Fatal(err)
	}
	var amb *AmbiguousError
	if _, _, err := d.Show(ctx, dv.inv.Device[:MinPrefix]); !errors.As(err, &amb) || len(amb.IDs) != 2 {
		t.Errorf("ambiguous prefix: %v", err)
	}
	if r, _, err := d.Show(ctx, dv.inv.Device); err != nil || r.ID != dv.inv.Device {
		t.Errorf("whole id: %v", err)
	}
}

// TestOpenOlderDatabase: a devices.db of a mirror from before device
// keys (version 1 check-ins only) opens; its devices stay, as legacy
// ones, and no record is made of them.
func TestOpenOlderDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), File)
	old, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Exec(devicesSchema); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Exec(`INSERT INTO devices VALUES ('gw-old', 'board-a', 'gateway', '1.0.0', 'committed', '', 1, 2, '10.0.0.1', 3)`); err != nil {
		t.Fatal(err)
	}
	old.Close()
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	legacy, err := d.List()
	if err != nil || len(legacy) != 1 || legacy[0].ID != "gw-old" || legacy[0].Checkins != 3 {
		t.Fatalf("legacy devices %+v, %v", legacy, err)
	}
	recs, err := d.Records(context.Background())
	if err != nil || len(recs) != 0 {
		t.Errorf("records %+v, %v", recs, err)
	}
	var v int
	if err := d.db.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil || v != 2 {
		t.Errorf("schema version %d, %v", v, err)
	}
}

// TestCheckinName: a name an enrollment list gave stays; a device
// enrolled without one, or approved after first contact, is called what
// it reports, check-in after check-in.
func TestCheckinName(t *testing.T) { eachBackend(t, testCheckinName) }

func testCheckinName(t *testing.T, newDB func(*testing.T) *DB) {
	ctx := context.Background()
	d := newDB(t)
	listed, unnamed, approved := newDevice(1), newDevice(2), newDevice(3)
	e := listed.enrollment()
	e.Name = "line-3"
	if _, err := d.Enroll(ctx, []Enrollment{e, unnamed.enrollment()}, "file:keys", t0); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Accept(ctx, approved.report(1), t0, "r"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.SetStatus(ctx, approved.inv.Device, Enrolled, t0); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"gw", "gw-renamed"} {
		for _, dv := range []*device{listed, unnamed, approved} {
			dv.inv.Name = name
			if out, err := d.Accept(ctx, dv.report(uint64(10+i)), t0.Add(time.Duration(i+1)*time.Minute), "r"); err != nil || out != Recorded {
				t.Fatalf("check-in %d: %v, %v", i, out, err)
			}
		}
		for _, c := range []struct {
			dv   *device
			want string
		}{{listed, "line-3"}, {unnamed, "gw"}, {approved, name}} {
			if rec, _ := show(t, d, c.dv.inv.Device); rec.Name != c.want || rec.Inventory.Name != name {
				t.Errorf("after check-in %d reporting %q: name %q (inventory %q), want %q", i, name, rec.Name, rec.Inventory.Name, c.want)
			}
		}
	}
}

// TestTwoMirrorsOneDatabase: two mirrors share one database (two
// handles). Check-ins of one device arrive at both at once, each sent to
// both: each report is counted once, the other copy is refused as
// replayed, and the record ends at the highest counter.
func TestTwoMirrorsOneDatabase(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			m1, m2 := twoMirrors(t, b)
			dv := newDevice(1)
			if _, err := m1.Enroll(ctx, []Enrollment{dv.enrollment()}, "t", t0); err != nil {
				t.Fatal(err)
			}
			const n = 20
			var recorded, replayed atomic.Int32
			var wg sync.WaitGroup
			for i := range n {
				for _, m := range []*DB{m1, m2} {
					wg.Go(func() {
						_, err := m.Accept(ctx, dv.report(uint64(100+i)), t0, "r")
						switch {
						case err == nil:
							recorded.Add(1)
						case reason(err) == checkin.Replayed:
							replayed.Add(1)
						default:
							t.Error(err)
						}
					})
				}
			}
			wg.Wait()
			rec, hist := show(t, m2, dv.inv.Device)
			if int64(recorded.Load()) != rec.Checkins || recorded.Load()+replayed.Load() != 2*n || rec.Counter != 100+n-1 || len(hist) != int(rec.Checkins) {
				t.Errorf("%d recorded, %d replayed; record: %d check-ins, counter %d, %d kept", recorded.Load(), replayed.Load(), rec.Checkins, rec.Counter, len(hist))
			}
			seen := map[uint64]bool{}
			for _, h := range hist {
				if seen[h.Counter] {
					t.Errorf("counter %d recorded twice", h.Counter)
				}
				seen[h.Counter] = true
			}
		})
	}
}

// TestLegacyRecords: the unsigned check-ins of older agents are kept, on
// either backend, apart from the keyed records.
func TestLegacyRecords(t *testing.T) { eachBackend(t, testLegacyRecords) }

func testLegacyRecords(t *testing.T, newDB func(*testing.T) *DB) {
	d := newDB(t)
	for i, v := range []string{"1.0.0", "1.1.0"} {
		r := &checkin.Report{DeviceID: "gw-old", DeviceType: "board-a", Version: v, Result: "committed", Time: t0.Add(time.Duration(i) * time.Hour)}
		if err := d.Record(r, t0.Add(time.Duration(i)*time.Hour), "10.0.0.1"); err != nil {
			t.Fatal(err)
		}
	}
	legacy, err := d.List()
	if err != nil || len(legacy) != 1 || legacy[0].Version != "1.1.0" || legacy[0].Checkins != 2 {
		t.Errorf("legacy devices %+v, %v", legacy, err)
	}
	if recs, err := d.Records(context.Background()); err != nil || len(recs) != 0 {
		t.Errorf("records %+v, %v", recs, err)
	}
}

func TestSize(t *testing.T) { eachBackend(t, testSize) }

// testSize: the database's size grows with the check-ins it holds.
func testSize(t *testing.T, newDB func(*testing.T) *DB) {
	ctx := context.Background()
	d := newDB(t)
	before, err := d.Size(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if before <= 0 {
		t.Fatalf("an empty database has size %d, want > 0", before)
	}
	dv := newDevice(7)
	if _, err := d.Enroll(ctx, []Enrollment{dv.enrollment()}, "test", t0); err != nil {
		t.Fatal(err)
	}
	dv.inv.Error = strings.Repeat("x", 2000) // a fat report: pages fill sooner
	for i := range 200 {
		if _, err := d.Accept(ctx, dv.report(uint64(i+1)), t0, "127.0.0.1"); err != nil {
			t.Fatal(err)
		}
	}
	after, err := d.Size(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after <= before {
		t.Fatalf("size %d after %d check-ins, %d before: want it grown", after, 200, before)
	}
}

// TestPostgresPool: a burst of concurrent check-ins shares a bounded
// set of connections to PostgreSQL and keeps them: none is opened beyond
// PostgresConns, and none is closed for being idle (database/sql's
// defaults opened one per concurrent check-in and closed all but two
// after, which on a busy mirror ran PostgreSQL out of connection slots).
func TestPostgresPool(t *testing.T) {
	ctx := context.Background()
	d := openBackend(t, "postgres")
	const n = 48
	devs := make([]*device, n)
	var es []Enrollment
	for i := range devs {
		devs[i] = newDevice(byte(100 + i))
		es = append(es, devs[i].enrollment())
	}
	if _, err := d.Enroll(ctx, es, "test", t0); err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for _, dv := range devs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := d.Accept(ctx, dv.report(uint64(round+1)), t0, "127.0.0.1")
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	st := d.db.db.Stats()
	if st.MaxOpenConnections != PostgresConns || st.OpenConnections > PostgresConns {
		t.Errorf("connections: %d open, cap %d: want at most %d", st.OpenConnections, st.MaxOpenConnections, PostgresConns)
	}
	if st.MaxIdleClosed != 0 {
		t.Errorf("%d connections closed for being idle after a burst: want them kept", st.MaxIdleClosed)
	}
	recs, err := d.Records(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Checkins != 3 {
			t.Fatalf("device %s: %d check-ins recorded, want 3", r.ID[:8], r.Checkins)
		}
	}
}

// TestSQLiteTransactionsFirstComeFirstServed: on SQLite's one
// connection, transactions that wait run in the order they came (a gate
// in front of database/sql, whose pool hands a freed connection to a
// waiter at random: under load a check-in waited behind any number that
// came after it).
func TestSQLiteTransactionsFirstComeFirstServed(t *testing.T) {
	ctx := context.Background()
	d, err := Open(filepath.Join(t.TempDir(), File))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	first, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 16
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tx, err := d.db.BeginTx(ctx, nil)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			if _, err := tx.ExecContext(ctx, `INSERT INTO fleet_settings (key, value) VALUES (?, 'x')`, fmt.Sprint("k", i)); err != nil {
				t.Error(err)
			}
			if err := tx.Commit(); err != nil {
				t.Error(err)
			}
			tx.Rollback() // after Commit: a no-op that must not let another through
		}()
		for d.db.gate.waiting() != i+1 { // the goroutine waits at the gate
			runtime.Gosched()
		}
	}
	first.Rollback()
	wg.Wait()
	for i, got := range order {
		if got != i {
			t.Fatalf("transactions ran in the order %v, want the order they came", order)
		}
	}

	// One that gives up waiting leaves the queue, and the gate works on.
	hold, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := d.db.BeginTx(cctx, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("a canceled wait: %v", err)
	}
	hold.Commit()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	tx.Rollback()
}

// TestRecordEnrolled: PostgreSQL's one-statement check-in records only
// the common case, an enrolled device in no deployment whose counter
// rose, and leaves every other check-in untouched for accept to judge.
func TestRecordEnrolled(t *testing.T) {
	ctx := context.Background()
	d := openBackend(t, "postgres")
	plain, targeted, pending, revoked, untaken := newDevice(1), newDevice(2), newDevice(3), newDevice(4), newDevice(5)
	if _, err := d.Enroll(ctx, []Enrollment{plain.enrollment(), targeted.enrollment(), revoked.enrollment()}, "file:keys", t0); err != nil {
		t.Fatal(err)
	}
	if _, err := d.PutGroup(ctx, Group{Name: "line-1", Kind: Static, Devices: []string{targeted.inv.Device}}, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateDeployment(ctx, spec("100%"), t0); err != nil {
		t.Fatal(err)
	}
	for _, dv := range []*device{pending, untaken} {
		if _, err := d.Accept(ctx, dv.report(5), t0, "r"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.Enroll(ctx, []Enrollment{untaken.enrollment()}, "file:keys", t0); err != nil {
		t.Fatal(err)
	}
	if _, err := d.SetStatus(ctx, revoked.inv.Device, Revoked, t0); err != nil {
		t.Fatal(err)
	}
	record := func(inv *checkin.Inventory, at time.Time, remote string) (bool, error) {
		payload, err := json.Marshal(inv)
		if err != nil {
			return false, err
		}
		return recordEnrolled(ctx, d.db, inv, payload, at, remote)
	}
	if ok, err := record(plain.report(5), t0, "r"); err != nil || !ok {
		t.Fatalf("enrolled device: %v, %v", ok, err)
	}
	for _, c := range []struct {
		name string
		dv   *device
		n    uint64
	}{
		{"replayed", plain, 5},
		{"older", plain, 4},
		{"in a deployment", targeted, 6},
		{"pending", pending, 6},
		{"revoked", revoked, 6},
		{"taken once after enrollment", untaken, 5},
	} {
		before, beforeHist := show(t, d, c.dv.inv.Device)
		if ok, err := record(c.dv.report(c.n), t0.Add(time.Minute), "x"); err != nil || ok {
			t.Errorf("%s: recorded %v, %v; want left to accept", c.name, ok, err)
		}
		if after, afterHist := show(t, d, c.dv.inv.Device); !reflect.DeepEqual(before, after) || len(afterHist) != len(beforeHist) {
			t.Errorf("%s: the record changed:\n%+v\n%+v", c.name, before, after)
		}
	}
	// What accept then makes of them.
	if out, err := d.Accept(ctx, targeted.report(6), t0.Add(time.Minute), "x"); err != nil || out != Recorded {
		t.Errorf("in a deployment: %v, %v", out, err)
	}
	if out, err := d.Accept(ctx, untaken.report(5), t0.Add(time.Minute), "x"); err != nil || out != Recorded {
		t.Errorf("taken once after enrollment: %v, %v", out, err)
	}
}
