package testutil_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestOnlyTestsImport keeps testutil out of every package's non-test
// imports, so it never ends up in a binary.
func TestOnlyTestsImport(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	out, err := exec.Command(gobin, "list", "-f", `{{.ImportPath}}: {{join .Imports " "}}`, "github.com/ferry-update/ferry/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for line := range strings.Lines(string(out)) {
		if strings.Contains(line, "github.com/ferry-update/ferry/internal/testutil") && !strings.HasPrefix(line, "github.com/ferry-update/ferry/internal/testutil:") {
			t.Errorf("a non-test file imports testutil: %s", strings.TrimSpace(line))
		}
	}
}
