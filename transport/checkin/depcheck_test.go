package checkin_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies: the agent imports this package to report to a
// mirror, so it stays standard library only (the SQLite store is on the
// mirror's side, in package mirror).
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/ferry-update/ferry/transport/checkin").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		first, _, _ := strings.Cut(dep, "/")
		if strings.Contains(first, ".") && dep != "github.com/ferry-update/ferry/transport/checkin" {
			t.Errorf("checkin depends on %s", dep)
		}
	}
}
