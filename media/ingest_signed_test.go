package media

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/internal/testtool"
	"github.com/ferry-update/ferry/transport/checkin"
	"github.com/ferry-update/ferry/transport/stick"
)

// TestIngestSigned: a stick report that carries the device's signed
// check-in is judged as one over the network and counts toward the
// deployment that assigned the device its bundle; ingested again it is
// known (replayed), and forged or foreign ones are rejected with their
// reason. On the mirror's SQLite file and on a real PostgreSQL (the
// records go where the mirror keeps them).
func TestIngestSigned(t *testing.T) {
	eachDatabase(t, func(t *testing.T, backend string, st Store, open func() (*devices.DB, error)) {
		testIngestSigned(t, st, open)
		if backend == "postgres" {
			if _, err := os.Stat(filepath.Join(st.Dir(), "devices.db")); !os.IsNotExist(err) {
				t.Errorf("ingesting into PostgreSQL made %s/devices.db (%v)", st.Dir(), err)
			}
		}
	})
}

// eachDatabase runs test on a new mirror store whose device records are
// in its SQLite file, then in a real PostgreSQL; open opens them.
func eachDatabase(t *testing.T, test func(t *testing.T, backend string, st Store, open func() (*devices.DB, error))) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			st := newStore(t)
			open := func() (*devices.DB, error) { return devices.OpenDir(st.Dir()) }
			if backend == "postgres" {
				url := testtool.Postgres(t)
				open = func() (*devices.DB, error) { return devices.OpenPostgres(context.Background(), url) }
			}
			test(t, backend, st, open)
		})
	}
}

