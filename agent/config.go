package agent

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/ferry-update/ferry/agent/bootenv"
	"github.com/ferry-update/ferry/agent/module"
	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/transport/httpget"
)

// DefaultConfigPath is where ferry-agent looks for its configuration.
const DefaultConfigPath = "/etc/ferry/agent.toml"

// Defaults for settings the configuration file may leave out.
const (
	DefaultStateDir      = "/var/lib/ferry"
	DefaultRebootCommand = "systemctl reboot"
	DefaultHealthTimeout = 60 * time.Second
	DefaultCmdline       = "/proc/cmdline"
	// DefaultModulesWorkDir is where update modules' file trees go,
	// relative to the state directory.
	DefaultModulesWorkDir = "modules"
)

// Config is the agent's configuration: the TOML file (see
// examples/agent/ferry-agent.toml) plus settings only a program sets.
type Config struct {
	// DeviceType must be one of the device types a bundle names.
	DeviceType string `toml:"device_type"`
	// StateDir holds the journal, the installed-version record and the
	// lock. It must be on persistent storage shared by both slots.
	StateDir string `toml:"state_dir"`
	// RebootCommand is run through /bin/sh -c to reboot the device.
	RebootCommand string `toml:"reboot_command"`

	Trust  TrustConfig           `toml:"trust"`
	Slots  map[string]SlotConfig `toml:"slots"`
	Boot   BootConfig            `toml:"boot"`
	Health HealthConfig          `toml:"health"`
	Policy PolicyConfig          `toml:"policy"`
	// Modules says where update modules (module payloads) are found.
	Modules ModulesConfig `toml:"modules"`
	// Source says how oci:// sources are fetched.
	Source SourceConfig `toml:"source"`
	// DeviceID names the device in check-ins and stick reports (default:
	// the host name).
	DeviceID string `toml:"device_id"`
	// Mirror is the ferry mirror ferry-agent run polls, if any.
	Mirror MirrorConfig `toml:"mirror"`
	// Identity is the device's own key, which signs its check-ins.
	Identity IdentityConfig `toml:"identity"`
	// Stick says where ferry-agent run looks for a USB stick.
	Stick StickConfig `toml:"stick"`
	// Network bounds every network call the agent makes.
	Network NetworkConfig `toml:"network"`

	// BootedSlot, when set ("a" or "b"), overrides how the agent finds
	// the slot the device booted (see doc.go, "Which slot is booted").
	BootedSlot string `toml:"-"`
	// Log receives progress messages and the output of health checks and
	// the reboot command; nil discards them.
	Log io.Writer `toml:"-"`
	// Faults stops the agent at chosen points, for tests only.
	Faults *Faults `toml:"-"`
	// Clock, when set, replaces the device's clock (tests). The agent
	// never uses a time earlier than the newest it has seen (clock.go).
	Clock func() time.Time `toml:"-"`
	// ModuleRunner, when set, replaces the update-module runner that
	// Modules describes (tests fake it).
	ModuleRunner ModuleRunner `toml:"-"`
}

// ModulesConfig says where the update modules that install module
// payloads live and where their file trees go.
type ModulesConfig struct {
	// Dir holds the modules, one executable per name; a module
	// payload's target names its module. Default
	// /usr/share/mender/modules/v3, Mender's.
	Dir string `toml:"dir"`
	// WorkDir holds the modules' file trees (WorkDir/payloads/NNNN/tree);
	// it must survive a reboot. Default STATE_DIR/modules.
	WorkDir string `toml:"work_dir"`
	// Timeout bounds every call of a module, the download included.
	// Default 4h (Mender's ModuleTimeoutSeconds).
	Timeout Duration `toml:"timeout"`
}

// SourceConfig says how bundles are fetched.
type SourceConfig struct {
	// PlainHTTP fetches oci:// references over http:// instead of
	// https:// (a mirror on a closed network without TLS, tests).
	PlainHTTP bool `toml:"plain_http"`
}

