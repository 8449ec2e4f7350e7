package agent

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/bundle"
)

// InstalledFormat is the format of STATE_DIR/installed.json this agent
// writes: 2 holds components (doc.go, "Components"); a record without a
// format is the single installed version older agents wrote, migrated by
// Open.
const InstalledFormat = 2

// Component is one installed component (bundle/FORMAT.md §6.2): what
// installed it and when.
type Component struct {
	Version string `json:"version"`
	// Bundle and BundleVersion name the bundle that installed it.
	Bundle        string `json:"bundle"`
	BundleVersion string `json:"bundleVersion"`
	// Types are the payload types of that bundle; empty when the record
	// was migrated from an agent that did not keep them.
	Types    []bundle.PayloadType `json:"types,omitempty"`
	Manifest digest.Digest        `json:"manifest,omitempty"`
	At       time.Time            `json:"at"`
}

// ComponentStatus is a component as Status lists it.
type ComponentStatus struct {
	Name string `json:"name"`
	Component
	// Slot is the A/B slot the component lives in, "" for one installed
	// by a bundle without an A/B payload.
	Slot string `json:"slot,omitempty"`
}

// VersionError says that a component of a bundle would go below, or stay
// at, the installed version of the same component. It wraps ErrDowngrade
// or ErrSameVersion.
type VersionError struct {
	Component string
	Version   string // the bundle's
	Installed string
	Err       error
}

func (e *VersionError) Error() string {
	op := "<"
	if errors.Is(e.Err, ErrSameVersion) {
		op = "="
	}
	return fmt.Sprintf("component %s: %s %s installed %s: %v", e.Component, e.Version, op, e.Installed, e.Err)
}

func (e *VersionError) Unwrap() error { return e.Err }

// DependencyError says that the installed components do not meet one of
// a bundle's depends.
type DependencyError struct {
	Dependency bundle.Dependency
	// Installed is the installed version of the component, "" when it is
	// not installed.
	Installed string
}

func (e *DependencyError) Error() string {
	if e.Installed == "" {
		return fmt.Sprintf("needs %s, and %s is not installed", e.Dependency, e.Dependency.Component)
	}
	return fmt.Sprintf("needs %s, and %s %s is installed", e.Dependency, e.Dependency.Component, e.Installed)
}

// components returns the installed components as the device runs them
// from slot booted: those of the booted slot and those installed by
// bundles without an A/B payload.
func (in *Installed) components(booted string) map[string]ComponentStatus {
	out := map[string]ComponentStatus{}
	if in == nil {
		return out
	}
	for name, c := range in.Components {
		out[name] = ComponentStatus{Name: name, Component: c}
	}
	for name, c := range in.Slots[booted] {
		out[name] = ComponentStatus{Name: name, Component: c, Slot: booted}
	}
	return out
}

// record enters the components of the install j, committed at at: an
// install with an A/B payload replaces the set of the slot it wrote;
// another replaces each of its components in the global set. A component
// lives in one place: recorded in one, it leaves the other.
func (in *Installed) record(j *Journal, slot string, at time.Time) {
	in.Format = InstalledFormat
	in.Bundle, in.Version, in.Manifest, in.Slot, in.At = j.Bundle, j.Version, j.Manifest, slot, at
	set := map[string]Component{}
	for name, v := range j.components() {
		set[name] = Component{Version: v, Bundle: j.Bundle, BundleVersion: j.Version, Types: j.Types, Manifest: j.Manifest, At: at}
	}
	if j.ToSlot != "" {
		if in.Slots == nil {
			in.Slots = map[string]map[string]Component{}
		}
		in.Slots[j.ToSlot] = set
		if in.Releases == nil {
			in.Releases = map[string]*SlotRelease{}
		}
		in.Releases[j.ToSlot] = &SlotRelease{Bundle: j.Bundle, Version: j.Version, Manifest: j.Manifest,
			Provides: j.Provides, Types: j.Types, Images: j.Images, At: at}
		for name := range set {
			delete(in.Components, name)
		}
		return
	}
	if in.Components == nil {
		in.Components = map[string]Component{}
	}
	for name, c := range set {
		in.Components[name] = c
		for _, s := range in.Slots {
			delete(s, name)
		}
	}
}

