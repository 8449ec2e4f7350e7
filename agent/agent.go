package agent

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ferry-update/ferry/agent/bootenv"
	"github.com/ferry-update/ferry/agent/module"
	"github.com/ferry-update/ferry/internal/atomicfile"
	"github.com/ferry-update/ferry/internal/filelock"
	"github.com/ferry-update/ferry/transport/httpget"
	"github.com/ferry-update/ferry/verify"
)

// Agent is the device side of ferry: it installs bundles into the inactive
// slot and drives the boot protocol. An Agent holds the state directory's
// lock from Open to Close, so commands never interleave.
type Agent struct {
	cfg     *Config
	boot    bootProtocol
	modules ModuleRunner
	keys    []*verify.PublicKey
	root    *verify.Root // nil with [trust] keys
	rootErr error        // why the last roots offered were not accepted
	// keptRefused says why kept roots were refused (KeptRootError), at
	// this start or an earlier one, until a newer root is accepted.
	keptRefused string
	log         io.Writer
	unlock      func()
	now         func() time.Time
	http        *http.Client // made on first use by httpClient
	id          *Identity    // loaded on first use by Identity

	j *Journal // nil before the first install
}

// Faults lets tests stop the agent where a power cut could, to check that
// it recovers. Production code leaves them nil.
type Faults struct {
	// At is called at each named point, right after what precedes it is
	// durable: every state name when the journal records it, and
	// "activated", "env-committed", "recorded", "env-rolled-back" between
	// the steps of activation, commit and rollback; with module payloads
	// also "module-downloaded" (after each Download), "module-installed"
	// (after ArtifactInstall), "module-committed" (after ArtifactCommit)
	// and "module-rolled-back" (after ArtifactRollback).
	At func(point string)
	// Wrote is called as payload bytes reach a target, with the running
	// total for the install.
	Wrote func(total int64)
}

// Open checks the configuration, loads the trust root, takes the state
// directory's lock and reads the journal. The install state is reconciled
// with the boot environment by each command, not here, so Status can
// report a broken environment.
func Open(cfg *Config) (*Agent, error) {
	a := &Agent{cfg: cfg, log: cfg.Log, now: time.Now}
	var err error
	if a.log == nil {
		a.log = io.Discard
	}
	if cfg.BootedSlot != "" && cfg.BootedSlot != bootenv.SlotA && cfg.BootedSlot != bootenv.SlotB {
		return nil, fmt.Errorf("booted slot %q: want %q or %q", cfg.BootedSlot, bootenv.SlotA, bootenv.SlotB)
	}
	for _, path := range cfg.Trust.Keys {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read trusted key: %w", err)
		}
		k, err := verify.ParsePublicKey(b)
		if err != nil {
			return nil, fmt.Errorf("trusted key %s: %w", path, err)
		}
		a.keys = append(a.keys, k)
	}
	if a.boot, err = openBoot(cfg.Boot); err != nil {
		return nil, err
	}
	a.modules = cfg.ModuleRunner
	if a.modules == nil {
		work := cfg.Modules.WorkDir
		if work == "" {
			work = filepath.Join(cfg.StateDir, DefaultModulesWorkDir)
		}
		a.modules = NewModuleRunner(&module.Runner{
			ModulesDir: cfg.Modules.Dir,
			WorkDir:    work,
			DeviceType: cfg.DeviceType,
			Timeout:    cfg.Modules.Timeout.Duration,
			Log:        a.log,
		})
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	if a.unlock, err = filelock.Lock(filepath.Join(cfg.StateDir, lockFile), 0o600); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	a.removeStaleTemps()
	a.initClock()
	a.provisionEFI()
	if cfg.Trust.Root != "" {
		if err := a.loadRoot(); err != nil {
			a.Close()
			return nil, err
		}
	}
	var j Journal
	ok, err := readJSON(a.path(journalFile), &j)
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("read journal: %w", err)
	}
	if ok {
		a.j = &j
	}
	if err := a.migrateInstalled(); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// Close releases the state directory's lock.
func (a *Agent) Close() error {
	if a.unlock != nil {
		a.unlock()
		a.unlock = nil
	}
	return nil
}

// bootProtocol is the A/B boot protocol as the agent drives it:
// bootenv.Boot on a bootloader's environment, or bootenv.EFIBoot on the
// UEFI boot manager.
type bootProtocol interface {
	State() (bootenv.BootState, error)
	MarkTentative(slot string) error
	Commit() error
	Rollback(goodSlot string) error
}

