package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/internal/testtool"
	"github.com/ferry-update/ferry/verify"
)

// TestKeysDoc runs docs/keys.md's ```sh blocks in order, as one bash
// script (see docScript: "! COMMAND" must fail), with a ferry built from
// this tree on PATH and HOME a fresh directory: the key ceremony, with
// root keys in SoftHSM2 tokens and 2-of-3 signing, and the rotation,
// revocation and lost-key drills all work as written. It then checks
// where the drills end.
func TestKeysDoc(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds ferry and runs the key ceremony")
	}
	testtool.Require(t, "softhsm2-util", "softhsm2")
	script := docScript(t, "../../docs/keys.md", 10)
	bin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	home := t.TempDir()
	out, err := runDocScript(t, script, home, []string{"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH")}, home)
	if err != nil {
		t.Fatalf("docs/keys.md failed: %v\n%s", err, out)
	}
	for _, want := range []string{
		"root role of v1: 1 of 2 required signature(s), 1 more needed",
		"complete: its signatures meet the thresholds",
		"(Build machine: release signing)",
		"OK          trust root v4",
		"do not count",                           // the stolen key, refused
		"0 valid signature(s) from trusted keys", // the retired key
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the output does not say %q:\n%s", want, out)
		}
	}
	dir := filepath.Join(home, "ferry-keys")
	b, err := os.ReadFile(filepath.Join(dir, "5.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	root, err := verify.ParseRoot(b)
	if err != nil {
		t.Fatal(err)
	}
	s := root.Signed()
	if root.Version() != 5 || len(s.Revoked) != 2 || s.Roles[verify.RoleRoot].Threshold != 2 || len(s.Roles[verify.RoleRoot].KeyIDs) != 3 {
		t.Errorf("the last root: v%d, revoked %v, root role %+v", root.Version(), s.Revoked, s.Roles[verify.RoleRoot])
	}
	for _, f := range []string{"alice-root.key", "release-1.key"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("%s exists: keys made in a token never leave it", f)
		}
	}
}
