package agent

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/atomicfile"
)

// State is a state of the install state machine (see doc.go).
type State string

// The states, in the order an install goes through them.
const (
	StateIdle        State = "idle"         // no install was ever journaled
	StateVerifying   State = "verifying"    // reading and judging the bundle's head
	StateWriting     State = "writing"      // streaming payloads into the inactive slot
	StateWritten     State = "written"      // every payload written, synced and verified
	StateTentative   State = "tentative"    // boot env set to try the new slot once
	StateRebooting   State = "rebooting"    // reboot command run
	StateBooted      State = "booted"       // new slot booted, health checks running
	StateCommitting  State = "committing"   // health checks passed, making it permanent
	StateRollingBack State = "rolling-back" // returning to the old slot
	StateCommitted   State = "committed"    // done: the new version is installed
	StateRolledBack  State = "rolled-back"  // done: the old version runs again
	StateFailed      State = "failed"       // done: refused or failed before activation
)

// Terminal reports whether s ends an install.
func (s State) Terminal() bool {
	return s == StateIdle || s == StateCommitted || s == StateRolledBack || s == StateFailed
}

// Pending reports whether s is an activated install awaiting its
// boot, health check, commit or rollback.
func (s State) Pending() bool {
	return s == StateTentative || s == StateRebooting || s == StateBooted
}

// TreeSwitch records how a files target is switched: DIR/current points at
// releases/Old before and releases/New after.
type TreeSwitch struct {
	Target string `json:"target"`
	Dir    string `json:"dir"`
	Old    string `json:"old,omitempty"` // "" when there was no current tree
	New    string `json:"new"`
}

// Transition is one entry of an install's history.
type Transition struct {
	State State     `json:"state"`
	At    time.Time `json:"at"`
}

// Journal is the durable record of one install: the one in progress or
// the last one.
type Journal struct {
	ID       string        `json:"id"`
	State    State         `json:"state"`
	Origin   string        `json:"origin"`
	Bundle   string        `json:"bundle,omitempty"`
	Version  string        `json:"version,omitempty"`
	Manifest digest.Digest `json:"manifest,omitempty"`
	// Deployment and Assignment are the mirror's assignment the install
	// acted on (a managed device): its deployment and counter.
	Deployment int64  `json:"deployment,omitempty"`
	Assignment uint64 `json:"assignment,omitempty"`
	// Provides and Types are the bundle's provides and payload types,
	// recorded with its components when it commits.
	Provides map[string]string    `json:"provides,omitempty"`
	Types    []bundle.PayloadType `json:"types,omitempty"`
	// FromSlot is the slot that ran when the install started, ToSlot the
	// one written ("" when the bundle has no A/B payload).
	FromSlot    string `json:"fromSlot"`
	ToSlot      string `json:"toSlot,omitempty"`
	NeedsReboot bool   `json:"needsReboot"`
	// Images are the A/B payloads written into ToSlot, as signed: kept
	// at commit so that rollback --previous can check the slot later.
	Images []SlotImage `json:"images,omitempty"`
	// Previous is set when the install is rollback --previous: ToSlot
	// already held this committed release, nothing was written.
	Previous bool         `json:"previous,omitempty"`
	Trees    []TreeSwitch `json:"trees,omitempty"`
	Modules  []ModuleRun  `json:"modules,omitempty"`
	// Result says how a finished install ended, for people.
	Result  string       `json:"result,omitempty"`
	Refused bool         `json:"refused,omitempty"`
	History []Transition `json:"history"`
}

// Installed is STATE_DIR/installed.json: the installed components and
// the last install that committed.
type Installed struct {
	// Format is InstalledFormat; 0 in an older agent's record.
	Format int `json:"format,omitempty"`
	// Bundle, Version, Manifest, Slot and At are the last install that
	// committed (an older agent's record holds only them).
	Bundle   string        `json:"bundle"`
	Version  string        `json:"version"`
	Manifest digest.Digest `json:"manifest"`
	Slot     string        `json:"slot,omitempty"`
	At       time.Time     `json:"at"`
	// Slots holds, per A/B slot, the components installed by the bundle
	// with an A/B payload that last wrote it.
	Slots map[string]map[string]Component `json:"slots,omitempty"`
	// Components holds the components installed by bundles without an
	// A/B payload.
	Components map[string]Component `json:"components,omitempty"`
	// Releases holds, per A/B slot, the release last committed into it:
	// the one in the other slot is what rollback --previous boots again.
	Releases map[string]*SlotRelease `json:"releases,omitempty"`
}

// SlotRelease is a release committed into an A/B slot.
type SlotRelease struct {
	Bundle   string               `json:"bundle"`
	Version  string               `json:"version"`
	Manifest digest.Digest        `json:"manifest"`
	Provides map[string]string    `json:"provides,omitempty"`
	Types    []bundle.PayloadType `json:"types,omitempty"`
	// Images are its A/B payloads, with the sizes and digests its
	// signatures cover.
	Images []SlotImage `json:"images"`
	At     time.Time   `json:"at"`
}

// SlotImage is an A/B payload as written into a slot of the pair Target
// ([slots.TARGET]): its signed size and content digest.
type SlotImage struct {
	Target string        `json:"target"`
	Size   int64         `json:"size"`
	Digest digest.Digest `json:"digest"`
}

const (
	journalFile   = "journal.json"
	installedFile = "installed.json"
	lockFile      = "lock"
)

func newJournal(origin, fromSlot string) *Journal {
	var b [8]byte
	rand.Read(b[:])
	return &Journal{ID: hex.EncodeToString(b[:]), Origin: origin, FromSlot: fromSlot}
}

func (j *Journal) name() string {
	if j.Bundle == "" {
		return j.Origin
	}
	return j.Bundle + " " + j.Version
}

// readJSON decodes path into v; it reports false when path does not exist.
func readJSON(path string, v any) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("%s is corrupt: %w", path, err)
	}
	return true, nil
}

// writeJSON replaces path with v durably.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o600)
}