// TrustConfig is the trust root: the keys a bundle must be signed with,
// either as a signed trust-root document (Root, verify/TRUST.md) or as
// plain key files (Keys and Threshold).
type TrustConfig struct {
	// Root is the trust-root document the device was provisioned with
	// (read-only, e.g. in the image). Newer roots the agent accepts are
	// kept in the state directory (roots/N.root.json and root.json) and,
	// once re-proved from it by the chain rule at each start, win over it;
	// the release role of the root held signs bundles.
	Root string `toml:"root"`
	// Keys are PEM public key files.
	Keys []string `toml:"keys"`
	// Threshold is how many distinct keys must have signed (default 1).
	Threshold int `toml:"threshold"`
	// ExpiryWarning is how long before the trust root expires status
	// flags it as expiring soon (default 30 days, DefaultExpiryWarning).
	ExpiryWarning Duration `toml:"expiry_warning"`
}

// DefaultExpiryWarning is [trust] expiry_warning's default: a root that
// expires within it is flagged by status, in time to renew it.
const DefaultExpiryWarning = 30 * 24 * time.Hour

// IdentityConfig says where the device's key is (see Identity).
type IdentityConfig struct {
	// Key is the device's Ed25519 private key (PEM, PKCS#8), mode 0600.
	// Default STATE_DIR/identity/device.key, made at the first start
	// when it is missing; a key set here must exist (provisioned at the
	// factory).
	Key string `toml:"key"`
	// AgeKey is the device's age identity (an age-keygen file: one
	// AGE-SECRET-KEY-1… line), mode 0600, which unwraps the key of
	// payloads encrypted to the device. Default
	// STATE_DIR/identity/device.age, made at the first start when it is
	// missing; one set here must exist.
	AgeKey string `toml:"age_key"`
}

// MirrorConfig is the ferry mirror that ferry-agent run polls.
type MirrorConfig struct {
	// URL is the mirror, http[s]://HOST[:PORT] ('ferry mirror serve').
	// Plain http:// also pulls bundles over plain HTTP.
	URL string `toml:"url"`
	// Bundle, when set, is the only bundle name (OCI repository) taken.
	Bundle string `toml:"bundle"`
	// TUFRoot is the mirror's TUF root.json the device trusts for the
	// freshness of the mirror's metadata. Required with URL.
	TUFRoot string `toml:"tuf_root"`
	// Interval between polls (default 1h); Jitter is added or taken off
	// at random (default a tenth of Interval). A mirror that cannot be
	// reached is polled at Interval, 2×, 4×... up to 10× Interval.
	Interval Duration `toml:"interval"`
	Jitter   Duration `toml:"jitter"`
	// Managed: the device installs only what the mirror assigns it (a
	// deployment, docs/fleet.md), verified with the assignment keys the
	// mirror's signed metadata publishes; with nothing assigned it installs
	// nothing. Unmanaged (the default), it installs the newest bundle the
	// mirror lists for its device type.
	Managed bool `toml:"managed"`
}

// StickConfig says where ferry-agent run looks for a ferry USB stick.
type StickConfig struct {
	// MountPoints are directories where a stick may be mounted; each is
	// checked for a ferry/ directory.
	MountPoints []string `toml:"mount_points"`
	// Label is the stick's filesystem label (e.g. FERRY), found mounted
	// through /dev/disk/by-label and /proc/self/mountinfo.
	Label string `toml:"label"`
	// PollInterval is how often ferry-agent run looks for a stick, also
	// while it polls the mirror or waits for the next poll (default 2s).
	PollInterval Duration `toml:"poll_interval"`
}

// DefaultStickPollInterval is the default of [stick] poll_interval.
const DefaultStickPollInterval = 2 * time.Second

// NetworkConfig bounds each stage of every network request (mirror
// polls, trust roots, check-ins, downloads); see package
// internal/httpget. There is no limit on a whole transfer: a download
// that keeps moving over a slow link goes on.
type NetworkConfig struct {
	// ConnectTimeout bounds a TCP connection (default 30s).
	ConnectTimeout Duration `toml:"connect_timeout"`
	// TLSTimeout bounds a TLS handshake (default 30s).
	TLSTimeout Duration `toml:"tls_timeout"`
	// ResponseTimeout bounds the wait for a response header (default 60s).
	ResponseTimeout Duration `toml:"response_timeout"`
	// IdleTimeout bounds each wait for more of a response body (default
	// 60s); a download that stalls this long is resumed or fails.
	IdleTimeout Duration `toml:"idle_timeout"`
}

