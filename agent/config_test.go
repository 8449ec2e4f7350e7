package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const minimalConfig = `device_type = "sim-board"
[trust]
keys = ["release.pub"]
[slots.rootfs]
a = "/dev/sda2"
b = "/dev/sda3"
[boot]
backend = "file"
path = "bootenv"
`

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig([]byte(minimalConfig), "agent.toml", "/etc/ferry")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, got, want string }{
		{"state_dir", c.StateDir, DefaultStateDir},
		{"reboot_command", c.RebootCommand, DefaultRebootCommand},
		{"key", c.Trust.Keys[0], "/etc/ferry/release.pub"},
		{"boot.path", c.Boot.Path, "/etc/ferry/bootenv"},
		{"slot_var", c.Boot.SlotVar, "ferry_slot"},
		{"cmdline", c.Boot.Cmdline, DefaultCmdline},
		{"slot b", c.Slots["rootfs"].B, "/dev/sda3"},
		{"modules.dir", c.Modules.Dir, "/usr/share/mender/modules/v3"},
		{"modules.work_dir", c.Modules.WorkDir, "/var/lib/ferry/modules"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %q, want %q", tc.name, tc.got, tc.want)
		}
	}
	if c.Trust.Threshold != 1 || c.Health.Timeout.Duration != DefaultHealthTimeout || c.Policy.AllowDowngrade ||
		c.Modules.Timeout.Duration != 4*time.Hour || c.Source.PlainHTTP {
		t.Errorf("defaults: %+v", c)
	}
}

func TestParseConfigModulesOnly(t *testing.T) {
	const noSlots = `device_type = "sim-board"
state_dir = "/data/ferry"
[trust]
keys = ["release.pub"]
[boot]
backend = "file"
path = "bootenv"
`
	if _, err := ParseConfig([]byte(noSlots), "agent.toml", "/etc/ferry"); err == nil || !strings.Contains(err.Error(), "[modules]") {
		t.Fatalf("no slots, no modules: %v", err)
	}
	src := noSlots + "[modules]\ndir = \"modules\"\ntimeout = \"10m\"\n[source]\nplain_http = true\n"
	c, err := ParseConfig([]byte(src), "agent.toml", "/etc/ferry")
	if err != nil {
		t.Fatal(err)
	}
	if c.Modules.Dir != "/etc/ferry/modules" || c.Modules.WorkDir != "/data/ferry/modules" || c.Modules.Timeout.Duration != 10*time.Minute || !c.Source.PlainHTTP {
		t.Errorf("modules %+v, source %+v", c.Modules, c.Source)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		edit     func(string) string
		wantLine int
		wantText string
	}{
		{"syntax", func(s string) string { return s + "x = = 1\n" }, 10, "expected"},
		{"wrong type", func(s string) string { return strings.Replace(s, `device_type = "sim-board"`, "device_type = 3", 1) }, 1, "device_type"},
		{"unknown key", func(s string) string { return s + "bakcend = \"grub\"\n" }, 10, "unknown setting"},
		{"no device type", func(s string) string { return strings.Replace(s, `device_type = "sim-board"`, "", 1) }, 0, "device_type: required"},
		{"bad device type", func(s string) string { return strings.Replace(s, `"sim-board"`, `"sim board"`, 1) }, 1, "device type"},
		{"threshold", func(s string) string { return strings.Replace(s, "[slots.rootfs]", "threshold = 2\n[slots.rootfs]", 1) }, 4, "trust.threshold"},
		{"same slot devices", func(s string) string { return strings.Replace(s, "/dev/sda3", "/dev/sda2", 1) }, 6, "same device"},
		{"half a pair", func(s string) string { return strings.Replace(s, `b = "/dev/sda3"`, "", 1) }, 4, "needs both a and b"},
		{"pair and dir", func(s string) string {
			return strings.Replace(s, `b = "/dev/sda3"`, `b = "/dev/sda3"`+"\ndir = \"/opt\"", 1)
		}, 4, "not both"},
		{"backend", func(s string) string { return strings.Replace(s, `"file"`, `"lilo"`, 1) }, 8, `"lilo": want "uboot", "grub", "efi" or "file"`},
		{"timeout", func(s string) string { return s + "[health]\ntimeout = \"soon\"\n" }, 11, "duration"},
		{"negative timeout", func(s string) string { return s + "[health]\ntimeout = \"-1s\"\n" }, 11, "more than zero"},
		{"empty health command", func(s string) string { return s + "[health]\ncommands = [\"true\", \" \"]\n" }, 11, "command 2 is empty"},
		{"module timeout", func(s string) string { return s + "[modules]\ntimeout = \"0s\"\n" }, 11, "more than zero"},
		{"source", func(s string) string { return s + "[source]\nplain_http = \"yes\"\n" }, 11, "plain_http"},
		{"slot name", func(s string) string { return strings.Replace(s, "[slots.rootfs]", `[slots."../x"]`, 1) }, 4, "slot name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.edit(minimalConfig)), "agent.toml", "/")
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a *ConfigError", err)
			}
			if ce.Line != tc.wantLine || !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("got %q (line %d), want line %d and %q", err, ce.Line, tc.wantLine, tc.wantText)
			}
			if !strings.HasPrefix(err.Error(), "agent.toml") {
				t.Errorf("%q does not name the file", err)
			}
		})
	}
}

