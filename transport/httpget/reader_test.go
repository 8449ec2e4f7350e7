package httpget

import (
	"strings"
	"testing"
	"time"
)

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		h                 string
		first, last, size int64
		ok                bool
	}{
		{"bytes 0-99/100", 0, 99, 100, true},
		{"bytes 42-99/100", 42, 99, 100, true},
		{"bytes 42-99/*", 42, 99, -1, true},
		{"bytes 42-42/43", 42, 42, 43, true},
		{"bytes 42-99/99", 0, 0, 0, false},                 // size must exceed last
		{"bytes 50-49/100", 0, 0, 0, false},                // last before first
		{"bytes 42-/100", 0, 0, 0, false},                  // no last
		{"bytes -42/100", 0, 0, 0, false},                  // suffix form is a request, not a response
		{"bytes 42-99", 0, 0, 0, false},                    // no size
		{"bytes */100", 0, 0, 0, false},                    // unsatisfied range (416), not content
		{"items 0-1/2", 0, 0, 0, false},                    // other unit
		{"bytes +1-2/3", 0, 0, 0, false},                   // sign
		{"bytes 1-2/-3", 0, 0, 0, false},                   // sign
		{"bytes 0-99999999999999999999/*", 0, 0, 0, false}, // overflow
		{"", 0, 0, 0, false},
	} {
		first, last, size, err := ParseContentRange(tc.h)
		if (err == nil) != tc.ok || (tc.ok && (first != tc.first || last != tc.last || size != tc.size)) {
			t.Errorf("ParseContentRange(%q) = %d, %d, %d, %v; want %d, %d, %d, ok %v", tc.h, first, last, size, err, tc.first, tc.last, tc.size, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "malformed Content-Range") {
			t.Errorf("ParseContentRange(%q): error %q", tc.h, err)
		}
	}
}

// FuzzParseContentRange: a header from an untrusted server never panics,
// and what is accepted is a consistent range.
func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-99/100", "bytes 1-2/*", "bytes -1/2", "bytes 9223372036854775806-9223372036854775806/9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		first, last, size, err := ParseContentRange(h)
		if err != nil {
			return
		}
		if first < 0 || last < first || (size != -1 && size <= last) {
			t.Fatalf("ParseContentRange(%q) = %d, %d, %d", h, first, last, size)
		}
	})
}

func TestBackoff(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		first, max time.Duration
		n          int
		want       time.Duration
	}{
		{500 * ms, 30 * time.Second, 1, 500 * ms},
		{500 * ms, 30 * time.Second, 2, time.Second},
		{500 * ms, 30 * time.Second, 7, 30 * time.Second}, // 32 s capped
		{500 * ms, 30 * time.Second, 200, 30 * time.Second},
		{100 * ms, 2 * time.Second, 5, 1600 * ms},
		{100 * ms, 2 * time.Second, 6, 2 * time.Second},
		{100 * ms, 2 * time.Second, 0, 100 * ms},
		{0, 30 * time.Second, 1, 30 * time.Second},
	} {
		if got := Backoff(tc.first, tc.max, tc.n); got != tc.want {
			t.Errorf("Backoff(%v, %v, %d) = %v, want %v", tc.first, tc.max, tc.n, got, tc.want)
		}
	}
}