// Timeouts returns the timeouts for httpget.NewClient.
func (n NetworkConfig) Timeouts() httpget.Timeouts {
	return httpget.Timeouts{Connect: n.ConnectTimeout.Duration, TLS: n.TLSTimeout.Duration, Response: n.ResponseTimeout.Duration, Idle: n.IdleTimeout.Duration}
}

// Defaults of [mirror].
const (
	DefaultMirrorInterval = time.Hour
	// MaxBackoffFactor caps the wait after failed polls at this many
	// intervals.
	MaxBackoffFactor = 10
)

// SlotConfig is where the payloads whose target is the slot's name go:
// an A/B pair of block devices or files (rootfs payloads) or a directory
// (files payloads).
type SlotConfig struct {
	A   string `toml:"a"`
	B   string `toml:"b"`
	Dir string `toml:"dir"`
}

// Device returns the path of slot "a" or "b".
func (s SlotConfig) Device(slot string) string {
	if slot == bootenv.SlotB {
		return s.B
	}
	return s.A
}

func (s SlotConfig) isPair() bool { return s.Dir == "" }

// Boot backends.
const (
	BackendUBoot = "uboot"
	BackendGrub  = "grub"
	BackendEFI   = "efi"
	BackendFile  = "file"
)

// BootConfig selects the boot-state backend.
type BootConfig struct {
	// Backend is "uboot", "grub", "efi" or "file".
	Backend string `toml:"backend"`
	// Path is the fw_env.config file (uboot), the grubenv block (grub),
	// where efivarfs is mounted (efi; default
	// bootenv.DefaultEFIVarsDir) or the name=value file (file).
	Path string `toml:"path"`
	// EFI names the efi backend's boot entries ([boot.efi]).
	EFI EFIConfig `toml:"efi"`
	// SlotVar names the variable holding the slot to boot (default
	// ferry_slot).
	SlotVar string `toml:"slot_var"`
	// Cmdline is the kernel command line to read "ferry.slot=a|b" from;
	// "none" trusts the boot environment alone (simulations). Default
	// /proc/cmdline.
	Cmdline string `toml:"cmdline"`
}

// EFIConfig is [boot.efi]: the slots' UEFI boot entries.
type EFIConfig struct {
	// LabelA and LabelB are the entries' descriptions (default
	// bootenv.DefaultEFILabelA and DefaultEFILabelB).
	LabelA string `toml:"label_a"`
	LabelB string `toml:"label_b"`
	// LoaderA and LoaderB are the slots' EFI loaders on the EFI system
	// partition (\EFI\ferry\a.efi); set, the agent creates missing
	// entries at start. ESPDisk and ESPPartition locate that partition
	// (/dev/vda and 1), as efibootmgr's --disk and --part do.
	LoaderA      string `toml:"loader_a"`
	LoaderB      string `toml:"loader_b"`
	ESPDisk      string `toml:"esp_disk"`
	ESPPartition int    `toml:"esp_partition"`
}

// HealthConfig says how boot-check judges a new system.
type HealthConfig struct {
	// Commands are run one after the other through /bin/sh -c; all must
	// exit 0 within Timeout each.
	Commands []string `toml:"commands"`
	Timeout  Duration `toml:"timeout"`
}

// PolicyConfig relaxes the version rules, which apply per component
// (bundle/FORMAT.md §6.2).
type PolicyConfig struct {
	// AllowDowngrade accepts a version below the installed one, for
	// every component.
	AllowDowngrade bool `toml:"allow_downgrade"`
	// AllowSameVersion accepts the installed version again, for every
	// component.
	AllowSameVersion bool `toml:"allow_same_version"`
	// Components relaxes the rules for single components, by name:
	// [policy.components.app-conf] (quote a name with dots:
	// [policy.components."gw-os.kernel"]).
	Components map[string]ComponentPolicy `toml:"components"`
}

