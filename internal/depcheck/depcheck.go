package depcheck

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Module is the module path of ferry itself.
const Module = "github.com/ferry-update/ferry"

// Dep is one package a package depends on.
type Dep struct {
	Path     string // import path
	Module   string // module path; empty for the standard library
	Standard bool   // part of the standard library
}

// DeviceEnv is the environment of a device build for goarch: Linux, no cgo
// (the agent is built static), GOARM=7 for arm.
func DeviceEnv(goarch string) []string {
	env := []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + goarch}
	if goarch == "arm" {
		env = append(env, "GOARM=7")
	}
	return env
}

// DeviceArchs are the architectures ferry-agent is built for (make cross).
var DeviceArchs = []string{"amd64", "arm64", "arm"}

// Deps returns every package pkgs depend on, themselves included (go list
// -deps), with env added to the go command's environment. It fails t when
// the go command is missing or go list fails.
func Deps(t testing.TB, env []string, pkgs ...string) []Dep {
	t.Helper()
	out := goList(t, env, append([]string{"-deps", "-f", "{{.ImportPath}} {{.Standard}} {{with .Module}}{{.Path}}{{end}}"}, pkgs...)...)
	var deps []Dep
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) < 2 {
			t.Fatalf("go list: unexpected line %q", line)
			return nil
		}
		d := Dep{Path: f[0], Standard: f[1] == "true"}
		if len(f) > 2 {
			d.Module = f[2]
		}
		deps = append(deps, d)
	}
	if len(deps) == 0 {
		t.Fatalf("go list -deps %s listed nothing", strings.Join(pkgs, " "))
	}
	return deps
}

// Imports returns the packages the non-test files of pkg import directly.
// It fails t as Deps does.
func Imports(t testing.TB, pkg string) []string {
	t.Helper()
	return strings.Fields(string(goList(t, nil, "-f", `{{join .Imports "\n"}}`, pkg)))
}

// Forbid fails t for every dependency that is one of prefixes or below
// one (a path prefix: "net/http" covers "net/http/httptrace" but not
// "net/httpx").
func Forbid(t testing.TB, deps []Dep, prefixes ...string) {
	t.Helper()
	for _, d := range deps {
		for _, p := range prefixes {
			if Under(d.Path, p) {
				t.Errorf("depends on %s", d.Path)
			}
		}
	}
}

// Under reports whether path is prefix or a package below it.
func Under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

func goList(t testing.TB, env []string, args ...string) []byte {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the dependency fence needs the go command: %v", err)
		return nil
	}
	cmd := exec.Command(gobin, append([]string{"list"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
		return nil
	}
	return out
}
