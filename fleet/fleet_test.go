package fleet

import (
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/transport/checkin"
	"github.com/ferry-update/ferry/transport/tufclient"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// TestDeploy: a deployment of a bundle the mirror holds takes its
// manifest digest, and the mirror's first deployment makes its
// assignment key and publishes it in the signed targets; a bundle it
// does not hold is refused with the versions it does.
func TestDeploy(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := mirror.Init(filepath.Join(dir, "m"), testutil.MirrorKey(t))
	if err != nil {
		t.Fatal(err)
	}
	path, dgst := testutil.MakeBundle(t, dir, "gateway", "2.0.0", 1000, 0, testutil.NewKey(t, "release"))
	if _, err := st.Add(path); err != nil {
		t.Fatal(err)
	}
	db, err := devices.OpenDir(st.Dir())
	if err != nil {
		t.Fatal(err)
	}
	l := &Local{DB: db, Store: st}
	defer l.Close()
	var es []devices.Enrollment
	for _, seed := range []byte{1, 2} {
		k := make([]byte, 32)
		k[0] = seed
		es = append(es, devices.Enrollment{PublicKey: ed25519Public(k), Name: "gw", DeviceType: "board-a"})
	}
	if _, err := l.Enroll(ctx, es, "test", t0); err != nil {
		t.Fatal(err)
	}
	spec := devices.DeploymentSpec{Filter: "type = board-a", Phases: []devices.Phase{{Size: devices.Amount{N: 100, Percent: true}}}, CreatedBy: "alice"}

	var nf *BundleNotFoundError
	if _, err := l.Deploy(ctx, "gateway:9.0.0", spec, t0); !errors.As(err, &nf) || !reflect.DeepEqual(nf.Versions, []string{"2.0.0"}) {
		t.Fatalf("missing version: %v", err)
	}
	if _, err := os.Stat(st.AssignmentKeyPath()); err == nil {
		t.Fatal("a refused deployment made the assignment key")
	}
	var se *devices.SpecError
	if _, err := l.Deploy(ctx, "gateway", spec, t0); !errors.As(err, &se) {
		t.Fatalf("no version: %v", err)
	}
	d, err := l.Deploy(ctx, "gateway:2.0.0", spec, t0)
	if err != nil {
		t.Fatal(err)
	}
	if d.Digest != dgst.String() || d.Devices != 2 || d.State != devices.Running {
		t.Fatalf("deployment %+v", d)
	}
	key, err := st.AssignmentKey()
	if err != nil {
		t.Fatal(err)
	}
	tm, err := metadata.Targets().FromFile(st.TUFPath("targets.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tm.Signed.UnrecognizedFields[tufclient.AssignmentKeysField]; !ok {
		t.Fatalf("targets.json does not publish the assignment key: %v", tm.Signed.UnrecognizedFields)
	}
	// Rotation: the new key and the old one are both published.
	if _, err := st.RotateAssignmentKey(); err != nil {
		t.Fatal(err)
	}
	key2, err := st.AssignmentKey()
	if err != nil || key2.Equal(key) {
		t.Fatalf("rotate: %v", err)
	}
	tm, err = metadata.Targets().FromFile(st.TUFPath("targets.json"))
	if err != nil {
		t.Fatal(err)
	}
	if list, _ := tm.Signed.UnrecognizedFields[tufclient.AssignmentKeysField].([]any); len(list) != 2 {
		t.Fatalf("after a rotation targets publish %v", tm.Signed.UnrecognizedFields)
	}
}

// TestSummarize: the one fleet at a glance of the CLI, the API and the
// console: counts, versions, failing (a failed install or a bootloader
// fallback), silent (a day without a check-in, or never) and the
// deployments not over.
func TestSummarize(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	recs := []devices.Record{
		{ID: "a", Status: devices.Enrolled, LastSeen: now.Add(-time.Hour), Inventory: &checkin.Inventory{Bundle: "gw", Version: "1.0.0", Result: "committed"}},
		{ID: "b", Status: devices.Enrolled, LastSeen: now.Add(-time.Minute), Inventory: &checkin.Inventory{Bundle: "gw", Version: "1.0.0", Result: "rolled-back"}},
		{ID: "c", Name: "z-last", Status: devices.Enrolled, LastSeen: now.Add(-SilentAfter), Inventory: &checkin.Inventory{Bundle: "gw", Version: "2.0.0", Result: "committed"}},
		{ID: "f", Status: devices.Enrolled, LastSeen: now, Inventory: &checkin.Inventory{Bundle: "gw", Version: "2.0.0", Result: "committed", Slot: checkin.SlotState{Fallback: true}}},
		{ID: "d", Name: "a-first", Status: devices.Enrolled},
		{ID: "e", Status: devices.Pending, Inventory: &checkin.Inventory{Bundle: "gw", Version: "0.1.0", Result: "failed"}},
	}
	deps := []devices.Deployment{{ID: 3, State: devices.Paused}, {ID: 2, State: devices.Completed}, {ID: 1, State: devices.Aborted}}
	o := Summarize(recs, deps, now)
	if o.Devices != 6 || o.ByStatus[devices.Enrolled] != 5 || o.ByStatus[devices.Pending] != 1 {
		t.Fatalf("counts %+v", o)
	}
	want := []VersionCount{{"gw", "1.0.0", 2}, {"gw", "2.0.0", 2}, {"", "", 1}}
	if !reflect.DeepEqual(o.Versions, want) {
		t.Fatalf("versions %+v", o.Versions)
	}
	ids := func(rs []devices.Record) (out []string) {
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	if got := ids(o.Failing); !reflect.DeepEqual(got, []string{"b", "f"}) {
		t.Errorf("failing %v, want b (rolled back) and f (fallback)", got)
	}
	if got := ids(o.Silent); !reflect.DeepEqual(got, []string{"d", "c"}) {
		t.Errorf("silent %v, want c (a day) and d (never), by name", got)
	}
	if len(o.Deployments) != 1 || o.Deployments[0].ID != 3 {
		t.Errorf("deployments %+v", o.Deployments)
	}
}

func ed25519Public(seed []byte) []byte {
	return ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
}
