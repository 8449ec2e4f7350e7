package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/internal/cliexit"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/transport/stick"
)

// TestInstallFromStick installs from a directory holding a stick's ferry/
// layout (a mirror store copied there) and finds the report on it.
func TestInstallFromStick(t *testing.T) {
	dir, bundlePath := ociDevice(t, "")
	cfg, _ := os.ReadFile(filepath.Join(dir, "agent.toml"))
	if err := os.WriteFile(filepath.Join(dir, "agent.toml"), append([]byte("device_id = \"gw-7\"\n"), cfg...), 0o644); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(dir, "release.key"))
	if err != nil {
		t.Fatal(err)
	}
	stickDir := t.TempDir()
	st, err := mirror.Init(filepath.Join(stickDir, "ferry"), key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Add(bundlePath); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(stickDir, "ferry", "keys"))

	code, stdout, stderr := agentRun(dir, "install", stickDir)
	if code != cliexit.OK || !strings.Contains(stdout, "installed sim-os 1.0.0 into slot b") {
		t.Fatalf("install %s: exit %d\n%s%s", stickDir, code, stdout, stderr)
	}
	checkInstalled(t, dir)
	s, err := stick.OpenDir(stickDir)
	if err != nil {
		t.Fatal(err)
	}
	// On trial until boot-check decides: the report says pending.
	reps, err := s.Reports()
	if err != nil || len(reps) != 1 || reps[0].Report == nil || reps[0].Report.DeviceID != "gw-7" || reps[0].Report.Result != stick.ResultPending {
		t.Fatalf("reports %+v, %v", reps, err)
	}
	// boot-check commits and rewrites the report on the stick, still
	// mounted where the install found it.
	if code, stdout, stderr := agentRun(dir, "boot-check"); code != cliexit.OK {
		t.Fatalf("boot-check: exit %d\n%s%s", code, stdout, stderr)
	}
	after, err := s.Reports()
	if err != nil || len(after) != 1 || after[0].Name != reps[0].Name || after[0].Report == nil || after[0].Report.Result != stick.ResultSuccess || after[0].Report.VersionAfter != "1.0.0" {
		t.Fatalf("reports after boot-check %+v, %v", after, err)
	}
	_, status, _ := agentRun(dir, "status")
	if !strings.Contains(status, "trust\t") && !strings.Contains(status, "1 of 1 keys") {
		t.Errorf("status does not show the trust:\n%s", status)
	}
}