// The documented example must parse, and say what it documents.
func TestExampleConfig(t *testing.T) {
	path := filepath.Join("..", "examples", "agent", "ferry-agent.toml")
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.DeviceType != "imx8-gateway" || c.Trust.Threshold != 2 || c.Slots["app"].Dir != "/opt/app" ||
		c.Boot.Backend != BackendUBoot || c.Health.Timeout.Duration != 90*time.Second || len(c.Health.Commands) != 2 ||
		c.Modules.Dir != "/usr/share/mender/modules/v3" || c.Modules.Timeout.Duration != time.Hour || c.Modules.WorkDir != "/var/lib/ferry/modules" {
		t.Errorf("example config: %+v", c)
	}
}

func TestLoadConfigMissing(t *testing.T) {
	_, err := LoadConfig(filepath.Join(t.TempDir(), "none.toml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v", err)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(minimalConfig))
	if b, err := os.ReadFile(filepath.Join("..", "examples", "agent", "ferry-agent.toml")); err == nil {
		f.Add(b)
	}
	f.Add([]byte("device_type = 1\n[[slots]]\n"))
	f.Add([]byte("[slots.x]\ndir = \"\"\n[health]\ntimeout = \"1h\"\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		c, err := ParseConfig(src, "fuzz.toml", "/base")
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *ConfigError", err)
			}
			return
		}
		// What parses is complete and absolute.
		if c.DeviceType == "" || len(c.Trust.Keys) == 0 || c.Trust.Threshold < 1 || len(c.Slots) == 0 || c.Health.Timeout.Duration <= 0 {
			t.Fatalf("incomplete config accepted: %+v", c)
		}
		for _, s := range c.Slots {
			for _, p := range []string{s.A, s.B, s.Dir} {
				if p != "" && !filepath.IsAbs(p) {
					t.Fatalf("relative path %q", p)
				}
			}
		}
	})
}

func TestConfigTrustRootAndMirror(t *testing.T) {
	base := "device_type = \"b\"\n[slots.rootfs]\na = \"x\"\nb = \"y\"\n[boot]\nbackend = \"file\"\npath = \"env\"\n"
	for _, tc := range []struct{ extra, want string }{
		{"[trust]\nroot = \"root.json\"\n", ""},
		{"[trust]\nroot = \"root.json\"\nkeys = [\"k.pub\"]\n", `trust.root: set either root`},
		{"[trust]\nroot = \"root.json\"\n[mirror]\nurl = \"http://m:5000\"\n", `mirror.tuf_root: required`},
		{"[trust]\nroot = \"root.json\"\n[mirror]\nurl = \"ftp://m\"\ntuf_root = \"r\"\n", `mirror.url: "ftp://m": want`},
		{"[trust]\nroot = \"root.json\"\n[mirror]\nurl = \"http://m\"\ntuf_root = \"r\"\ninterval = \"1m\"\njitter = \"2m\"\n", `mirror.jitter`},
		{"[trust]\nroot = \"root.json\"\n[stick]\nmount_points = [\"/media/ferry\"]\nlabel = \"FERRY\"\n", ""},
	} {
		c, err := ParseConfig([]byte(base+tc.extra), "agent.toml", "/etc/ferry")
		if tc.want == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.extra, err)
			} else if c.Trust.Root != "/etc/ferry/root.json" || c.Mirror.Interval.Duration != DefaultMirrorInterval {
				t.Errorf("%q: %+v %+v", tc.extra, c.Trust, c.Mirror)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.extra, err, tc.want)
		}
	}
}
