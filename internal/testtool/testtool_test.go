package testtool

import (
	"fmt"
	"strings"
	"testing"
)

// recorder is a testing.TB that records how a helper ended the test.
type recorder struct {
	testing.TB
	ended string // "fatal" or "skip"
	msg   string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.ended, r.msg = "fatal", fmt.Sprintf(format, args...)
}

func (r *recorder) Skipf(format string, args ...any) {
	r.ended, r.msg = "skip", fmt.Sprintf(format, args...)
}

const missing = "ferry-no-such-tool"

func TestRequire(t *testing.T) {
	for _, tc := range []struct{ ci, want string }{
		{"", "skip"}, {"0", "skip"}, {"false", "skip"},
		{"1", "fatal"}, {"true", "fatal"},
	} {
		t.Run("CI="+tc.ci, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			r := &recorder{TB: t}
			Require(r, missing, "ferry-pkg")
			if r.ended != tc.want || !strings.Contains(r.msg, "Debian package ferry-pkg") {
				t.Errorf("missing tool: ended %q with %q, want %s naming the package", r.ended, r.msg, tc.want)
			}
		})
	}
	t.Run("present", func(t *testing.T) {
		t.Setenv("CI", "1")
		r := &recorder{TB: t}
		if p := Require(r, "sh", "dash"); p == "" || r.ended != "" {
			t.Errorf("sh: path %q, ended %q", p, r.ended)
		}
	})
}

func TestCondition(t *testing.T) {
	packages[missing] = "ferry-pkg"
	defer delete(packages, missing)
	t.Setenv("CI", "")
	if ok, err := Condition("have:" + missing); ok || err != nil {
		t.Errorf("missing, not CI: %v, %v; want false", ok, err)
	}
	if ok, err := Condition("have:curl"); err != nil {
		t.Errorf("curl: %v, %v", ok, err)
	}
	t.Setenv("CI", "1")
	if _, err := Condition("have:" + missing); err == nil || !strings.Contains(err.Error(), "ferry-pkg") {
		t.Errorf("missing under CI: %v, want an error naming the package", err)
	}
	if _, err := Condition("have:no-package-known"); err == nil {
		t.Error("a tool without a known package passed")
	}
	if _, err := Condition("other"); err == nil {
		t.Error("an unknown condition passed")
	}
}

func TestScriptProblems(t *testing.T) {
	for _, tc := range []struct {
		line string
		want int
	}{
		{"[!exec:mcopy] stop 'mtools is not installed'", 2},
		{"[exec:mdir] exec mdir -i stick.img@@1M ::/", 1},
		{"[linux] [!exec:curl] skip 'no curl'", 1},
		{"stop", 1},
		{"[short] stop", 1},
		{"[!have:mcopy] skip 'mtools is not installed'", 0},
		{"exec stop-the-world", 0},
		{"stdout 'stop'", 0},
		{"# [exec:x] stop in a comment", 0},
	} {
		if got := ScriptProblems(tc.line); len(got) != tc.want {
			t.Errorf("%q: %q, want %d problem(s)", tc.line, got, tc.want)
		}
	}
}
