package display_test

import (
	"testing"
	"time"

	"github.com/ferry-update/ferry/internal/display"
)

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"365d": 365 * 24 * time.Hour, "1d": 24 * time.Hour, "24h": 24 * time.Hour, "90m": 90 * time.Minute, "36600d": 36600 * 24 * time.Hour} {
		got, err := display.ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{
		"0d": `"0d" is not in the future`, "-1h": `"-1h" is not in the future`, "0": `"0" is not in the future`,
		"xd": `"xd" is not a number of days`, "36601d": `"36601d" is not a number of days`,
		"1y": `"1y": want Nd or a duration such as 720h`, "": `"": want Nd or a duration such as 720h`,
	} {
		if _, err := display.ParseDuration(in); err == nil || err.Error() != msg {
			t.Errorf("ParseDuration(%q) = %v, want %q", in, err, msg)
		}
	}
}
