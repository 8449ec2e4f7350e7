// Command ferry is the host tool: it makes keys, packs and signs update
// bundles, and checks them. Every command is a thin layer over the bundle
// and verify packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/verify"
)

// Exit codes, documented in the README. Scripts may tell a bundle that was
// refused (3) from a failure to run at all (1).
const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 2
	exitRejected = 3
)

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := newRootCommand(stdin, stdout, stderr)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "ferry: error: %v\n", err)
	if h := hint(err); h != "" {
		fmt.Fprintf(stderr, "ferry: hint: %s\n", h)
	}
	return exitCode(err)
}

// usageError marks errors in how ferry was called.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var ue usageError
	var be *bundle.Error
	var te *verify.ThresholdError
	var de *verify.DeviceTypeError
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &be), errors.As(err, &te), errors.As(err, &de), errors.Is(err, errRejected):
		return exitRejected
	}
	return exitFailure
}

// errRejected is returned by commands that already printed why a bundle was
// refused.
var errRejected = errors.New("bundle rejected")

func hint(err error) string {
	var te *verify.ThresholdError
	var ue usageError
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
	case errors.As(err, &ue):
		return "run 'ferry help' or add --help to the command"
	}
	return ""
}