// ComponentPolicy relaxes the version rules for one component.
type ComponentPolicy struct {
	AllowDowngrade   bool `toml:"allow_downgrade"`
	AllowSameVersion bool `toml:"allow_same_version"`
}

// For is the policy for component name: its own, or-ed with the
// device-wide settings.
func (p PolicyConfig) For(name string) ComponentPolicy {
	c := p.Components[name]
	c.AllowDowngrade = c.AllowDowngrade || p.AllowDowngrade
	c.AllowSameVersion = c.AllowSameVersion || p.AllowSameVersion
	return c
}

// Duration is a time.Duration written as "30s" or "2m" in TOML.
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: want e.g. \"30s\" or \"2m\"", b)
	}
	if v <= 0 {
		return fmt.Errorf("duration %q: want more than zero", b)
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// ConfigError locates a problem in a configuration file.
type ConfigError struct {
	File string
	Line int    // 0 if unknown
	Key  string // dotted key, if known
	Err  error
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *ConfigError) Unwrap() error { return e.Err }

// ConfigReadError is LoadConfig's failure to read the configuration file
// at all (a missing file wraps fs.ErrNotExist), as opposed to a
// *ConfigError about its contents.
type ConfigReadError struct {
	Path string
	Err  error
}

func (e *ConfigReadError) Error() string { return "read config: " + e.Err.Error() }
func (e *ConfigReadError) Unwrap() error { return e.Err }

// LoadConfig reads and checks the configuration file at path. Relative
// paths in it are taken relative to the file's directory. A file that
// cannot be read is a *ConfigReadError.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigReadError{Path: path, Err: err}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, &ConfigReadError{Path: path, Err: err}
	}
	return ParseConfig(b, path, filepath.Dir(abs))
}

// ParseConfig decodes and checks a configuration. name is used in errors;
// relative paths are resolved against dir.
func ParseConfig(src []byte, name, dir string) (*Config, error) {
	var c Config
	md, err := toml.NewDecoder(bytes.NewReader(src)).Decode(&c)
	if err != nil {
		return nil, decodeError(name, err)
	}
	if un := md.Undecoded(); len(un) > 0 {
		return nil, &ConfigError{File: name, Line: keyLine(src, un[0]), Key: un[0].String(), Err: errors.New("unknown setting (misspelt?)")}
	}
	if key, err := c.check(); err != nil {
		return nil, &ConfigError{File: name, Line: keyLine(src, key), Key: key.String(), Err: err}
	}
	c.resolve(dir)
	return &c, nil
}

// typeErrorRE matches the decoder's errors about values of the wrong
// type, which are not toml.ParseErrors but name the line in their text.
var typeErrorRE = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`)

func decodeError(name string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &ConfigError{File: name, Line: pe.Position.Line, Key: pe.LastKey, Err: errors.New(pe.Message)}
	}
	if m := typeErrorRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &ConfigError{File: name, Line: line, Key: m[2], Err: errors.New(m[3])}
	}
	return &ConfigError{File: name, Err: err}
}

var slotNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$`)

