package devices

import (
	"errors"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/transport/checkin"
)

func filterRecord() *Record {
	return &Record{ID: "ab12cd34" + strings.Repeat("0", 56), Status: Enrolled, Name: "gw-0042", DeviceType: "board-a",
		Labels: map[string]string{"site": "plant-2", "line": "3", "room": "clean room"},
		Inventory: &checkin.Inventory{Bundle: "gateway", Version: "1.4.2",
			Components: []checkin.Component{{Name: "sim-os", Version: "1.4.2", Slot: "a"}, {Name: "app", Version: "0.9.0"}}}}
}

func TestFilterMatch(t *testing.T) {
	r := filterRecord()
	for _, c := range []struct {
		filter string
		want   bool
	}{
		{"type = board-a", true},
		{"type = board-b", false},
		{"TYPE = board-a", true},
		{"type != board-b", true},
		{"name ~ gw-00*", true},
		{"name ~ gw-1*", false},
		{"id ~ ab12cd34*", true},
		{"status = enrolled", true},
		{"site = plant-2 and line = 3", true},
		{"site = plant-2 and line = 4", false},
		{"site = plant-1 or line = 3", true},
		{"not site = plant-1", true},
		{"not (site = plant-2 or line = 4)", false},
		{"label.room = \"clean room\"", true},
		{"label.floor = 2", false},
		{"label.floor != 2", true}, // absent: != matches
		{"bundle = gateway and version >= 1.4.0", true},
		{"version < 1.4.2", false},
		{"version <= 1.4.2", true},
		{"version > 1.10.0", false}, // semantic order, not text
		{"component.sim-os < 2.0.0", true},
		{"component.app = 0.9.0", true},
		{"component.missing < 9.0.0", false},
		{"component.missing != 1.0.0", true},
		{"site = plant-2 and (line = 1 or line = 3) and not name = gw-1", true},
		{"a and b", false},
	} {
		f, err := ParseFilter(c.filter)
		if c.filter == "a and b" {
			if err == nil {
				t.Errorf("%q parsed", c.filter)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseFilter(%q): %v", c.filter, err)
			continue
		}
		if got := f.Match(r); got != c.want {
			t.Errorf("%q matched %v, want %v", c.filter, got, c.want)
		}
		again, err := ParseFilter(f.String())
		if err != nil || again.String() != f.String() || again.Match(r) != c.want {
			t.Errorf("%q: canonical %q does not round-trip: %v", c.filter, f.String(), err)
		}
	}
	if f, _ := ParseFilter("type = board-a"); f.Match(&Record{Status: Pending}) {
		t.Error("an empty record matched")
	}
}

func TestFilterErrors(t *testing.T) {
	for _, c := range []struct {
		filter, msg string
		pos         int
	}{
		{"", "empty filter", 0},
		{"   ", "empty filter", 0},
		{"type", "want an operator", 4},
		{"type =", "want a value", 6},
		{"type = a b", "unexpected", 9},
		{"colour = red", "unknown attribute", 0},
		{"type == a", "want a value", 6},
		{"type ! a", "'!' alone", 5},
		{"(type = a", "want ')'", 9},
		{"type = a)", "unexpected ')'", 8},
		{"type = \"a", "closing", 7},
		{"type = \"a\\nb\"", "escapes only", 9},
		{"version < 1.x", "not a semantic version", 10},
		{`name ~ "["`, "pattern", 7},
		{"type = a and", "ends early", 12},
		{"type = a; drop", "unexpected character", 8},
		{"label. = x", "unknown attribute", 0},
		{strings.Repeat("(", 40) + "type = a" + strings.Repeat(")", 40), "nested", 33},
		{strings.Repeat("type = a or ", 300) + "type = a", "conditions", 3072},
		{strings.Repeat("x", MaxFilterLen+1), "at most", MaxFilterLen},
	} {
		_, err := ParseFilter(c.filter)
		var fe *FilterError
		if !errors.As(err, &fe) || !strings.Contains(fe.Msg, c.msg) || fe.Pos != c.pos {
			t.Errorf("ParseFilter(%.40q) = %v, want %q at %d", c.filter, err, c.msg, c.pos)
		}
	}
}

// FuzzParseFilter: any text parses or fails with a *FilterError, never
// panics; what parses prints a canonical form that parses to the same
// filter (same text, same verdict on a device).
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"type = board-a", "site = plant-2 and (line = 1 or not line = 3)", `label.room = "clean \"room\""`,
		"component.sim-os < 2.0.0", "name ~ gw-*", "not not status = enrolled", "version >= 1.0.0-rc.1", "(((", `"`, "a = and"} {
		f.Add(s)
	}
	r := filterRecord()
	f.Fuzz(func(t *testing.T, s string) {
		flt, err := ParseFilter(s)
		if err != nil {
			var fe *FilterError
			if !errors.As(err, &fe) || fe.Pos < 0 || fe.Pos > len(s) {
				t.Fatalf("ParseFilter(%q): %v", s, err)
			}
			return
		}
		canon := flt.String()
		again, err := ParseFilter(canon)
		if err != nil {
			t.Fatalf("canonical %q of %q: %v", canon, s, err)
		}
		if again.String() != canon || again.Match(r) != flt.Match(r) {
			t.Fatalf("%q -> %q -> %q", s, canon, again.String())
		}
	})
}