func openBoot(c BootConfig) (bootProtocol, error) {
	var store bootenv.Store
	switch c.Backend {
	case BackendUBoot:
		env, err := bootenv.OpenUBootConfig(c.Path)
		if err != nil {
			return nil, err
		}
		store = env
	case BackendGrub:
		store = &bootenv.GrubEnv{Path: c.Path}
	case BackendFile:
		store = &bootenv.FileEnv{Path: c.Path}
	case BackendEFI:
		return bootenv.EFIBoot{Dir: c.Path, LabelA: c.EFI.LabelA, LabelB: c.EFI.LabelB}, nil
	default:
		return nil, fmt.Errorf("boot backend %q: want uboot, grub, efi or file", c.Backend)
	}
	return bootenv.Boot{Store: store, SlotVar: c.SlotVar}, nil
}

// provisionEFI creates the slots' UEFI boot entries when they are missing
// and [boot.efi] names the loaders (bootenv.EFIBoot.Provision), with the
// running slot first in BootOrder. A failure is logged, not returned: the
// commands report the boot state they then cannot read.
func (a *Agent) provisionEFI() {
	e, ok := a.boot.(bootenv.EFIBoot)
	c := a.cfg.Boot.EFI
	if !ok || c.LoaderA == "" {
		return
	}
	booted, _, err := a.knownBootedSlot()
	if err != nil {
		a.logf("warning: EFI boot entries: %v", err)
		return
	}
	if booted == "" {
		booted = bootenv.SlotA
	}
	did, err := e.Provision(bootenv.EFIEntries{Disk: c.ESPDisk, Partition: c.ESPPartition, LoaderA: c.LoaderA, LoaderB: c.LoaderB}, booted)
	for _, d := range did {
		a.logf("%s", d)
	}
	if err != nil {
		a.logf("warning: %v", err)
	}
}

// removeStaleTemps removes the temporary files a power cut left in the
// state directory (ours only: atomicfile's naming pattern, regular files).
// The state lock is held, so no other ferry-agent is writing them.
func (a *Agent) removeStaleTemps() {
	for _, dir := range []string{a.cfg.StateDir, a.path(rootsDir), a.path(tufStateDir)} {
		removed, err := atomicfile.RemoveStale(dir)
		for _, n := range removed {
			a.logf("removed %s, left by an interrupted write", filepath.Join(dir, n))
		}
		if err != nil {
			a.logf("warning: stale temporary files in %s: %v", dir, err)
		}
	}
}

// httpClient returns c, or when it is nil a client bounded by the
// configuration's [network] timeouts. No request of the agent goes out
// without them.
func (a *Agent) httpClient(c *http.Client) *http.Client {
	if c != nil {
		return c
	}
	if a.http == nil {
		a.http = httpget.NewClient(a.cfg.Network.Timeouts())
	}
	return a.http
}

// Config is the configuration the agent was opened with.
func (a *Agent) Config() *Config { return a.cfg }

func (a *Agent) path(name string) string { return filepath.Join(a.cfg.StateDir, name) }

func (a *Agent) logf(format string, args ...any) {
	fmt.Fprintf(a.log, format+"\n", args...)
}

func (a *Agent) reached(point string) {
	if f := a.cfg.Faults; f != nil && f.At != nil {
		f.At(point)
	}
}

// transition records j in state s durably, then reports the point.
func (a *Agent) transition(j *Journal, s State) error {
	j.State = s
	j.History = append(j.History, Transition{State: s, At: a.now().UTC()})
	if err := writeJSON(a.path(journalFile), j); err != nil {
		return fmt.Errorf("record install state %s: %w", s, err)
	}
	a.j = j
	a.reached(string(s))
	return nil
}

// save records j durably without changing its state.
func (a *Agent) save(j *Journal) error {
	if err := writeJSON(a.path(journalFile), j); err != nil {
		return fmt.Errorf("record install state %s: %w", j.State, err)
	}
	a.j = j
	return nil
}

// finish ends j in a terminal state with a result for people.
func (a *Agent) finish(j *Journal, s State, result string) error {
	j.Result = result
	return a.transition(j, s)
}

func (a *Agent) installed() (*Installed, error) {
	var in Installed
	ok, err := readJSON(a.path(installedFile), &in)
	if err != nil || !ok {
		return nil, err
	}
	return &in, nil
}

// Booted-slot sources, as Status reports them.
const (
	FromOverride = "override"
	FromCmdline  = "kernel command line"
	FromBootEnv  = "boot environment"
)

