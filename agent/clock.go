package agent

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/ferry-update/ferry/internal/atomicfile"
)

// clockFile records the newest time the agent has seen, in the state
// directory (verify/TRUST.md §8, "Devices without a real-time clock").
const clockFile = "clock"

// clockRecordStep is how far the clock must have moved past the recorded
// time before the agent records it again, so that a start does not write
// the state directory each time.
const clockRecordStep = time.Hour

// initClock sets the agent's notion of now: the device's clock, but never
// earlier than the newest time the agent has seen — the time it recorded
// at an earlier start, the last install's, the last journal entry's and
// the time the agent was built. A device whose clock resets (no real-time
// clock, a flat battery) thus neither trusts a root that had expired by
// then nor refuses every bundle. A clock ahead of the recorded time by
// clockRecordStep or more is recorded.
func (a *Agent) initClock() {
	clock := a.cfg.Clock
	if clock == nil {
		clock = time.Now
	}
	floor, from := buildTime(), "the agent's build time"
	seen := func(t time.Time, what string) {
		if t.After(floor) {
			floor, from = t, what
		}
	}
	recorded, err := a.recordedTime()
	if err != nil {
		a.logf("warning: %v", err)
	}
	seen(recorded, "the time recorded at an earlier start")
	if in, err := a.installed(); err == nil && in != nil {
		seen(in.At, "the last install's time")
	}
	var j Journal
	if ok, err := readJSON(a.path(journalFile), &j); err == nil && ok && len(j.History) > 0 {
		seen(j.History[len(j.History)-1].At, "the journal's last entry")
	}
	a.now = func() time.Time {
		if t := clock(); t.After(floor) {
			return t
		}
		return floor
	}
	switch t := clock(); {
	case t.Before(floor):
		a.logf("warning: the clock reads %s, before %s (%s): using that time instead", t.UTC().Format(time.RFC3339), from, floor.UTC().Format(time.RFC3339))
	case recorded.IsZero() || t.Sub(recorded) >= clockRecordStep:
		if err := atomicfile.WriteFile(a.path(clockFile), []byte(t.UTC().Format(time.RFC3339)+"\n"), 0o600); err != nil {
			a.logf("warning: record the time: %v", err)
		}
	}
}

// recordedTime reads clockFile; zero when there is none.
func (a *Agent) recordedTime() (time.Time, error) {
	b, err := os.ReadFile(a.path(clockFile))
	if errors.Is(err, os.ErrNotExist) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("read the recorded time: %w", err)
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(string(b)))
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", a.path(clockFile), err)
	}
	return t, nil
}

// buildTime is the time of the commit the agent was built from (vcs.time),
// zero when the build does not say.
func buildTime() time.Time {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return time.Time{}
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.time" {
			t, _ := time.Parse(time.RFC3339, s.Value)
			return t
		}
	}
	return time.Time{}
}
