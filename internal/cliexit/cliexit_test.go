package cliexit

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

var errRefused = errors.New("refused")
var errDenied = errors.New("denied")

var prog = Program{
	Name:    "tool",
	Refused: func(err error) bool { return errors.Is(err, errRefused) },
	Denied:  func(err error) bool { return errors.Is(err, errDenied) },
	Hint: func(err error) string {
		if errors.Is(err, errRefused) {
			return "sign it"
		}
		return ""
	},
}

func TestExit(t *testing.T) {
	for _, tc := range []struct {
		err    error
		code   int
		stderr string
	}{
		{nil, OK, ""},
		{errors.New("disk full"), Failure, "tool: error: disk full\n"},
		{UsageError{Err: errors.New("want FILE")}, Usage, "tool: error: want FILE\ntool: hint: run 'tool help' or add --help to the command\n"},
		{fmt.Errorf("checking b.ferry: %w", errRefused), Refused, "tool: error: checking b.ferry: refused\ntool: hint: sign it\n"},
		{UsageError{Err: errRefused}, Usage, "tool: error: refused\ntool: hint: sign it\n"},
		{fmt.Errorf("GET /api/v1/devices: %w", errDenied), Denied, "tool: error: GET /api/v1/devices: denied\n"},
		{UsageError{Err: errRefused, Hint: "did you mean --x?"}, Usage, "tool: error: refused\ntool: hint: did you mean --x?\n"},
		// What an error quotes reaches no terminal raw; its lines stay lines.
		{fmt.Errorf("bundle \x1b]0;pwned\x07\u202e: %w", errors.Join(errors.New("one"), errors.New("two\r"))), Failure, "tool: error: bundle \\x1b]0;pwned\\x07\\u202e: one\ntwo\\r\n"},
	} {
		var b strings.Builder
		if code := prog.Exit(&b, tc.err); code != tc.code || b.String() != tc.stderr {
			t.Errorf("Exit(%v) = %d, %q; want %d, %q", tc.err, code, b.String(), tc.code, tc.stderr)
		}
	}
}
