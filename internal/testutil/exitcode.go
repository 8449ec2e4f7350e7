package testutil

import (
	"errors"
	"os/exec"
	"strconv"

	"github.com/rogpeppe/go-internal/testscript"
)

// ExitCode is a testscript command, CMD N PROG [ARGS...], that runs PROG
// and requires exit status N. testscript's "! exec" only knows non-zero,
// and ferry's exit codes (README) tell a refused bundle (3) from a usage
// error (2) and any other failure (1). PROG's stdout and stderr are kept
// for the stdout and stderr commands. Register it under the name the
// scripts use: Cmds: {"exitcode": testutil.ExitCode}.
func ExitCode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: N PROG [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exit code %q is not a number", args[0])
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("%s: %v", args[1], err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with %d, want %d", args[1], got, want)
	}
}
