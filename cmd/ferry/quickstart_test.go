package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/internal/testtool"
)

// fence matches a fenced code block of a Markdown file: its info string
// and its content.
var fence = regexp.MustCompile("(?ms)^```([a-z]*)\n(.*?)^```$")

// TestQuickstart runs docs/quickstart.md's ```sh blocks in order, as one
// bash script under set -euo pipefail, from the repository's top directory
// with HOME a fresh directory, as a person would type them: the guide
// builds the binaries itself. So every command in it works as written.
func TestQuickstart(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds ferry and runs the quickstart")
	}
	testtool.Require(t, "mcopy", "mtools")
	script := docScript(t, "../../docs/quickstart.md", 10)
	home := t.TempDir()
	out, err := runDocScript(t, script, home, nil, "..", "..")
	if err != nil {
		t.Fatalf("the quickstart failed: %v\n%s", err, out)
	}

	// It ends as the guide says: 1.1.0 committed in slot a, and the
	// report back on the stick image.
	dir := filepath.Join(home, "ferry-quickstart")
	installed, err := os.ReadFile(filepath.Join(dir, "device/state/installed.json"))
	if err != nil || !strings.Contains(string(installed), `"version": "1.1.0"`) {
		t.Errorf("installed.json: %s %v\n%s", installed, err, out)
	}
	if slot, _ := os.ReadFile(filepath.Join(dir, "device/slot-a.img")); string(slot) != "demo-os 1.1.0, healthy\n" {
		t.Errorf("slot a holds %q", slot)
	}
	if !regexp.MustCompile(`(?m)demo-os 1\.1\.0 +1\.0\.0 +1\.1\.0 +success`).MatchString(out) {
		t.Errorf("ferry media reports shows no successful 1.0.0 -> 1.1.0 report:\n%s", out)
	}
}

// docScript returns the ```sh blocks of a guide in order, as one script.
// Output is shown as ```text (or ```toml for files); any other block is
// an error, so that nothing a reader could type goes untested. A line
// "! COMMAND" is a command that must fail: bash's set -e would let it
// pass either way, so it becomes a call of mustFail (runDocScript
// defines it).
func docScript(t *testing.T, path string, minBlocks int) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	blocks := 0
	for _, m := range fence.FindAllStringSubmatch(string(b), -1) {
		switch m[1] {
		case "sh":
			for line := range strings.Lines(m[2]) {
				if rest, ok := strings.CutPrefix(line, "! "); ok {
					line = "mustFail " + rest
				}
				script.WriteString(line)
			}
			blocks++
		case "text", "toml":
		default:
			t.Errorf("%s: a ```%s block: give shell commands as ```sh (the test runs them), output as ```text", path, m[1])
		}
	}
	if blocks < minBlocks {
		t.Fatalf("found %d ```sh blocks in %s", blocks, path)
	}
	return script.String()
}

// runDocScript runs script with bash under set -euo pipefail in dir (from
// the repository's top directory: "..", ".."), with HOME a fresh home and
// the Go settings of this machine, as a person would type it. extraEnv
// is added to the environment.
func runDocScript(t *testing.T, script, home string, extraEnv []string, dir ...string) (string, error) {
	t.Helper()
	testtool.Require(t, "bash", "bash")
	env := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "LANG=C.UTF-8"}
	// The build keeps using this machine's Go caches and settings.
	for _, v := range []string{"GOCACHE", "GOMODCACHE", "GOPATH", "GOENV", "GOFLAGS", "GOPROXY", "GOTOOLCHAIN"} {
		out, err := exec.Command("go", "env", v).Output()
		if err != nil {
			t.Fatalf("go env %s: %v", v, err)
		}
		env = append(env, v+"="+strings.TrimSpace(string(out)))
	}
	env = append(env, extraEnv...)
	const mustFail = "mustFail() { if \"$@\"; then echo \"this should have failed: $*\" >&2; return 1; fi; }\n"
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", mustFail+script)
	cmd.Dir = filepath.Join(dir...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}
