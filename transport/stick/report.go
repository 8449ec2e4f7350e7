package stick

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Result is the outcome an agent reports.
type Result string

// Results an agent reports. Readers accept any lower-case word, so that a
// newer agent may add one.
const (
	ResultSuccess    Result = "success"     // installed (and, where the agent waits for it, committed)
	ResultFailure    Result = "failure"     // refused or failed; nothing was activated
	ResultRolledBack Result = "rolled-back" // installed, did not come up, the old system runs again
	ResultSkipped    Result = "skipped"     // nothing to do: no bundle fits, or already up to date (Reason says which)
	// ResultPending: installed and on trial; the agent's boot-check (or
	// commit, or rollback) decides, and the agent then rewrites the report
	// with the outcome if the stick is still in, or writes it onto the
	// next stick put in.
	ResultPending Result = "pending"
)

// Report is what an agent writes onto the stick after an install attempt.
type Report struct {
	DeviceID string `json:"deviceId"`
	// DeviceType lets the mirror file the report without a prior
	// network check-in (reports from older agents lack it).
	DeviceType string `json:"deviceType,omitempty"`
	// Bundle is the bundle's name; BundleVersion and Manifest say which
	// one, when the agent got that far.
	Bundle        string    `json:"bundle,omitempty"`
	BundleVersion string    `json:"bundleVersion,omitempty"`
	Manifest      string    `json:"manifest,omitempty"`
	VersionBefore string    `json:"versionBefore,omitempty"`
	VersionAfter  string    `json:"versionAfter,omitempty"`
	Result        Result    `json:"result"`
	Started       time.Time `json:"started,omitzero"`
	Finished      time.Time `json:"finished,omitzero"`
	Error         string    `json:"error,omitempty"`
	// Reason says why nothing was installed (a skipped report).
	Reason string `json:"reason,omitempty"`
	// Offered lists what the stick held, one "NAME VERSION (DEVICE
	// TYPES)" each, when no bundle was installed from it.
	Offered []string `json:"offered,omitempty"`
	// Checkin is the device's signed check-in (transport/checkin, a DSSE
	// envelope) made with the report, when the device knows its mirror:
	// the mirror judges and records it as if it came over the network
	// ('ferry mirror ingest'), and it counts toward deployments
	// (docs/fleet.md §12). The rest of the report is not authenticated.
	Checkin json.RawMessage `json:"checkin,omitempty"`
}

// MaxCheckinSize bounds Report.Checkin.
const MaxCheckinSize = 32 << 10

// MaxOffered bounds Report.Offered.
const MaxOffered = 64

var (
	resultRE   = regexp.MustCompile(`^[a-z][a-z-]{0,31}$`)
	fileNameRE = regexp.MustCompile(`[^A-Za-z0-9._-]+`)
)

// Limits of a report's fields.
const (
	maxIDLen    = 256
	maxFieldLen = 256
	maxErrorLen = 16 << 10
)

// Validate checks a report before it is written or after it is read.
func (r *Report) Validate() error {
	if r.DeviceID == "" {
		return errors.New("report: no deviceId")
	}
	if !resultRE.MatchString(string(r.Result)) {
		return fmt.Errorf("report: result %q: want a lower-case word such as %q or %q", r.Result, ResultSuccess, ResultFailure)
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{
		{"deviceId", r.DeviceID, maxIDLen}, {"deviceType", r.DeviceType, maxFieldLen}, {"bundle", r.Bundle, maxFieldLen}, {"bundleVersion", r.BundleVersion, maxFieldLen},
		{"manifest", r.Manifest, maxFieldLen}, {"versionBefore", r.VersionBefore, maxFieldLen},
		{"versionAfter", r.VersionAfter, maxFieldLen}, {"error", r.Error, maxErrorLen}, {"reason", r.Reason, maxErrorLen},
	} {
		if len(f.v) > f.max {
			return fmt.Errorf("report: %s of %d bytes, at most %d", f.name, len(f.v), f.max)
		}
		if !utf8.ValidString(f.v) {
			return fmt.Errorf("report: %s is not UTF-8", f.name)
		}
		if f.name != "error" && strings.ContainsFunc(f.v, func(c rune) bool { return c < ' ' || c == 0x7f }) {
			return fmt.Errorf("report: %s holds control characters", f.name)
		}
	}
	if len(r.Checkin) > MaxCheckinSize {
		return fmt.Errorf("report: a check-in of %d bytes, at most %d", len(r.Checkin), MaxCheckinSize)
	}
	if len(r.Offered) > MaxOffered {
		return fmt.Errorf("report: %d offered bundles, at most %d", len(r.Offered), MaxOffered)
	}
	for _, o := range r.Offered {
		if len(o) > maxFieldLen || !utf8.ValidString(o) || strings.ContainsFunc(o, func(c rune) bool { return c < ' ' || c == 0x7f }) {
			return fmt.Errorf("report: offered %q: want at most %d bytes of UTF-8 text", o, maxFieldLen)
		}
	}
	return nil
}

// ParseReport decodes one report file: a single JSON object of at most
// MaxReportSize bytes. Unknown fields are ignored (a newer agent may add
// some).
func ParseReport(b []byte) (*Report, error) {
	if len(b) > MaxReportSize {
		return nil, fmt.Errorf("report of %d bytes, at most %d", len(b), MaxReportSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var r Report
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("report: data after the JSON object")
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// fileName is where a report goes: the device id (made safe for FAT) and
// the time it finished, e.g. gw-0042-20250102T030405.123Z.json.
func (r *Report) fileName(now time.Time) string {
	id := strings.Trim(fileNameRE.ReplaceAllString(r.DeviceID, "_"), "._")
	if len(id) > 64 {
		id = id[:64]
	}
	if id == "" {
		id = "device"
	}
	t := r.Finished
	if t.IsZero() {
		t = now
	}
	return id + "-" + t.UTC().Format("20060102T150405.000Z")
}
