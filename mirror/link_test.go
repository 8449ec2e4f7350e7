package mirror_test

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/mirror/server"
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
