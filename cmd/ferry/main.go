package main

import (
	"context"
	"errors"
	"io"
	"os"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/cliexit"
	"github.com/ferry-update/ferry/verify"
)

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := newRootCommand(stdin, stdout, stderr)
	cmd.SetArgs(args)
	return program.Exit(stderr, cmd.ExecuteContext(context.Background()))
}

// program is how ferry ends: exit codes and error lines (package cliexit).
var program = cliexit.Program{Name: "ferry", Refused: refused, Hint: hint}

// refused says whether err refuses a bundle (exit code 3).
func refused(err error) bool {
	var be *bundle.Error
	var te *verify.ThresholdError
	var de *verify.DeviceTypeError
	return errors.As(err, &be) || errors.As(err, &te) || errors.As(err, &de) || errors.Is(err, errRejected)
}

// errRejected is returned by commands that already printed why a bundle was
// refused.
var errRejected = errors.New("bundle rejected")

func hint(err error) string {
	var te *verify.ThresholdError
	var re *verify.RootError
	switch {
	case errors.Is(err, verify.ErrEncryptedKey):
		return "set FERRY_KEY_PASSPHRASE or run from a terminal to be asked for it"
	case errors.As(err, &te):
		return "sign with more trusted keys (ferry bundle sign FILE --key KEY), or check against the right keys (--key PUB or --trust ROOT)"
	case errors.As(err, &re) && re.Kind == verify.RootExpired:
		return "renew the root: ferry trust sign, or a new version signed by the root role"
	case errors.Is(err, bundle.ErrTruncated):
		return "the file is incomplete: copy or download it again"
	}
	return ""
}
