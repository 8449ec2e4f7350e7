// Package fleet is a mirror's fleet as the 'ferry fleet' commands (and
// the console) work on it: the device records and deployments (package
// devices) together with the mirror store the deployments' bundles come
// from and whose assignment key signs them (package mirror).
//
// Client is what the commands call. Local implements it on a mirror
// directory (its devices.db, or a PostgreSQL database shared by several
// mirrors); a client of a running mirror's HTTP API implements it for a
// mirror's URL. Summarize makes the fleet at a glance that 'ferry fleet
// status' prints, the API answers and the console shows.
package fleet

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/mirror"
)

// Client is a mirror's fleet: its device records and deployments
// (devices.Fleet), and deployments made from its bundles.
type Client interface {
	devices.Fleet
	// Deploy makes a deployment of the mirror's bundle ref
	// ("name:version"): spec's bundle, version and digest are taken from
	// the mirror, and the mirror is made ready to sign assignments.
	Deploy(ctx context.Context, ref string, spec devices.DeploymentSpec, at time.Time) (*devices.Deployment, error)
	Close() error
}

// Local is the fleet of a mirror directory.
type Local struct {
	*devices.DB
	Store *mirror.Store
}

var _ Client = (*Local)(nil)

// BundleNotFoundError says the mirror holds no such bundle.
type BundleNotFoundError struct {
	Ref string `json:"ref"`
	// Versions are the versions the mirror holds of the name.
	Versions []string `json:"versions,omitempty"`
}

func (e *BundleNotFoundError) Error() string {
	return fmt.Sprintf("the mirror holds no bundle %s", e.Ref)
}

// Deploy implements Client: the bundle's manifest digest comes from the
// mirror's index, and the mirror's assignment key is made (and published
// in its TUF targets, which needs the mirror key) if it has none yet.
func (l *Local) Deploy(ctx context.Context, ref string, spec devices.DeploymentSpec, at time.Time) (*devices.Deployment, error) {
	name, version, ok := strings.Cut(ref, ":")
	if !ok || name == "" || version == "" {
		return nil, &devices.SpecError{Field: "bundle", Msg: fmt.Sprintf("%q: want NAME:VERSION", ref)}
	}
	entries, err := l.Store.List()
	if err != nil {
		return nil, err
	}
	nf := &BundleNotFoundError{Ref: ref}
	for _, e := range entries {
		if e.Name != name {
			continue
		}
		if e.Version == version {
			spec.Bundle, spec.Version, spec.Digest = e.Name, e.Version, e.Digest.String()
			nf = nil
			break
		}
		nf.Versions = append(nf.Versions, e.Version)
	}
	if nf != nil {
		return nil, nf
	}
	if _, _, err := l.Store.EnsureAssignmentKey(); err != nil {
		return nil, fmt.Errorf("the mirror signs assignments with its assignment key: %w", err)
	}
	return l.CreateDeployment(ctx, spec, at)
}

// SilentAfter is how long an enrolled device may go without a check-in
// before the fleet at a glance lists it as silent.
const SilentAfter = 24 * time.Hour

// Overview is the fleet at a glance: what 'ferry fleet status' prints,
// GET /api/v1/fleet answers and the console's first page shows.
type Overview struct {
	Devices int `json:"devices"`
	// ByStatus counts the devices of each enrollment status.
	ByStatus map[devices.Status]int `json:"byStatus"`
	// Versions counts the enrolled devices by what they run, most
	// first; a device that never reported counts under "" and "".
	Versions []VersionCount `json:"versions"`
	// Failing are the enrolled devices whose last install failed, rolled
	// back or was refused, or whose bootloader fell back (Failing), by
	// name.
	Failing []devices.Record `json:"failing"`
	// Silent are the enrolled devices not heard from for SilentAfter,
	// or never, by name.
	Silent []devices.Record `json:"silent"`
	// Deployments are those not over (awaiting approval, running,
	// paused), newest first.
	Deployments []devices.Deployment `json:"deployments"`
}

// VersionCount is how many enrolled devices run a bundle version.
type VersionCount struct {
	Bundle  string `json:"bundle"`
	Version string `json:"version"`
	Devices int    `json:"devices"`
}

// failedResults are the install results that mean something went wrong.
var failedResults = map[string]bool{"failed": true, "rolled-back": true, "refused": true}

// Failing reports whether a device's latest report says something went
// wrong: its last install failed, rolled back or was refused, or its
// bootloader fell back to the other slot.
func Failing(r *devices.Record) bool {
	inv := r.Inventory
	return inv != nil && (failedResults[inv.Result] || inv.Slot.Fallback)
}

// Summarize makes the Overview of recs and deps (newest first, as
// Deployments lists them) at now.
func Summarize(recs []devices.Record, deps []devices.Deployment, now time.Time) *Overview {
	o := &Overview{Devices: len(recs), ByStatus: map[devices.Status]int{}, Versions: []VersionCount{},
		Failing: []devices.Record{}, Silent: []devices.Record{}, Deployments: []devices.Deployment{}}
	counts := map[[2]string]int{}
	for i := range recs {
		r := &recs[i]
		o.ByStatus[r.Status]++
		if r.Status != devices.Enrolled {
			continue
		}
		var k [2]string
		if inv := r.Inventory; inv != nil {
			k = [2]string{inv.Bundle, inv.Version}
		}
		counts[k]++
		if Failing(r) {
			o.Failing = append(o.Failing, *r)
		}
		if r.LastSeen.IsZero() || now.Sub(r.LastSeen) >= SilentAfter {
			o.Silent = append(o.Silent, *r)
		}
	}
	// By name, then id, whatever order recs came in.
	devices.SortByStatus(o.Failing)
	devices.SortByStatus(o.Silent)
	for k, n := range counts {
		o.Versions = append(o.Versions, VersionCount{Bundle: k[0], Version: k[1], Devices: n})
	}
	sort.Slice(o.Versions, func(i, j int) bool {
		a, b := o.Versions[i], o.Versions[j]
		if a.Devices != b.Devices {
			return a.Devices > b.Devices
		}
		if a.Bundle != b.Bundle {
			return a.Bundle < b.Bundle
		}
		return a.Version < b.Version
	})
	for _, d := range deps {
		if d.State != devices.Completed && d.State != devices.Aborted {
			o.Deployments = append(o.Deployments, d)
		}
	}
	return o
}

// Status is the fleet at a glance of c at now: its deployments moved on
// to now first (on a mirror's URL the mirror does that at its own clock).
func Status(ctx context.Context, c devices.Fleet, now time.Time) (*Overview, error) {
	if err := c.Evaluate(ctx, now); err != nil {
		return nil, err
	}
	recs, err := c.Records(ctx)
	if err != nil {
		return nil, err
	}
	deps, err := c.Deployments(ctx)
	if err != nil {
		return nil, err
	}
	return Summarize(recs, deps, now), nil
}
