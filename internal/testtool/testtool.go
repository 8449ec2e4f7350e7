package testtool

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// CI reports whether the tests run in CI, where a missing tool is a
// failure: the CI environment variable is set to anything but "" or
// "false"/"0".
func CI() bool {
	switch strings.ToLower(os.Getenv("CI")) {
	case "", "0", "false":
		return false
	}
	return true
}

// Require returns the path of the program name, which Debian's package
// pkg installs. If it is not on PATH, the test is skipped, or failed
// under CI.
func Require(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, fmt.Sprintf("%s (Debian package %s)", name, pkg))
	}
	return p
}

// Missing ends the test for want, something it needs that this machine
// does not have: a skip, or a failure under CI.
func Missing(t testing.TB, want string) {
	t.Helper()
	if CI() {
		t.Fatalf("%s is not installed, and CI must run this test (.ci/run installs it)", want)
	} else {
		t.Skipf("%s is not installed: skipping (CI fails here)", want)
	}
}

// packages names the Debian package of each tool the test scripts ask for
// with [have:NAME].
var packages = map[string]string{
	"mcopy":           "mtools",
	"mdir":            "mtools",
	"mtype":           "mtools",
	"curl":            "curl",
	"sqlite3":         "sqlite3",
	"openssl":         "openssl",
	"fw_printenv":     "libubootenv-tool",
	"fw_setenv":       "libubootenv-tool",
	"skopeo":          "skopeo",
	"docker-registry": "docker-registry",
	"softhsm2-util":   "softhsm2",
}

// Condition is a testscript Params.Condition giving scripts [have:NAME]:
// true if the program NAME is installed, false if not, and an error (which
// fails the script) if not under CI. Scripts use it instead of testscript's
// [exec:NAME], which cannot fail:
//
//	[!have:mcopy] skip 'needs mtools'
//	[have:mdir] exec mdir -i stick.img@@1M ::/
func Condition(cond string) (bool, error) {
	name, ok := strings.CutPrefix(cond, "have:")
	if !ok {
		return false, fmt.Errorf("unknown condition %q", cond)
	}
	pkg, ok := packages[name]
	if !ok {
		return false, fmt.Errorf("[have:%s]: no Debian package known for %s: add it to testtool's list", name, name)
	}
	if _, err := exec.LookPath(name); err != nil {
		if CI() {
			return false, fmt.Errorf("%s (Debian package %s) is not installed, and CI must run this script", name, pkg)
		}
		return false, nil
	}
	return true, nil
}

// CheckScripts fails t for every line of dir's testscripts (*.txtar)
// that could let a script pass without testing: a [exec:NAME] condition
// (it is false for a missing tool even under CI: use [have:NAME]) or a
// stop command (it ends the script with a pass and drops every assertion
// after it: put what needs a tool last, behind [!have:NAME] skip).
func CheckScripts(t testing.TB, dir string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.txtar"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testscripts in %s: %v", dir, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "-- ") {
				break // the script ends where its files begin
			}
			for _, p := range ScriptProblems(line) {
				t.Errorf("%s:%d: %s", f, i+1, p)
			}
		}
	}
}

// ScriptProblems returns what CheckScripts finds wrong with one line of a
// testscript.
func ScriptProblems(line string) []string {
	var problems []string
	rest := strings.TrimSpace(line)
	if strings.HasPrefix(rest, "#") {
		return nil
	}
	for strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			break
		}
		cond := strings.TrimPrefix(rest[1:end], "!")
		if strings.HasPrefix(cond, "exec:") {
			problems = append(problems, fmt.Sprintf("[%s] cannot fail under CI: use [have:%s]", rest[1:end], strings.TrimPrefix(cond, "exec:")))
		}
		rest = strings.TrimSpace(rest[end+1:])
	}
	rest = strings.TrimPrefix(rest, "! ")
	if f := strings.Fields(rest); len(f) > 0 && f[0] == "stop" {
		problems = append(problems, "stop passes the script and drops the assertions after it: put what needs a tool last, behind [!have:NAME] skip")
	}
	return problems
}

// Chromium returns the path of the Chromium browser (Debian package
// chromium), for tests that render pages in it. Without it the test is
// skipped, or failed under CI.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	Missing(t, "chromium (Debian package chromium)")
	return ""
}
