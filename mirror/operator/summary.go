package operator

import (
	"sort"
	"time"

	"github.com/ferry-update/ferry/devices"
)

// SilentAfter is how long an enrolled device may go without a check-in
// before the fleet summary lists it as silent.
const SilentAfter = 24 * time.Hour

// Summary is the fleet at a glance (GET /api/v1/fleet, the console's
// first page).
type Summary struct {
	Devices int `json:"devices"`
	// ByStatus counts the devices of each enrollment status.
	ByStatus map[string]int `json:"byStatus"`
	// Versions counts the enrolled devices by what they run, most first.
	Versions []VersionCount `json:"versions"`
	// Failing are the enrolled devices whose last install failed, rolled
	// back or was refused, or whose bootloader fell back.
	Failing []DeviceBrief `json:"failing"`
	// Silent are the enrolled devices not heard from for SilentAfter.
	Silent []DeviceBrief `json:"silent"`
}

// VersionCount is how many enrolled devices run one bundle version.
type VersionCount struct {
	Bundle  string `json:"bundle"`
	Version string `json:"version"`
	Devices int    `json:"devices"`
}

// DeviceBrief names a device and what is wrong with it.
type DeviceBrief struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Bundle   string    `json:"bundle,omitempty"`
	Version  string    `json:"version,omitempty"`
	Result   string    `json:"result,omitempty"`
	Error    string    `json:"error,omitempty"`
	LastSeen time.Time `json:"lastSeen,omitzero"`
}

// failedResults are the install results that mean something went wrong.
var failedResults = map[string]bool{"failed": true, "rolled-back": true, "refused": true}

// Failing reports whether a device's latest report says something went
// wrong.
func Failing(r *devices.Record) bool {
	inv := r.Inventory
	return inv != nil && (failedResults[inv.Result] || inv.Slot.Fallback)
}

// Summarize makes the fleet summary of recs at now.
func Summarize(recs []devices.Record, now time.Time) Summary {
	s := Summary{Devices: len(recs), ByStatus: map[string]int{}, Versions: []VersionCount{}, Failing: []DeviceBrief{}, Silent: []DeviceBrief{}}
	versions := map[[2]string]int{}
	for i := range recs {
		r := &recs[i]
		s.ByStatus[string(r.Status)]++
		if r.Status != devices.Enrolled {
			continue
		}
		b := DeviceBrief{ID: r.ID, Name: r.Name, LastSeen: r.LastSeen}
		if inv := r.Inventory; inv != nil {
			versions[[2]string{inv.Bundle, inv.Version}]++
			b.Bundle, b.Version, b.Result, b.Error = inv.Bundle, inv.Version, inv.Result, inv.Error
		} else {
			versions[[2]string{"", ""}]++
		}
		if Failing(r) {
			s.Failing = append(s.Failing, b)
		}
		if r.LastSeen.IsZero() || now.Sub(r.LastSeen) >= SilentAfter {
			s.Silent = append(s.Silent, b)
		}
	}
	for k, n := range versions {
		s.Versions = append(s.Versions, VersionCount{Bundle: k[0], Version: k[1], Devices: n})
	}
	sort.Slice(s.Versions, func(i, j int) bool {
		a, b := s.Versions[i], s.Versions[j]
		if a.Devices != b.Devices {
			return a.Devices > b.Devices
		}
		if a.Bundle != b.Bundle {
			return a.Bundle < b.Bundle
		}
		return a.Version < b.Version
	})
	return s
}
