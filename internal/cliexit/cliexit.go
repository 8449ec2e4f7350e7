package cliexit

import (
	"errors"
	"fmt"
	"io"

	"github.com/ferry-update/ferry/internal/display"
)

// Exit codes of ferry and ferry-agent, documented in the README's "Exit
// codes" table. Scripts tell a refused bundle (Refused) from a failure to
// run at all (Failure).
const (
	OK      = 0 // success
	Failure = 1 // anything else: I/O, keys, network, configuration, ...
	Usage   = 2 // how the command was called: unknown flag, missing argument, bad value
	Refused = 3 // a bundle was refused: tampered, truncated, untrusted, wrong device type
	Denied  = 4 // a mirror refused the credentials: a bad, expired or revoked API token, or a role that does not allow it
)

// UsageError marks an error in how a command was called; its exit code is
// Usage. Hint, when set, is what to do about it (such as "did you mean
// --json?"); it comes before the Program's hints.
type UsageError struct {
	Err  error
	Hint string
}

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Program is what differs between the commands when they end.
type Program struct {
	Name    string             // the command's name, prefixed to its error lines
	Refused func(error) bool   // whether an error refuses a bundle (exit code Refused)
	Denied  func(error) bool   // whether an error refuses the credentials (exit code Denied)
	Hint    func(error) string // what to do about an error, or ""
}

// Code is the exit code for err (nil: OK).
func (p Program) Code(err error) int {
	var ue UsageError
	switch {
	case err == nil:
		return OK
	case errors.As(err, &ue):
		return Usage
	case p.Refused != nil && p.Refused(err):
		return Refused
	case p.Denied != nil && p.Denied(err):
		return Denied
	}
	return Failure
}

// Exit reports a non-nil err on stderr as "NAME: error: …", followed by
// "NAME: hint: …" when there is something to do about it, and returns the
// exit code for err. A usage error without a hint of its own points to
// "NAME help". Errors quote what they were given (a bundle's name, a
// server's answer, a mistyped flag), so both lines go through
// display.UntrustedLines: a terminal gets no escape sequence from them.
func (p Program) Exit(stderr io.Writer, err error) int {
	if err == nil {
		return OK
	}
	fmt.Fprintf(stderr, "%s: error: %s\n", p.Name, display.UntrustedLines(err.Error()))
	var ue UsageError
	isUsage := errors.As(err, &ue)
	h := ue.Hint
	if h == "" && p.Hint != nil {
		h = p.Hint(err)
	}
	if h == "" && isUsage {
		h = fmt.Sprintf("run '%s help' or add --help to the command", p.Name)
	}
	if h != "" {
		fmt.Fprintf(stderr, "%s: hint: %s\n", p.Name, display.UntrustedLines(h))
	}
	return p.Code(err)
}