// components is what the journaled bundle provides: itself and its
// provides.
func (j *Journal) components() map[string]string {
	out := map[string]string{j.Bundle: j.Version}
	maps.Copy(out, j.Provides)
	return out
}

// migrate turns the single installed version of an older agent into a
// component: of the slot the last install wrote when the journal shows it
// was an A/B install of that very bundle, else a global one (the record
// does not say more). It reports whether anything changed.
func (in *Installed) migrate(j *Journal) bool {
	if in.Format >= InstalledFormat || in.Bundle == "" {
		return false
	}
	c := Component{Version: in.Version, Bundle: in.Bundle, BundleVersion: in.Version, Manifest: in.Manifest, At: in.At}
	if j != nil && j.Manifest == in.Manifest && j.ToSlot != "" && j.ToSlot == in.Slot {
		c.Types = j.Types
		if len(c.Types) == 0 {
			c.Types = []bundle.PayloadType{bundle.Rootfs}
		}
		in.Slots = map[string]map[string]Component{in.Slot: {in.Bundle: c}}
	} else {
		in.Components = map[string]Component{in.Bundle: c}
	}
	in.Format = InstalledFormat
	return true
}

// migrateInstalled migrates an older agent's installed.json, durably,
// before anything reads it.
func (a *Agent) migrateInstalled() error {
	in, err := a.installed()
	if err != nil || in == nil || !in.migrate(a.j) {
		return err
	}
	if err := writeJSON(a.path(installedFile), in); err != nil {
		return fmt.Errorf("migrate %s: %w", installedFile, err)
	}
	a.logf("migrated the installed version %s %s to a component", in.Bundle, in.Version)
	return nil
}

// checkComponents applies the version policy per component and the
// bundle's depends against the components installed on slot booted
// (bundle/FORMAT.md §6.2).
func (a *Agent) checkComponents(c *bundle.Config, booted string) error {
	in, err := a.installed()
	if err != nil {
		return fmt.Errorf("read installed components: %w", err)
	}
	have := in.components(booted)
	provided := c.Components()
	for _, name := range c.ComponentNames() {
		cur, ok := have[name]
		if !ok {
			continue
		}
		v, pol := provided[name], a.cfg.Policy.For(name)
		switch cmp := bundle.CompareVersions(v, cur.Version); {
		case cmp < 0 && !pol.AllowDowngrade:
			return &VersionError{Component: name, Version: v, Installed: cur.Version, Err: ErrDowngrade}
		case cmp == 0 && name == c.Name && !pol.AllowSameVersion:
			return &VersionError{Component: name, Version: v, Installed: cur.Version, Err: ErrSameVersion}
		}
	}
	deps, err := c.Dependencies()
	if err != nil {
		return err
	}
	for _, d := range deps {
		if v := have[d.Component].Version; !d.Satisfied(v) {
			return &DependencyError{Dependency: d, Installed: v}
		}
	}
	return nil
}

// installedComponents lists the components the device runs, sorted by
// name; booted is the slot it runs from.
func (a *Agent) installedComponents(in *Installed, booted string) []ComponentStatus {
	have := in.components(booted)
	out := make([]ComponentStatus, 0, len(have))
	for _, name := range slices.Sorted(maps.Keys(have)) {
		out = append(out, have[name])
	}
	return out
}

// installedVersionOf is the installed version of component name on the
// booted slot, "" when it is not installed or cannot be told.
func (a *Agent) installedVersionOf(name string) string {
	in, err := a.installed()
	if err != nil || in == nil {
		return ""
	}
	st, err := a.boot.State()
	if err != nil {
		return ""
	}
	booted, _, err := a.bootedSlot(st)
	if err != nil {
		return ""
	}
	return in.components(booted)[name].Version
}
