package mirror_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"maps"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/mirror/server"
	"github.com/ferry-update/ferry/transport/checkin"
	"github.com/ferry-update/ferry/transport/stick"
	"github.com/ferry-update/ferry/transport/tufclient"
)

// noAssignments is an upstream whose deployments assign nobody now.
type noAssignments struct{}

func (noAssignments) RelayAssignments(context.Context) (map[string][]byte, error) {
	return map[string][]byte{}, nil
}

// TestSyncLinkRefuses syncs a site mirror from a running upstream over
// HTTP, then from an upstream that serves older metadata (its timestamp and
// targets rolled back) and from another mirror whose root does not chain from the
// one the site pinned: both are refused as the devices would refuse them
// (*tufclient.Error), and the relay is left as it was.
func TestSyncLinkRefuses(t *testing.T) {
	ctx := context.Background()
	u, site := newStore(t), newStore(t)
	srv := httptest.NewServer(server.NewHandler(u, server.HandlerOptions{}))
	defer srv.Close()
	sync := func(from string) (*mirror.SyncResult, error) {
		return site.Sync(ctx, from, mirror.SyncOptions{Upstream: noAssignments{}})
	}
	old := t.TempDir()
	if err := os.CopyFS(old, os.DirFS(filepath.Join(u.Dir(), "tuf"))); err != nil {
		t.Fatal(err)
	}
	gw, _ := testutil.MakeBundle(t, t.TempDir(), "gateway", "1.0.0", 10<<10, 0, testutil.NewKey(t, "alice"))
	if _, err := u.Add(gw); err != nil {
		t.Fatal(err)
	}
	res, err := sync(srv.URL)
	if err != nil || res.Relay == nil || len(res.Bundles) != 1 || res.Bundles[0].Repository != "gateway" {
		t.Fatalf("sync: %v %+v", err, res)
	}
	relay := filepath.Join(site.RelayDir(), "ferry", "tuf")
	for _, f := range []string{"timestamp.json", "snapshot.json", "targets.json", "root.json", "1.root.json"} {
		if _, err := os.Stat(filepath.Join(relay, f)); err != nil {
			t.Errorf("relay: %v", err)
		}
	}
	before := treeOf(t, relay)

	for _, c := range []struct {
		name  string
		setup func() string // the upstream's URL
		kind  tufclient.Kind
	}{
		{"metadata rolled back", func() string {
			os.RemoveAll(filepath.Join(u.Dir(), "tuf"))
			if err := os.CopyFS(filepath.Join(u.Dir(), "tuf"), os.DirFS(old)); err != nil {
				t.Fatal(err)
			}
			return srv.URL
		}, tufclient.Rollback},
		{"root that does not chain", func() string {
			other := httptest.NewServer(server.NewHandler(newStore(t), server.HandlerOptions{}))
			t.Cleanup(other.Close)
			return other.URL
		}, tufclient.BadSignature},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := sync(c.setup())
			var te *tufclient.Error
			var le *mirror.LinkError
			if !errors.As(err, &te) || te.Kind != c.kind || !errors.As(err, &le) || le.Step != "metadata" {
				t.Fatalf("sync: %v (%#v)", err, te)
			}
			if res.Relay != nil {
				t.Errorf("relayed %+v", res.Relay)
			}
			if after := treeOf(t, relay); !maps.EqualFunc(before, after, bytes.Equal) {
				t.Error("the relay changed")
			}
		})
	}
}

// TestSyncLinkReports sends the relay's reports up to an upstream that
// lets one check-in through a second (429 with Retry-After beyond): the
// sync waits as asked and sends them all; the upstream's answers decide
// what leaves the relay — a device it has not enrolled (pending) and a
// check-in for another mirror (refused, with the reason) go, a report
// without a signed check-in stays.
func TestSyncLinkReports(t *testing.T) {
	ctx := context.Background()
	u, site := newStore(t), newStore(t)
	d, err := devices.OpenDir(u.Dir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	srv := httptest.NewServer(server.NewHandler(u, server.HandlerOptions{Devices: d, Limits: server.Limits{CheckinRate: 1, CheckinBurst: 1}}))
	defer srv.Close()
	// First contact: the relay learns its upstream.
	if _, err := site.Sync(ctx, srv.URL, mirror.SyncOptions{Upstream: noAssignments{}}); err != nil {
		t.Fatal(err)
	}
	ids, err := u.MirrorIDs()
	if err != nil {
		t.Fatal(err)
	}
	signed := func(mirrorID string) []byte {
		pub, key, _ := ed25519.GenerateKey(nil)
		b, err := checkin.Sign(&checkin.Inventory{Mirror: mirrorID, Device: checkin.DeviceID(pub), PublicKey: pub, Counter: 1, Time: time.Now().UTC(),
			DeviceType: "board-a", AgentVersion: "ferry-agent/test", Version: "0.0.0", Components: []checkin.Component{},
			Slot: checkin.SlotState{Booted: "a"}, Result: "idle"}, key)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for name, ci := range map[string][]byte{"a.json": signed(ids[0]), "b.json": signed(strings.Repeat("ab", 32)), "c.json": signed(ids[0]), "d.json": nil} {
		b, err := json.Marshal(stick.Report{DeviceID: "gw", Result: stick.ResultSuccess, Checkin: ci})
		if err != nil {
			t.Fatal(err)
		}
		if err := site.RelayReport(name, b); err != nil {
			t.Fatal(err)
		}
	}
	res, err := site.Sync(ctx, srv.URL, mirror.SyncOptions{Upstream: noAssignments{}})
	if err != nil {
		t.Fatal(err)
	}
	r := res.Reports
	if !slices.Equal(r.Pending, []string{"a.json", "c.json"}) || len(r.Refused) != 1 || r.Refused[0].Source != "b.json" ||
		!strings.Contains(r.Refused[0].Reason, "foreign") || len(r.Kept) != 1 || r.Kept[0].Source != "d.json" || len(r.Recorded)+len(r.Known) != 0 {
		t.Fatalf("reports: %+v", r)
	}
	left, _ := os.ReadDir(filepath.Join(site.RelayDir(), "ferry", "reports"))
	if len(left) != 1 || left[0].Name() != "d.json" {
		t.Fatalf("left in the relay: %v", left)
	}
}
