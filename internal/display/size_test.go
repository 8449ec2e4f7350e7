package display_test

import (
	"testing"

	"github.com/ferry-update/ferry/internal/display"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"auto": 0, "AUTO": 0, "8GiB": 8 << 30, "64MiB": 64 << 20, "64M": 64 << 20, "1.5GiB": 3 << 29, "1048576": 1 << 20, "2 GB": 2 << 30} {
		got, err := display.ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"-1", "8XB", "GiB", "0", "1e3"} {
		if _, err := display.ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) passed", in)
		}
	}
}