// check validates c and fills in defaults. It returns the dotted key an
// error is about.
func (c *Config) check() (toml.Key, error) {
	if c.DeviceType == "" {
		return toml.Key{"device_type"}, errors.New("required: the device type bundles must name")
	}
	if err := bundle.ValidateDeviceType(c.DeviceType); err != nil {
		return toml.Key{"device_type"}, err
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.RebootCommand == "" {
		c.RebootCommand = DefaultRebootCommand
	}
	switch {
	case c.Trust.Root != "" && (len(c.Trust.Keys) > 0 || c.Trust.Threshold != 0):
		return toml.Key{"trust", "root"}, errors.New("set either root (a trust-root document) or keys and threshold, not both")
	case c.Trust.Root == "" && len(c.Trust.Keys) == 0:
		return toml.Key{"trust", "keys"}, errors.New("required: at least one public key file (or root, a trust-root document)")
	case c.Trust.Root == "":
		if c.Trust.Threshold == 0 {
			c.Trust.Threshold = 1
		}
		if c.Trust.Threshold < 1 || c.Trust.Threshold > len(c.Trust.Keys) {
			return toml.Key{"trust", "threshold"}, fmt.Errorf("%d: want 1 to the number of keys (%d)", c.Trust.Threshold, len(c.Trust.Keys))
		}
	}
	if c.Trust.ExpiryWarning.Duration == 0 {
		c.Trust.ExpiryWarning.Duration = DefaultExpiryWarning
	}
	if c.DeviceID == "" {
		c.DeviceID, _ = os.Hostname()
	}
	if c.Mirror.URL != "" {
		u, err := url.Parse(c.Mirror.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return toml.Key{"mirror", "url"}, fmt.Errorf("%q: want http[s]://HOST[:PORT]", c.Mirror.URL)
		}
		if c.Mirror.TUFRoot == "" {
			return toml.Key{"mirror", "tuf_root"}, errors.New("required with url: the mirror's TUF root.json this device trusts")
		}
	}
	if c.Stick.PollInterval.Duration == 0 {
		c.Stick.PollInterval.Duration = DefaultStickPollInterval
	}
	if c.Mirror.Interval.Duration == 0 {
		c.Mirror.Interval.Duration = DefaultMirrorInterval
	}
	if c.Mirror.Jitter.Duration == 0 {
		c.Mirror.Jitter.Duration = c.Mirror.Interval.Duration / 10
	}
	if c.Mirror.Jitter.Duration >= c.Mirror.Interval.Duration {
		return toml.Key{"mirror", "jitter"}, fmt.Errorf("%v: want less than the interval %v", c.Mirror.Jitter.Duration, c.Mirror.Interval.Duration)
	}
	if len(c.Slots) == 0 && c.Modules.Dir == "" {
		return toml.Key{"slots"}, errors.New("required: at least one slot, e.g. [slots.rootfs] with a and b (or [modules] with dir, for update modules only)")
	}
	for name, s := range c.Slots {
		key := toml.Key{"slots", name}
		if !slotNameRE.MatchString(name) || strings.Contains(name, "..") {
			return key, errors.New("slot name: want letters, digits, '.', '_', '/' or '-' (a payload target)")
		}
		switch {
		case s.Dir != "" && (s.A != "" || s.B != ""):
			return key, errors.New("set either a and b (an A/B pair) or dir (a files target), not both")
		case s.Dir == "" && (s.A == "" || s.B == ""):
			return key, errors.New("an A/B pair needs both a and b (or set dir for a files target)")
		case s.Dir == "" && filepath.Clean(s.A) == filepath.Clean(s.B):
			return append(key, "b"), errors.New("a and b are the same device")
		}
	}
	switch c.Boot.Backend {
	case BackendUBoot, BackendGrub, BackendFile:
	case BackendEFI:
		if key, err := c.Boot.EFI.check(); err != nil {
			return key, err
		}
		if c.Boot.Path == "" {
			c.Boot.Path = bootenv.DefaultEFIVarsDir
		}
	case "":
		return toml.Key{"boot", "backend"}, errors.New(`required: "uboot", "grub", "efi" or "file"`)
	default:
		return toml.Key{"boot", "backend"}, fmt.Errorf(`%q: want "uboot", "grub", "efi" or "file"`, c.Boot.Backend)
	}
	if c.Boot.Backend != BackendEFI && (c.Boot.EFI != EFIConfig{}) {
		return toml.Key{"boot", "efi"}, fmt.Errorf("only for backend = %q", BackendEFI)
	}
	if c.Boot.Path == "" {
		return toml.Key{"boot", "path"}, errors.New("required: fw_env.config (uboot), grubenv (grub) or the env file (file)")
	}
	if c.Boot.SlotVar == "" {
		c.Boot.SlotVar = bootenv.DefaultSlotVar
	}
	if strings.ContainsAny(c.Boot.SlotVar, "=\n\x00 ") {
		return toml.Key{"boot", "slot_var"}, fmt.Errorf("%q is not a variable name", c.Boot.SlotVar)
	}
	if c.Boot.Cmdline == "" {
		c.Boot.Cmdline = DefaultCmdline
	}
	if c.Health.Timeout.Duration == 0 {
		c.Health.Timeout.Duration = DefaultHealthTimeout
	}
	if c.Modules.Dir == "" {
		c.Modules.Dir = module.DefaultModulesDir
	}
	if c.Modules.Timeout.Duration == 0 {
		c.Modules.Timeout.Duration = module.DefaultTimeout
	}
	for name := range c.Policy.Components {
		if err := bundle.ValidateName(name); err != nil {
			return toml.Key{"policy", "components", name}, fmt.Errorf("component %w", err)
		}
	}
	for i, cmd := range c.Health.Commands {
		if strings.TrimSpace(cmd) == "" {
			return toml.Key{"health", "commands"}, fmt.Errorf("command %d is empty", i+1)
		}
	}
	return nil, nil
}

// check validates [boot.efi] and sets its defaults.
func (e *EFIConfig) check() (toml.Key, error) {
	key := toml.Key{"boot", "efi"}
	if e.LabelA == "" {
		e.LabelA = bootenv.DefaultEFILabelA
	}
	if e.LabelB == "" {
		e.LabelB = bootenv.DefaultEFILabelB
	}
	if e.LabelA == e.LabelB {
		return append(key, "label_b"), fmt.Errorf("%q is also slot a's label", e.LabelB)
	}
	switch {
	case (e.LoaderA == "") != (e.LoaderB == ""):
		return append(key, "loader_b"), errors.New("set loader_a and loader_b together (or neither)")
	case e.LoaderA == "" && (e.ESPDisk != "" || e.ESPPartition != 0):
		return append(key, "esp_disk"), errors.New("only with loader_a and loader_b")
	case e.LoaderA != "" && e.ESPDisk == "":
		return append(key, "esp_disk"), errors.New(`required with the loaders: the disk holding the EFI system partition, e.g. "/dev/vda"`)
	case e.LoaderA != "" && e.ESPPartition < 1:
		return append(key, "esp_partition"), errors.New("required with the loaders: the EFI system partition's number on esp_disk, e.g. 1")
	}
	return nil, nil
}

// resolve makes every path absolute, relative to dir.
func (c *Config) resolve(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.StateDir)
	abs(&c.Trust.Root)
	abs(&c.Mirror.TUFRoot)
	abs(&c.Identity.Key)
	abs(&c.Identity.AgeKey)
	for i := range c.Stick.MountPoints {
		abs(&c.Stick.MountPoints[i])
	}
	for i := range c.Trust.Keys {
		abs(&c.Trust.Keys[i])
	}
	for name, s := range c.Slots {
		abs(&s.A)
		abs(&s.B)
		abs(&s.Dir)
		c.Slots[name] = s
	}
	abs(&c.Boot.Path)
	abs(&c.Boot.EFI.ESPDisk)
	abs(&c.Modules.Dir)
	if c.Modules.WorkDir == "" {
		c.Modules.WorkDir = filepath.Join(c.StateDir, DefaultModulesWorkDir)
	}
	abs(&c.Modules.WorkDir)
	if c.Boot.Cmdline != "none" {
		abs(&c.Boot.Cmdline)
	}
}

// keyLine finds the line where key is set, for errors about values that
// parsed but make no sense: the first "name =" after the key's table
// header, or the header itself. It returns 0 when it cannot tell.
func keyLine(src []byte, key toml.Key) int {
	if len(key) == 0 {
		return 0
	}
	table, last := key[:len(key)-1], key[len(key)-1]
	header := "[" + table.String() + "]"
	inTable := len(table) == 0
	sc := bufio.NewScanner(bytes.NewReader(src))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			h := strings.Join(strings.Fields(line), "")
			if h == "["+key.String()+"]" {
				return n
			}
			inTable = h == header
			continue
		}
		if inTable {
			if name, _, ok := strings.Cut(line, "="); ok && strings.Trim(strings.TrimSpace(name), `"`) == last {
				return n
			}
		}
	}
	return 0
}