// bootedSlot says which slot runs: the override, else ferry.slot= on the
// kernel command line, else what the boot environment says: the
// firmware's BootCurrent (efi), or the slot it makes the bootloader boot
// (the simulation's view; an unset slot variable is a).
func (a *Agent) bootedSlot(st bootenv.BootState) (slot, from string, err error) {
	if slot, from, err = a.knownBootedSlot(); slot != "" || err != nil {
		return slot, from, err
	}
	if s := st.BootedSlot(); s != "" {
		return s, FromBootEnv, nil
	}
	return bootenv.SlotA, FromBootEnv, nil
}

// knownBootedSlot is the override or the kernel command line's
// ferry.slot=, or "" when neither says.
func (a *Agent) knownBootedSlot() (slot, from string, err error) {
	if a.cfg.BootedSlot != "" {
		return a.cfg.BootedSlot, FromOverride, nil
	}
	if a.cfg.Boot.Cmdline != "none" {
		b, err := os.ReadFile(a.cfg.Boot.Cmdline)
		if err == nil {
			for _, f := range strings.Fields(string(b)) {
				if v, ok := strings.CutPrefix(f, "ferry.slot="); ok {
					if v != bootenv.SlotA && v != bootenv.SlotB {
						return "", "", fmt.Errorf("%s: ferry.slot=%q, want a or b", a.cfg.Boot.Cmdline, v)
					}
					return v, FromCmdline, nil
				}
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", "", fmt.Errorf("read kernel command line: %w", err)
		}
	}
	return "", "", nil
}

// Status is what the agent knows about the device.
type Status struct {
	DeviceType string     `json:"deviceType"`
	Installed  *Installed `json:"installed,omitempty"`
	// Components are the installed components the device runs: those of
	// the booted slot and those installed without an A/B payload.
	Components []ComponentStatus `json:"components"`
	Trust      *TrustStatus      `json:"trust,omitempty"`
	BootedSlot string            `json:"bootedSlot,omitempty"`
	BootedFrom string            `json:"bootedFrom,omitempty"`
	Boot       *BootVars         `json:"boot,omitempty"`
	Slots      []SlotInfo        `json:"slots"`
	// Install is the install in progress or the last one.
	Install *Journal `json:"install,omitempty"`
	Pending bool     `json:"pending"`
}

// BootVars is the boot protocol's state as the environment holds it.
type BootVars struct {
	Slot             string `json:"slot"`
	UpgradeAvailable bool   `json:"upgradeAvailable"`
	BootCount        int    `json:"bootCount"`
	BootLimit        int    `json:"bootLimit"`
	FallbackDetected bool   `json:"fallbackDetected"`
	// Current is the slot the firmware booted (efi: BootCurrent).
	Current string `json:"current,omitempty"`
}

// SlotInfo describes one configured target.
type SlotInfo struct {
	Name string `json:"name"`
	A    string `json:"a,omitempty"`
	B    string `json:"b,omitempty"`
	Dir  string `json:"dir,omitempty"`
	// Current is the release DIR/current points at, for a files target.
	Current string `json:"current,omitempty"`
}

// Status reconciles the journal with the boot state and reports. When
// something cannot be read (a corrupt boot environment) it returns what it
// has together with the error.
func (a *Agent) Status() (*Status, error) { return a.status(true) }

// status is Status; with reconcile false it only looks (a check-in
// reports the state, it does not act on it).
func (a *Agent) status(reconcile bool) (*Status, error) {
	s := &Status{DeviceType: a.cfg.DeviceType, Trust: a.trustStatus()}
	for _, name := range sortedKeys(a.cfg.Slots) {
		c := a.cfg.Slots[name]
		info := SlotInfo{Name: name, A: c.A, B: c.B, Dir: c.Dir}
		if c.Dir != "" {
			info.Current = currentRelease(c.Dir)
		}
		s.Slots = append(s.Slots, info)
	}
	var errs []error
	if reconcile {
		if err := a.reconcile(); err != nil {
			errs = append(errs, err)
		}
	}
	s.Install = a.j
	s.Pending = a.j != nil && a.j.State.Pending()
	in, err := a.installed()
	if err != nil {
		errs = append(errs, fmt.Errorf("read installed version: %w", err))
	}
	s.Installed = in
	if st, err := a.boot.State(); err != nil {
		errs = append(errs, err)
	} else {
		s.Boot = &BootVars{st.Slot, st.UpgradeAvailable, st.BootCount, st.BootLimit, st.FallbackDetected, st.Current}
		if s.BootedSlot, s.BootedFrom, err = a.bootedSlot(st); err != nil {
			errs = append(errs, err)
		}
	}
	s.Components = a.installedComponents(in, s.BootedSlot)
	return s, errors.Join(errs...)
}
