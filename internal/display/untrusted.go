package display

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Untrusted makes text that came from outside ferry safe to print on a
// terminal: a bundle's description or signer name, a device's check-in or
// stick report, a remote server's error. Anything a terminal would act on
// rather than show is escaped visibly, so an operator sees that it was
// there and the terminal does nothing with it:
//
//   - C0 controls, DEL and C1 controls (which start ANSI CSI and OSC
//     sequences: colours, cursor moves, window titles, hyperlinks): \t, \n,
//     \r, and \x1b style escapes below U+0080, \u009b style above;
//   - bidirectional controls (U+061C, U+200E, U+200F, U+202A to U+202E,
//     U+2066 to U+2069), which reorder what is shown, and the line and
//     paragraph separators U+2028 and U+2029: \u202e;
//   - bytes that are not UTF-8: \xff.
//
// Everything else, including backslashes, is kept as it is, so
// Untrusted(Untrusted(s)) == Untrusted(s) and text without anything to
// escape comes back unchanged. JSON output needs none of this: the
// encoder escapes control characters itself.
func Untrusted(s string) string { return escape(s, "") }

// UntrustedLines is Untrusted for text of several lines, such as an
// error message or a log: newlines and tabs are kept, everything else
// Untrusted escapes is escaped.
func UntrustedLines(s string) string { return escape(s, "\n\t") }

func escape(s, keep string) string {
	i := unsafeAt(s, keep)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case !unsafeRune(r) || strings.ContainsRune(keep, r):
			b.WriteString(s[i : i+size])
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < utf8.RuneSelf:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		i += size
	}
	return b.String()
}

// unsafeAt is the index of the first byte of s to escape, or -1.
func unsafeAt(s, keep string) int {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return i
			}
			continue
		}
		if unsafeRune(r) && !strings.ContainsRune(keep, r) {
			return i
		}
	}
	return -1
}

// unsafeRune reports whether a terminal may act on r instead of showing
// it.
func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == '\u2028' || r == '\u2029'
}

// OneLine shortens untrusted text to one line of at most n runes for a
// table cell (runs of white space become one space, a cut ends in "…"),
// then escapes what is left that a terminal would act on (Untrusted).
func OneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		s = string(r[:n-1]) + "…"
	}
	return Untrusted(s)
}

// ShellQuote quotes s as one word for a POSIX shell when it needs it, for
// a command line shown in a hint: plain when it holds only characters no
// shell acts on, else in single quotes.
func ShellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./+=:@,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
