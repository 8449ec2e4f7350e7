package bundle_test

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/bundle"
)

// TestParseDependency pins the grammar of depends (FORMAT.md §6.2).
func TestParseDependency(t *testing.T) {
	tests := []struct {
		in   string
		want string // canonical form; "" = refused
	}{
		{"gw-os >= 1.4", "gw-os >= 1.4.0"},
		{"gw-os>=1.4", "gw-os >= 1.4.0"},
		{"gw-os >= 1", "gw-os >= 1.0.0"},
		{"gw-os == 1.4.2", "gw-os == 1.4.2"},
		{"gw-os >= 1.4, < 2", "gw-os >= 1.4.0, < 2.0.0"},
		{"gw-os >1.4.0,<=1.9.9-rc.1", "gw-os > 1.4.0, <= 1.9.9-rc.1"},
		{"gw.os_x < 0.1.0-alpha", "gw.os_x < 0.1.0-alpha"},
		{"gw-os", ""},
		{"gw-os 1.4", ""},
		{"gw-os = 1.4.0", ""},
		{"gw-os === 1.4.0", ""},
		{"gw-os != 1.4.0", ""},
		{"gw-os ~> 1.4", ""},
		{"gw-os ^1.4", ""},
		{"gw-os >= ", ""},
		{"gw-os >= 1.4,", ""},
		{"gw-os >= 1.4 < 2", ""},
		{"gw-os >= 1.4 ,, < 2", ""},
		{"gw-os == 1.4", ""},         // == wants a full version
		{"gw-os >= 1.4-rc.1", ""},    // a pre-release wants a full version
		{"gw-os >= 1.4.0+build", ""}, // build metadata takes no part
		{"gw-os >= v1.4.0", ""},
		{"gw-os >= 01.4", ""},
		{"gw-os >= 1.4.0.1", ""},
		{"GW-OS >= 1.4", ""},
		{" gw-os >= 1.4", ""},
		{"gw-os >= 1.4 ", ""},
		{">= 1.4", ""},
		{"gw-os\t>= 1.4", ""},
		{"gw-os >= 1.4\n", ""},
		{"gw-os >= " + strings.Repeat("1", 260), ""},
	}
	for _, tt := range tests {
		d, err := bundle.ParseDependency(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("ParseDependency(%q) = %q, want an error", tt.in, d)
			}
			continue
		}
		if err != nil || d.String() != tt.want {
			t.Errorf("ParseDependency(%q) = %q, %v; want %q", tt.in, d, err, tt.want)
		}
	}
}

func TestDependencySatisfied(t *testing.T) {
	tests := []struct {
		dep, installed string
		want           bool
	}{
		{"gw-os >= 1.4", "1.4.0", true},
		{"gw-os >= 1.4", "1.3.9", false},
		{"gw-os >= 1.4", "1.4.0-rc.1", false}, // a pre-release sorts before its release
		{"gw-os >= 1.4", "", false},           // not installed
		{"gw-os >= 1.4, < 2", "2.0.0", false},
		{"gw-os >= 1.4, < 2", "1.99.0", true},
		{"gw-os == 1.4.2", "1.4.2+b7", true}, // build metadata is ignored
		{"gw-os == 1.4.2", "1.4.3", false},
		{"gw-os > 1.4.2", "1.4.2", false},
		{"gw-os <= 1.4.2", "1.4.2", true},
	}
	for _, tt := range tests {
		d, err := bundle.ParseDependency(tt.dep)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.Satisfied(tt.installed); got != tt.want {
			t.Errorf("%q satisfied by %q = %t, want %t", tt.dep, tt.installed, got, tt.want)
		}
	}
}

// TestCreateComponents: provides alone keeps formatVersion 1 (a version-1
// reader may ignore it); depends makes it 2; both come back from the head.
func TestCreateComponents(t *testing.T) {
	for _, tt := range []struct {
		name        string
		opts        bundle.Options
		wantVersion int
	}{
		{"plain", bundle.Options{}, 1},
		{"provides", bundle.Options{Provides: map[string]string{"app-schema": "3.0.0"}}, 1},
		{"depends", bundle.Options{Depends: []string{"gw-os >= 1.4"}}, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.opts
			o.Name, o.Version, o.DeviceTypes, o.Created = "app-conf", "1.2.0", []string{"gw"}, specCreated
			path := filepath.Join(t.TempDir(), "b.bundle")
			if _, err := bundle.Create(path, o, bundle.Source{Name: "conf", Type: bundle.Module, Target: "single-file", Content: bytes.NewReader([]byte("x"))}); err != nil {
				t.Fatal(err)
			}
			r, err := bundle.OpenArchive(path)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			c := r.Config()
			if c.FormatVersion != tt.wantVersion {
				t.Errorf("formatVersion %d, want %d", c.FormatVersion, tt.wantVersion)
			}
			if got := c.Components(); got["app-conf"] != "1.2.0" || len(got) != 1+len(o.Provides) || (o.Provides != nil && got["app-schema"] != "3.0.0") {
				t.Errorf("Components() = %v", got)
			}
			if strings.Join(c.Depends, ";") != strings.Join(o.Depends, ";") {
				t.Errorf("Depends = %q, want %q", c.Depends, o.Depends)
			}
		})
	}
	_, err := bundle.Create(filepath.Join(t.TempDir(), "b.bundle"), bundle.Options{Name: "a", Version: "1.0.0", DeviceTypes: []string{"gw"}, Depends: []string{"gw-os >> 1"}},
		bundle.Source{Name: "conf", Type: bundle.Module, Content: bytes.NewReader(nil)})
	if err == nil || !strings.Contains(err.Error(), `dependency "gw-os >> 1"`) {
		t.Errorf("Create with a malformed dependency: %v", err)
	}
}

// FuzzParseDependency: what the parser accepts has a canonical form that
// parses to the same dependency, and every clause holds a valid version.
func FuzzParseDependency(f *testing.F) {
	for _, s := range []string{"gw-os >= 1.4", "a==1.0.0-rc.1", "x > 1, <= 2.0.0", "a >= 1.4,", "a ~> 1", "a == 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := bundle.ParseDependency(s)
		if err != nil {
			return
		}
		if err := bundle.ValidateName(d.Component); err != nil || len(d.Clauses) == 0 {
			t.Fatalf("%q: accepted %+v", s, d)
		}
		for _, cl := range d.Clauses {
			if err := bundle.ValidateVersion(cl.Version); err != nil || strings.Contains(cl.Version, "+") {
				t.Fatalf("%q: clause version %q: %v", s, cl.Version, err)
			}
		}
		d2, err := bundle.ParseDependency(d.String())
		if err != nil || d2.String() != d.String() {
			t.Fatalf("%q: canonical form %q does not parse back: %v", s, d, err)
		}
	})
}
