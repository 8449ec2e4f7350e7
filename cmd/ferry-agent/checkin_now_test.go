package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ferry-update/ferry/internal/cliexit"
	"github.com/ferry-update/ferry/transport/checkin"
)

// checkins is a mirror's check-in endpoint that records what devices
// say, in check-ins whose signatures verify.
type checkins struct {
	mu   sync.Mutex
	list []checkin.Inventory
}

func (c *checkins) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != checkin.Path || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	inv, err := checkin.OpenSigned(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	if n := len(c.list); n > 0 && inv.Counter <= c.list[n-1].Counter {
		c.mu.Unlock()
		http.Error(w, "counter did not rise", http.StatusConflict)
		return
	}
	c.list = append(c.list, *inv)
	c.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (c *checkins) last() (checkin.Inventory, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.list) == 0 {
		return checkin.Inventory{}, 0
	}
	return c.list[len(c.list)-1], len(c.list)
}

// install, boot-check and commit check in at once when a mirror is
// configured, so the mirror's device list is right before the next poll.
func TestCommandsCheckInAtOnce(t *testing.T) {
	got := &checkins{}
	srv := httptest.NewServer(got)
	defer srv.Close()
	dir, bundlePath := ociDevice(t, "\n[mirror]\nurl = \""+srv.URL+"\"\ntuf_root = \"mirror-root.json\"\n")
	setDeviceID(t, dir, "gw-30")
	mirrorID := writeMirrorRoot(t, dir)

	code, stdout, stderr := agentRun(dir, "install", bundlePath)
	if code != cliexit.OK {
		t.Fatalf("install: exit %d\n%s%s", code, stdout, stderr)
	}
	if r, n := got.last(); n != 1 || r.Name != "gw-30" || r.Result != "rebooting" || r.Version != "0.0.0" {
		t.Fatalf("after install: %d check-ins, last %+v\n%s", n, r, stderr)
	}
	for i, step := range []string{"boot-check", "commit"} {
		code, stdout, stderr := agentRun(dir, step)
		if code != cliexit.OK && step != "commit" {
			t.Fatalf("%s: exit %d\n%s%s", step, code, stdout, stderr)
		}
		if _, n := got.last(); n != 2+i {
			t.Errorf("%s: %d check-ins, want %d", step, n, 2+i)
		}
	}
	if r, _ := got.last(); r.Version != "1.0.0" || r.Result != "committed" || r.Mirror != mirrorID || len(r.Components) != 1 || r.Components[0].Version != "1.0.0" {
		t.Errorf("after boot-check: %+v", r)
	}
}

// A check-in that fails does not fail the command: it is logged, and the
// next poll tries again.
func TestCheckInFailureDoesNotFailCommand(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	dir, bundlePath := ociDevice(t, "\n[mirror]\nurl = \""+url+"\"\ntuf_root = \"mirror-root.json\"\n")
	setDeviceID(t, dir, "gw-31")
	code, stdout, stderr := agentRun(dir, "install", bundlePath)
	if code != cliexit.OK || !strings.Contains(stdout, "installed sim-os 1.0.0") {
		t.Fatalf("install: exit %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "warning: check in with "+url) || !strings.Contains(stderr, "the next poll checks in again") {
		t.Errorf("stderr does not tell the failed check-in:\n%s", stderr)
	}
}

// writeMirrorRoot writes dir/mirror-root.json: as much of a mirror TUF
// root as a check-in needs (its root keys name the mirror).
func writeMirrorRoot(t *testing.T, dir string) string {
	t.Helper()
	root := `{"signed":{"_type":"root","roles":{"root":{"keyids":["k1"],"threshold":1}}},"signatures":[]}`
	if err := os.WriteFile(filepath.Join(dir, "mirror-root.json"), []byte(root), 0o644); err != nil {
		t.Fatal(err)
	}
	id, err := checkin.MirrorID([]byte(root))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// setDeviceID puts device_id = ID at the top of dir's agent.toml.
func setDeviceID(t *testing.T, dir, id string) {
	t.Helper()
	p := filepath.Join(dir, "agent.toml")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, append([]byte("device_id = \""+id+"\"\n"), b...), 0o644); err != nil {
		t.Fatal(err)
	}
}
