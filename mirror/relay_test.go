package mirror_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/transport/assign"
)

// upstreamStick is a stick built for a deployment of upstream u: a copy
// of u's layout and metadata, with the assignments envs (device id ->
// envelope).
func upstreamStick(t *testing.T, u *mirror.Store, envs map[string][]byte) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "ferry")
	if err := os.CopyFS(dir, os.DirFS(u.Dir())); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(dir, "keys"))
	os.MkdirAll(filepath.Join(dir, "assignments"), 0o755)
	for id, env := range envs {
		os.WriteFile(filepath.Join(dir, "assignments", id+".json"), env, 0o644)
	}
	return root
}

// TestRelay: a site mirror takes, from a stick built for an upstream's
// deployment, the assignments that verify with the upstream's published
// keys and have not expired; it pins the first upstream root it saw, and
// refuses metadata that does not verify.
func TestRelay(t *testing.T) {
	ctx := context.Background()
	u, site := newStore(t), newStore(t)
	if _, _, err := u.EnsureAssignmentKey(); err != nil {
		t.Fatal(err)
	}
	key, err := u.AssignmentKey()
	if err != nil {
		t.Fatal(err)
	}
	ids, err := u.MirrorIDs()
	if err != nil {
		t.Fatal(err)
	}
	_, stranger, _ := ed25519.GenerateKey(nil)
	now := time.Now().UTC().Truncate(time.Second)
	dev := func(c byte) string { return strings.Repeat(string(c), 64) }
	sign := func(device string, issued time.Time, k ed25519.PrivateKey) []byte {
		env, err := assign.Sign(&assign.Assignment{Mirror: ids[0], Device: device, Deployment: 3, Bundle: "gw", Version: "1.0.0",
			Digest: "sha256:" + strings.Repeat("0", 64), Counter: 7, Issued: issued, Expires: issued.Add(24 * time.Hour)}, k)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	stick := upstreamStick(t, u, map[string][]byte{
		dev('a'): sign(dev('a'), now, key),
		dev('b'): sign(dev('b'), now, stranger),               // forged
		dev('c'): sign(dev('c'), now.Add(-48*time.Hour), key), // expired
		dev('d'): sign(dev('a'), now, key),                    // another device's, renamed
	})
	res, err := site.Sync(ctx, stick, mirror.SyncOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := res.Relay
	if r == nil || r.Upstream != ids[0] || len(r.Assignments) != 1 || r.Assignments[0] != dev('a') || len(r.Skipped) != 3 {
		t.Fatalf("relay %+v", r)
	}
	skipped := ""
	for _, s := range r.Skipped {
		skipped += s.Reason + "\n"
	}
	for _, want := range []string{"(bad-signature)", "(expired)", "(foreign)"} {
		if !strings.Contains(skipped, want) {
			t.Errorf("skipped does not say %s:\n%s", want, skipped)
		}
	}
	if ups, err := site.RelayUpstreams(); err != nil || len(ups) != 1 || ups[0] != ids[0] {
		t.Errorf("RelayUpstreams %v %v", ups, err)
	}
	rc, err := site.RelayStick(now)
	if err != nil || rc == nil || rc.Deployment != 3 || len(rc.Assignments) != 1 || rc.TUF["targets.json"] == nil || rc.TUF["1.root.json"] == nil {
		t.Fatalf("RelayStick %+v %v", rc, err)
	}
	// A day later it has expired: no stick from the relay.
	if rc, err := site.RelayStick(now.Add(25 * time.Hour)); err != nil || rc != nil {
		t.Errorf("RelayStick a day later: %+v %v", rc, err)
	}

	// Targets changed on the way: refused, nothing relayed.
	bad := upstreamStick(t, u, map[string][]byte{dev('e'): sign(dev('e'), now, key)})
	p := filepath.Join(bad, "ferry", "tuf", "targets.json")
	b, _ := os.ReadFile(p)
	os.WriteFile(p, bytes.Replace(b, []byte(`"version": 2`), []byte(`"version": 9`), 1), 0o644)
	if res, err := site.Sync(ctx, bad, mirror.SyncOptions{}); err == nil || !strings.Contains(err.Error(), "upstream fleet") || res.Relay != nil {
		t.Errorf("tampered targets: %+v %v", res, err)
	}
	// Another upstream, whose root does not chain from the one the site
	// trusts: refused.
	other := newStore(t)
	if _, _, err := other.EnsureAssignmentKey(); err != nil {
		t.Fatal(err)
	}
	if _, err := site.Sync(ctx, upstreamStick(t, other, map[string][]byte{dev('f'): sign(dev('f'), now, key)}), mirror.SyncOptions{}); err == nil || !strings.Contains(err.Error(), "upstream metadata") {
		t.Errorf("another upstream: %v", err)
	}
}
