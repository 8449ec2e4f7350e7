// Package devices keeps a mirror's device records, in SQLite
// (modernc.org/sqlite: pure Go, so the host tool stays cgo-free), in
// DIR/devices.db of a mirror directory, mode 0600. docs/fleet.md
// specifies what is kept and why.
//
// Devices with keys: each is known by its id (the SHA-256 of its Ed25519
// public key) and has a Status: pending (it checked in, no operator
// enrolled it: nothing it says is recorded), enrolled (Enroll from a
// factory list, or SetStatus by an operator's approval), rejected or
// revoked. Accept judges a signed check-in that checkin.OpenSigned has
// verified: a rejected or revoked device, a counter not above the last
// accepted (replayed) and a report dated more than MaxClockAhead after
// the mirror's clock are refused with a *checkin.RefusedError; an
// enrolled device's report becomes its record's inventory and joins its
// history, of which the last HistoryPerDevice are shown (a few more may
// be stored: the history is cut back every tenth check-in).
//
// Legacy devices: the unsigned (version 1) check-ins of older agents and
// the reports read from sticks (Record, List, History) are kept apart,
// keyed by the name the report claims, and never touch the records
// above. They are what people read, never an input to trust: the
// mirror's clock orders them, and one dated more than MaxClockAhead ahead
// is refused.
//
// Store is the interface the mirror uses, so a PostgreSQL store can take
// SQLite's place.
//
// The fleet engine (docs/fleet.md §9, §10) lives beside the records, in
// the same database, so that a report and what it does to a deployment
// are one transaction: labels (SetLabels), groups, static or dynamic
// (PutGroup; ParseFilter is the filter language), site Settings (the
// two-person rule), and deployments of a bundle to a group in phases
// (CreateDeployment; Pause, Resume, Abort, Approve). Accept counts an
// assigned device's result against its deployment's current phase, once,
// under the deployment's row lock; a phase with too many failures pauses
// it with the reason; AssignmentFor says what a device is to install;
// Evaluate moves deployments on as time passes. Every method takes the
// time as an argument: nothing here reads a clock. Fleet is the whole
// set, as the 'ferry fleet' commands use it.
package devices
