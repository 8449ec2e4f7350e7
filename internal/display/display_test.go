package display

import (
	"testing"
	"time"
)

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 100000: "97.7 KiB", 2 << 30: "2.0 GiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestTime(t *testing.T) {
	if got := Time(time.Time{}); got != "" {
		t.Errorf("Time(zero) = %q", got)
	}
	at := time.Date(2026, 3, 1, 13, 0, 0, 0, time.FixedZone("CET", 3600))
	if got := Time(at); got != "2026-03-01T12:00:00Z" {
		t.Errorf("Time = %q", got)
	}
}

func TestKeyName(t *testing.T) {
	const id = "46e4cd376fbcbe963fda669fbe2fc8130c18211e597660dbed9ffcdbdbe59e15"
	for _, tc := range []struct{ owner, purpose, want string }{
		{"", "", "46e4cd376fbcbe96"},
		{"Alice Example", "", "46e4cd376fbcbe96 (Alice Example)"},
		{"", "release", "46e4cd376fbcbe96 (release)"},
		{"Alice Example", "release signing", "46e4cd376fbcbe96 (Alice Example: release signing)"},
		{"Mallory\x1b[2J", "", `46e4cd376fbcbe96 (Mallory\x1b[2J)`},
	} {
		if got := KeyName(id, tc.owner, tc.purpose); got != tc.want {
			t.Errorf("KeyName(%q, %q) = %q, want %q", tc.owner, tc.purpose, got, tc.want)
		}
	}
}
