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
// history, of which the last HistoryPerDevice are kept.
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
package devices
