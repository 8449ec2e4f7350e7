package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/mirror/server"
	"github.com/ferry-update/ferry/transport/assign"
	"github.com/ferry-update/ferry/transport/checkin"
	"github.com/ferry-update/ferry/transport/stick"
	"github.com/ferry-update/ferry/transport/tufclient"
)

// fixedUpstream hands out the same assignments at every sync.
type fixedUpstream map[string][]byte

func (f fixedUpstream) RelayAssignments(context.Context) (map[string][]byte, error) { return f, nil }

// TestRelayServe serves a site mirror's relay (HandlerOptions.Relay) to
// the devices of its upstream: the upstream's metadata under /tuf/, which
// a device that trusts the upstream root verifies — and refuses as stale
// once its timestamp expired; a device's assignment as the upstream
// signed it (204 when it has none); each device's newest check-in kept
// verbatim for the upstream, an older one not replacing it. A check-in
// that does not verify, or is made for a mirror the site does not relay,
// is refused; one for the site itself finds no check-in store here; and
// beyond --max-devices devices a new one's is refused (507).
func TestRelayServe(t *testing.T) {
	ctx := context.Background()
	u, site := newStore(t), newStore(t)
	p, _ := testutil.MakeBundle(t, t.TempDir(), "gateway", "1.0.0", 10<<10, 0, testutil.NewKey(t, "alice"))
	if _, err := u.Add(p); err != nil {
		t.Fatal(err)
	}
	if _, _, err := u.EnsureAssignmentKey(); err != nil {
		t.Fatal(err)
	}
	akey, err := u.AssignmentKey()
	if err != nil {
		t.Fatal(err)
	}
	ids, err := u.MirrorIDs()
	if err != nil {
		t.Fatal(err)
	}
	type dev struct {
		id  string
		key ed25519.PrivateKey
	}
	newDev := func() dev {
		pub, key, _ := ed25519.GenerateKey(nil)
		return dev{checkin.DeviceID(pub), key}
	}
	assigned, idle := newDev(), newDev()
	now := time.Now().UTC().Truncate(time.Second)
	env, err := assign.Sign(&assign.Assignment{Mirror: ids[0], Device: assigned.id, Deployment: 1, Bundle: "gateway", Version: "1.0.0",
		Digest: "sha256:" + strings.Repeat("0", 64), Counter: 1, Issued: now, Expires: now.Add(time.Hour)}, akey)
	if err != nil {
		t.Fatal(err)
	}
	up := httptest.NewServer(server.NewHandler(u, server.HandlerOptions{}))
	defer up.Close()
	if _, err := site.Sync(ctx, up.URL, mirror.SyncOptions{Upstream: fixedUpstream{assigned.id: env}}); err != nil {
		t.Fatal(err)
	}
	relay := httptest.NewServer(server.NewHandler(site, server.HandlerOptions{Relay: true}))
	defer relay.Close()

	// The upstream's metadata, as a device of the upstream checks it.
	root := filepath.Join(u.Dir(), "tuf", "1.root.json")
	tg, err := tufclient.Check(ctx, relay.URL, root, t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tg.Lookup("gateway", "1.0.0"); !ok || len(tg.AssignmentKeys) != 1 {
		t.Fatalf("targets via the relay: %+v", tg.All())
	}
	// A relay not synced for days: stale, refused.
	if _, err := tufclient.Check(ctx, relay.URL, root, t.TempDir(), time.Now().Add(72*time.Hour)); !tufclient.IsKind(err, tufclient.Expired) {
		t.Fatalf("expired timestamp: %v", err)
	}

	base := relay.URL
	send := func(path string, d dev, mirrorID string, counter uint64, edit func([]byte) []byte) (int, []byte) {
		t.Helper()
		inv := &checkin.Inventory{Mirror: mirrorID, Device: d.id, PublicKey: d.key.Public().(ed25519.PublicKey), Counter: counter,
			Time: time.Now().UTC(), DeviceType: "board-a", AgentVersion: "ferry-agent/test", Version: "0.0.0",
			Components: []checkin.Component{}, Slot: checkin.SlotState{Booted: "a"}, Result: "idle"}
		b, err := checkin.Sign(inv, d.key)
		if err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			b = edit(b)
		}
		resp, err := http.Post(base+path, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	if st, body := send(assign.Path, assigned, ids[0], 5, nil); st != http.StatusOK || !bytes.Equal(body, env) {
		t.Fatalf("assignment: %d %s", st, body)
	}
	if st, _ := send(assign.Path, idle, ids[0], 1, nil); st != http.StatusNoContent {
		t.Fatalf("no assignment: %d", st)
	}
	// An older check-in does not replace the newer one kept.
	if st, _ := send(checkin.Path, assigned, ids[0], 3, nil); st != http.StatusNoContent {
		t.Fatalf("older check-in: %d", st)
	}
	kept := func(d dev) uint64 {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(site.RelayDir(), "ferry", "reports", "net-"+d.id+".json"))
		if err != nil {
			t.Fatal(err)
		}
		r, err := stick.ParseReport(b)
		if err != nil {
			t.Fatal(err)
		}
		inv, err := checkin.OpenSigned(r.Checkin)
		if err != nil {
			t.Fatal(err)
		}
		return inv.Counter
	}
	if kept(assigned) != 5 || kept(idle) != 1 {
		t.Fatalf("kept counters %d, %d", kept(assigned), kept(idle))
	}
	if st, _ := send(checkin.Path, assigned, ids[0], 6, nil); st != http.StatusNoContent || kept(assigned) != 6 {
		t.Fatalf("newer check-in: %d, kept %d", st, kept(assigned))
	}

	// The relay keeps at most --max-devices devices' check-ins; those it
	// keeps still move on.
	capped := httptest.NewServer(server.NewHandler(site, server.HandlerOptions{Relay: true, Limits: server.Limits{MaxDevices: 2}}))
	defer capped.Close()
	base = capped.URL
	if st, _ := send(checkin.Path, newDev(), ids[0], 1, nil); st != http.StatusInsufficientStorage {
		t.Fatalf("a third device: %d", st)
	}
	if st, _ := send(checkin.Path, assigned, ids[0], 7, nil); st != http.StatusNoContent || kept(assigned) != 7 {
		t.Fatalf("a kept device, capped: %d, kept %d", st, kept(assigned))
	}
	base = relay.URL

	// Refused: forged, foreign; the site's own devices are not served here.
	forged := func(b []byte) []byte {
		var e struct {
			PayloadType string           `json:"payloadType"`
			Payload     string           `json:"payload"`
			Signatures  []map[string]any `json:"signatures"`
		}
		json.Unmarshal(b, &e)
		e.Signatures[0]["sig"] = base64.StdEncoding.EncodeToString(make([]byte, ed25519.SignatureSize))
		out, _ := json.Marshal(e)
		return out
	}
	siteIDs, err := site.MirrorIDs()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		mirror string
		edit   func([]byte) []byte
		status int
	}{
		{"forged", ids[0], forged, http.StatusUnauthorized},
		{"foreign", strings.Repeat("ab", 32), nil, http.StatusMisdirectedRequest},
		{"the site's own", siteIDs[0], nil, http.StatusNotFound},
	} {
		stranger := newDev()
		if st, body := send(checkin.Path, stranger, c.mirror, 1, c.edit); st != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, st, body, c.status)
		}
		if _, err := os.Stat(filepath.Join(site.RelayDir(), "ferry", "reports", "net-"+stranger.id+".json")); err == nil {
			t.Errorf("%s: kept", c.name)
		}
	}
}
