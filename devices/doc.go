// Package devices keeps the device records of a mirror: the check-ins
// devices send (package checkin), one row per device with its latest
// report and a history of its last HistoryPerDevice reports, in SQLite
// (modernc.org/sqlite: pure Go, so the host tool stays cgo-free). The
// database is DIR/devices.db in a mirror directory, mode 0600.
//
// Check-ins are not authenticated: they are what devices say, for people
// to read ('ferry mirror devices'), never an input to trust. So the
// mirror's clock orders them: a device's row holds the report received
// last, with both the time the device put on it and the mirror's time of
// receipt, and a report dated more than MaxClockAhead after the mirror's
// clock is refused, so a forged date cannot pin a device's record.
package devices
