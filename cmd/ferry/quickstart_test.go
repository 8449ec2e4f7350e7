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
	testtool.Require(t, "bash", "bash")
	b, err := os.ReadFile("../../docs/quickstart.md")
	if err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	blocks := 0
	for _, m := range fence.FindAllStringSubmatch(string(b), -1) {
		switch m[1] {
		case "sh":
			script.WriteString(m[2])
			blocks++
		case "text", "toml":
		default:
			t.Errorf("a ```%s block: give shell commands as ```sh (the test runs them), output as ```text", m[1])
		}
	}
	if blocks < 10 {
		t.Fatalf("found %d ```sh blocks in docs/quickstart.md", blocks)
	}

	home := t.TempDir()
	env := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "LANG=C.UTF-8"}
	// The build keeps using this machine's Go caches and settings.
	for _, v := range []string{"GOCACHE", "GOMODCACHE", "GOPATH", "GOENV", "GOFLAGS", "GOPROXY", "GOTOOLCHAIN"} {
		out, err := exec.Command("go", "env", v).Output()
		if err != nil {
			t.Fatalf("go env %s: %v", v, err)
		}
		env = append(env, v+"="+strings.TrimSpace(string(out)))
	}
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script.String())
	cmd.Dir = "../.."
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("the quickstart failed: %v\n%s", err, out.String())
	}

	// It ends as the guide says: 1.1.0 committed in slot a, and the
	// report back on the stick image.
	dir := filepath.Join(home, "ferry-quickstart")
	installed, err := os.ReadFile(filepath.Join(dir, "device/state/installed.json"))
	if err != nil || !strings.Contains(string(installed), `"version": "1.1.0"`) {
		t.Errorf("installed.json: %s %v\n%s", installed, err, out.String())
	}
	if slot, _ := os.ReadFile(filepath.Join(dir, "device/slot-a.img")); string(slot) != "demo-os 1.1.0, healthy\n" {
		t.Errorf("slot a holds %q", slot)
	}
	if !regexp.MustCompile(`(?m)demo-os 1\.1\.0 +1\.0\.0 +1\.1\.0 +success`).MatchString(out.String()) {
		t.Errorf("ferry media reports shows no successful 1.0.0 -> 1.1.0 report:\n%s", out.String())
	}
}