func testIngestSigned(t *testing.T, st Store, open func() (*devices.DB, error)) {
	ctx := context.Background()
	ids, err := st.MirrorIDs()
	if err != nil {
		t.Fatal(err)
	}
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = 7
	key := ed25519.NewKeyFromSeed(seed)
	pub := key.Public().(ed25519.PublicKey)
	dev := checkin.DeviceID(pub)
	now := time.Now().UTC().Truncate(time.Second)

	d, err := open()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Enroll(ctx, []devices.Enrollment{{PublicKey: pub, Name: "gw-07", DeviceType: "board-a"}}, "test", now); err != nil {
		t.Fatal(err)
	}
	dep, err := d.CreateDeployment(ctx, devices.DeploymentSpec{Bundle: "gateway", Version: "2.0.0", Digest: "sha256:" + strings.Repeat("1", 64),
		Filter: "name = gw-07", Phases: []devices.Phase{{Size: devices.Amount{N: 100, Percent: true}}}}, now)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()

	signed := func(counter uint64, mirror string) json.RawMessage {
		return signCheckin(t, key, mirror, counter, now, "gw-07")
	}
	root := newStickDir(t)
	writeSignedReports(t, root, now, signed(1, ids[0]), signed(2, strings.Repeat("f", 64)), forge(signed(3, ids[0])))
	ingest := func() (*IngestResult, error) {
		d, err := open()
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		return IngestReports(st, d, root, IngestOptions{})
	}
	res, err := ingest()
	if err != nil {
		t.Fatal(err)
	}
	if res.Reports != 3 || res.New != 1 || res.Signed != 1 || len(res.Rejected) != 2 {
		t.Fatalf("ingest: %+v", res)
	}
	reasons := res.Rejected[0].Reason + " | " + res.Rejected[1].Reason
	if !strings.Contains(reasons, "(foreign)") || !strings.Contains(reasons, "(bad-signature)") {
		t.Fatalf("rejected: %s", reasons)
	}
	d, err = open()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	dd, err := d.DeploymentDetail(ctx, dep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if dd.Progress[0].Succeeded != 1 || dd.State != devices.Completed {
		t.Fatalf("deployment after the stick: %s %+v", dd.State, dd.Progress)
	}
	rec, _, err := d.Show(ctx, dev)
	if err != nil || rec.Remote != StickRemote+root || rec.Counter != 1 {
		t.Fatalf("record %+v %v", rec, err)
	}
	// Again: known, nothing new.
	res, err = ingest()
	if err != nil || res.New != 0 || res.Known != 1 {
		t.Fatalf("ingest again: %+v %v", res, err)
	}
}

// signCheckin is the signed check-in ferry-agent puts in its stick report:
// device key's, for mirror, with counter, the device named name (of type
// board-a) having installed gateway 2.0.0.
func signCheckin(t *testing.T, key ed25519.PrivateKey, mirror string, counter uint64, now time.Time, name string) json.RawMessage {
	t.Helper()
	pub := key.Public().(ed25519.PublicKey)
	inv := &checkin.Inventory{Mirror: mirror, Device: checkin.DeviceID(pub), PublicKey: pub, Counter: counter, Time: now, Name: name, DeviceType: "board-a",
		AgentVersion: "v1", Bundle: "gateway", Version: "2.0.0", Components: []checkin.Component{}, Result: "committed",
		Install: &checkin.Install{Bundle: "gateway", Version: "2.0.0"}}
	b, err := checkin.Sign(inv, key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// forge changes the key id of a signed check-in after signing: its
// signature no longer verifies.
func forge(c json.RawMessage) json.RawMessage {
	return json.RawMessage(strings.Replace(string(c), `"signatures":[{"keyid":"`, `"signatures":[{"keyid":"0`, 1))
}

// newStickDir is a stick (a directory) with an empty ferry/ layout.
func newStickDir(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, stick.Dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, stick.Dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// writeSignedReports writes onto the stick at root a report of gateway
// 2.0.0 for each signed check-in, finished a second apart from now.
func writeSignedReports(t *testing.T, root string, now time.Time, checkins ...json.RawMessage) {
	t.Helper()
	s, err := stick.OpenDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range checkins {
		r := stick.Report{DeviceID: "gw", Bundle: "gateway", BundleVersion: "2.0.0", VersionAfter: "2.0.0", Result: stick.ResultSuccess,
			Finished: now.Add(time.Duration(i) * time.Second), Checkin: c}
		if _, err := s.WriteReport(r); err != nil {
			t.Fatal(err)
		}
	}
}

// TestIngestEnroll: a stick's signed check-ins of devices the mirror does
// not know list them as pending without --enroll (IngestResult.Pending),
// and enroll them with it ("stick", under the name and type they claim),
// their reports then recorded, even the one taken while pending; the
// devices of the stick's ferry/identities.jsonl are enrolled too. A
// revoked device stays refused, a forged report enrolls nothing, and an
// identities list with a bad line, or one that leads off the stick,
// fails the ingest with nothing enrolled. On SQLite and PostgreSQL.
func TestIngestEnroll(t *testing.T) {
	eachDatabase(t, func(t *testing.T, _ string, st Store, open func() (*devices.DB, error)) {
		testIngestEnroll(t, st, open)
	})
}

func testIngestEnroll(t *testing.T, st Store, open func() (*devices.DB, error)) {
	ctx := context.Background()
	ids, err := st.MirrorIDs()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	keyOf := func(b byte) ed25519.PrivateKey {
		seed := make([]byte, ed25519.SeedSize)
		seed[0] = b
		return ed25519.NewKeyFromSeed(seed)
	}
	idOf := func(k ed25519.PrivateKey) string { return checkin.DeviceID(k.Public().(ed25519.PublicKey)) }
	fresh, revoked, forger, listed := keyOf(1), keyOf(2), keyOf(3), keyOf(4)

	d, err := open()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Enroll(ctx, []devices.Enrollment{{PublicKey: revoked.Public().(ed25519.PublicKey)}}, "test", now); err != nil {
		t.Fatal(err)
	}
	if _, err := d.SetStatus(ctx, idOf(revoked), devices.Revoked, now); err != nil {
		t.Fatal(err)
	}
	root := newStickDir(t)
	writeSignedReports(t, root, now, signCheckin(t, fresh, ids[0], 5, now, "gw-01"), signCheckin(t, revoked, ids[0], 1, now, "gw-02"),
		forge(signCheckin(t, forger, ids[0], 1, now, "gw-03")))
	pubPEM, err := x509.MarshalPKIXPublicKey(listed.Public())
	if err != nil {
		t.Fatal(err)
	}
	line, _ := json.Marshal(map[string]string{"publicKey": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubPEM})), "name": "gw-04", "deviceType": "board-b"})
	identities := filepath.Join(root, stick.Dir, stick.IdentitiesFile)
	status := func(id string) devices.Status {
		rec, _, err := d.Show(ctx, id)
		if errors.As(err, new(*devices.NotFoundError)) {
			return ""
		}
		if err != nil {
			t.Fatal(err)
		}
		return rec.Status
	}

	// Without Enroll: the fresh device is pending, the identities are
	// not read (a bad list does not matter).
	if err := os.WriteFile(identities, []byte("not json\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := IngestReports(st, d, root, IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.New != 0 || !slices.Equal(res.Pending, []string{idOf(fresh)}) || len(res.Enrolled) != 0 || len(res.Rejected) != 3 || status(idOf(fresh)) != devices.Pending {
		t.Fatalf("without enroll: %+v", res)
	}

	// A bad line, or a list that leads off the stick: nothing enrolled.
	for _, c := range []struct {
		name, want string
		write      func() error
	}{
		{"bad line", `ferry/identities.jsonl: line 2: not a JSON object`, func() error { return os.WriteFile(identities, append(line, "\n{\n"...), 0o644) }},
		{"link off the stick", `read ferry/identities.jsonl: openat identities.jsonl: path escapes from parent`, func() error {
			outside := filepath.Join(t.TempDir(), "ids.jsonl")
			if err := os.WriteFile(outside, line, 0o644); err != nil {
				return err
			}
			os.Remove(identities)
			return os.Symlink(outside, identities)
		}},
	} {
		if err := c.write(); err != nil {
			t.Fatal(err)
		}
		_, err := IngestReports(st, d, root, IngestOptions{Enroll: true})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%s: %v, want %q", c.name, err, c.want)
		}
		if status(idOf(fresh)) != devices.Pending || status(idOf(listed)) != "" {
			t.Fatalf("%s: enrolled something", c.name)
		}
	}

	// With Enroll: the listed and the fresh device are enrolled, the
	// fresh one's report recorded; the revoked and the forged stay out.
	os.Remove(identities)
	if err := os.WriteFile(identities, append(line, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err = IngestReports(st, d, root, IngestOptions{Enroll: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Enrolled, []string{idOf(listed), idOf(fresh)}) || res.New != 1 || res.Signed != 1 || len(res.Pending) != 0 || len(res.Rejected) != 2 {
		t.Fatalf("with enroll: %+v", res)
	}
	reasons := res.Rejected[0].Reason + " | " + res.Rejected[1].Reason
	if !strings.Contains(reasons, "device "+idOf(revoked)+" is not enrolled (revoked): its key was revoked") || !strings.Contains(reasons, "(bad-signature)") {
		t.Fatalf("rejected: %s", reasons)
	}
	rec, hist, err := d.Show(ctx, idOf(fresh))
	if err != nil || rec.Status != devices.Enrolled || rec.EnrolledBy != EnrolledBy || rec.Name != "gw-01" || rec.DeviceType != "board-a" || len(hist) != 1 || rec.Inventory == nil || rec.Inventory.Counter != 5 {
		t.Fatalf("fresh device: %+v, %d reports, %v", rec, len(hist), err)
	}
	if rec, _, err := d.Show(ctx, idOf(listed)); err != nil || rec.Status != devices.Enrolled || rec.EnrolledBy != EnrolledBy || rec.Name != "gw-04" || rec.DeviceType != "board-b" {
		t.Fatalf("listed device: %+v, %v", rec, err)
	}
	if status(idOf(revoked)) != devices.Revoked || status(idOf(forger)) != "" {
		t.Fatalf("revoked %s, forger %q", status(idOf(revoked)), status(idOf(forger)))
	}
	// Again: nothing new, nothing enrolled.
	res, err = IngestReports(st, d, root, IngestOptions{Enroll: true})
	if err != nil || len(res.Enrolled) != 0 || res.New != 0 || res.Known != 1 {
		t.Fatalf("again: %+v, %v", res, err)
	}
}
