package media

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
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
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			st := newStore(t)
			open := func() (*devices.DB, error) { return devices.OpenDir(st.Dir()) }
			if backend == "postgres" {
				url := testtool.Postgres(t)
				open = func() (*devices.DB, error) { return devices.OpenPostgres(context.Background(), url) }
			}
			testIngestSigned(t, st, open)
			if backend == "postgres" {
				if _, err := os.Stat(filepath.Join(st.Dir(), "devices.db")); !os.IsNotExist(err) {
					t.Errorf("ingesting into PostgreSQL made %s/devices.db (%v)", st.Dir(), err)
				}
			}
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
		inv := &checkin.Inventory{Mirror: mirror, Device: dev, PublicKey: pub, Counter: counter, Time: now, Name: "gw-07", DeviceType: "board-a",
			AgentVersion: "v1", Bundle: "gateway", Version: "2.0.0", Components: []checkin.Component{}, Result: "committed",
			Install: &checkin.Install{Bundle: "gateway", Version: "2.0.0"}}
		b, err := checkin.Sign(inv, key)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	forged := signed(3, ids[0])
	forged = json.RawMessage(strings.Replace(string(forged), `"signatures":[{"keyid":"`, `"signatures":[{"keyid":"0`, 1))

	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, stick.Dir), 0o755)
	os.WriteFile(filepath.Join(root, stick.Dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	s, err := stick.OpenDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []json.RawMessage{signed(1, ids[0]), signed(2, strings.Repeat("f", 64)), forged} {
		r := stick.Report{DeviceID: "gw-07", Bundle: "gateway", BundleVersion: "2.0.0", VersionAfter: "2.0.0", Result: stick.ResultSuccess,
			Finished: now.Add(time.Duration(i) * time.Second), Checkin: c}
		if _, err := s.WriteReport(r); err != nil {
			t.Fatal(err)
		}
	}
	ingest := func() (*IngestResult, error) {
		d, err := open()
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		return IngestReports(st, d, root)
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
