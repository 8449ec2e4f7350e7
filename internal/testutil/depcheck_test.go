package testutil_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestOnlyTestsImport keeps testutil, testtool and depcheck out of every package's
// non-test imports, so they never end up in a binary.
func TestOnlyTestsImport(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the dependency fence needs the go command: %v", err)
	}
	out, err := exec.Command(gobin, "list", "-f", `{{.ImportPath}}: {{join .Imports " "}}`, "github.com/ferry-update/ferry/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for line := range strings.Lines(string(out)) {
		pkg, imports, _ := strings.Cut(line, ":")
		for _, imp := range strings.Fields(imports) {
			if (imp == "github.com/ferry-update/ferry/internal/testutil" || imp == "github.com/ferry-update/ferry/internal/testtool" || imp == "github.com/ferry-update/ferry/internal/depcheck") && pkg != "github.com/ferry-update/ferry/internal/testutil" {
				t.Errorf("a non-test file of %s imports %s", pkg, imp)
			}
		}
	}
}
