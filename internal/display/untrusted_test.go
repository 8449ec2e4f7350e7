package display_test

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/ferry-update/ferry/internal/display"
)

func TestUntrusted(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"gateway 1.4.2", "gateway 1.4.2"},
		{"Jörg Müller, 東京 ✓ \uFFFD", "Jörg Müller, 東京 ✓ \uFFFD"},
		{`C:\ferry\x1b`, `C:\ferry\x1b`},
		// ANSI colour, cursor and erase sequences, an OSC window title and
		// an OSC 8 hyperlink, all with ESC.
		{"\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
		{"ok\x1b[2K\x1b[1A", `ok\x1b[2K\x1b[1A`},
		{"\x1b]0;pwned\x07", `\x1b]0;pwned\x07`},
		{"\x1b]8;;http://evil/\x1b\\click\x1b]8;;\x1b\\", `\x1b]8;;http://evil/\x1b\click\x1b]8;;\x1b\`},
		// C1 controls as characters (CSI, OSC, NEL) and as raw bytes,
		// which are not UTF-8.
		{"\u009b31m\u009d0;t\u0085", `\u009b31m\u009d0;t\u0085`},
		{"\x9b31m", `\x9b31m`},
		// Other C0 controls, DEL.
		{"a\x00b\x07c\x08d\x7f", `a\x00b\x07c\x08d\x7f`},
		{"one\ntwo\r\tthree", `one\ntwo\r\tthree`},
		// Bidirectional overrides, isolates and marks; line separators.
		{"invoice\u202Efdp.exe", `invoice\u202efdp.exe`},
		{"\u202A\u202B\u202C\u202D", `\u202a\u202b\u202c\u202d`},
		{"\u2066a\u2067b\u2068c\u2069", `\u2066a\u2067b\u2068c\u2069`},
		{"\u200E\u200F\u061C", `\u200e\u200f\u061c`},
		{"a\u2028b\u2029", `a\u2028b\u2029`},
		// Invalid UTF-8: stray continuation bytes, a truncated sequence,
		// an overlong encoding, a surrogate.
		{"\xff\xfe", `\xff\xfe`},
		{"ab\xe6\x9d", `ab\xe6\x9d`},
		{"\xc0\xaf", `\xc0\xaf`},
		{"\xed\xa0\x80", `\xed\xa0\x80`},
	} {
		if got := display.Untrusted(tc.in); got != tc.want {
			t.Errorf("Untrusted(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestUntrustedLines(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"verify: refused\n\tkey abc: unknown", "verify: refused\n\tkey abc: unknown"},
		{"a\r\n\x1b[31mb\u202e", "a\\r\n\\x1b[31mb\\u202e"},
	} {
		if got := display.UntrustedLines(tc.in); got != tc.want {
			t.Errorf("UntrustedLines(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzUntrusted: whatever the input, the output is valid UTF-8 without a
// control character, a bidirectional control or a line separator;
// escaping twice changes nothing; and text with nothing to escape comes
// back as it was.
func FuzzUntrusted(f *testing.F) {
	for _, s := range []string{"", "gateway", "\x1b[31mred", "\x9b", "a\u202eb", "\xff", "ok\n", `\x1b`, "Jörg"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := display.Untrusted(s)
		if !utf8.ValidString(got) {
			t.Fatalf("Untrusted(%q) = %q: not UTF-8", s, got)
		}
		for _, r := range got {
			if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == '\u2028' || r == '\u2029' {
				t.Fatalf("Untrusted(%q) = %q holds %U", s, got, r)
			}
		}
		for i := 0; i < len(got); i++ {
			if got[i] < 0x20 || got[i] == 0x7f {
				t.Fatalf("Untrusted(%q) = %q holds byte %#x", s, got, got[i])
			}
		}
		if again := display.Untrusted(got); again != got {
			t.Fatalf("Untrusted is not idempotent: %q -> %q -> %q", s, got, again)
		}
		clean := utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool {
			return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == '\u2028' || r == '\u2029'
		})
		if clean != (got == s) {
			t.Fatalf("Untrusted(%q) = %q: clean input %v, unchanged %v", s, got, clean, got == s)
		}
		lines := display.UntrustedLines(s)
		if strings.Count(lines, "\n") != strings.Count(s, "\n") || display.Untrusted(lines) != got {
			t.Fatalf("UntrustedLines(%q) = %q, Untrusted = %q", s, lines, got)
		}
	})
}

func TestOneLine(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"two\nlines\t and  gaps", 40, "two lines and gaps"},
		{"exactly10!", 10, "exactly10!"},
		{"eleven runes", 10, "eleven ru…"},
		{"ééééééééééé", 5, "éééé…"},
		{"bell\a inside", 20, `bell\x07 inside`},
	} {
		if got := display.OneLine(tc.in, tc.n); got != tc.want {
			t.Errorf("OneLine(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"root.json":         "root.json",
		"/etc/ferry/r.json": "/etc/ferry/r.json",
		"":                  "''",
		"my root.json":      "'my root.json'",
		"it's":              `'it'\''s'`,
		"$HOME/r":           "'$HOME/r'",
	} {
		if got := display.ShellQuote(in); got != want {
			t.Errorf("ShellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
