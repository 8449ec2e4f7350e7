package devices

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, pure Go

	"github.com/ferry-update/ferry/transport/checkin"
)

// File is the check-in database of a mirror directory.
const File = "devices.db"

// HistoryPerDevice is how many check-ins DB keeps per device; older
// ones are dropped as new ones come.
const HistoryPerDevice = 100

// DB stores device check-ins in SQLite: one row per device with its
// latest report, and a history of its last HistoryPerDevice reports.
// It is safe for concurrent use; writes are serialized.
type DB struct {
	db         sqlDB
	path       string
	maxDevices atomic.Int64
}

// ErrTooMany is returned by Record for a device it does not know
// when it holds the most devices SetMaxDevices allows.
var ErrTooMany = errors.New("the device database holds its maximum number of devices")

// SetMaxDevices caps how many devices Record records (0: no cap).
func (d *DB) SetMaxDevices(n int) { d.maxDevices.Store(int64(n)) }

// Device is a device's latest check-in.
type Device struct {
	ID      string `json:"deviceId"`
	Type    string `json:"deviceType"`
	Bundle  string `json:"bundle"`
	Version string `json:"version"`
	Result  string `json:"result"`
	Error   string `json:"error,omitempty"`
	// ReportedAt is when the device made the report, by its own clock
	// (informative only: it may be wrong or forged).
	ReportedAt time.Time `json:"reportedAt"`
	// LastSeen is when the mirror received the report, by its clock: the
	// reports of a device are ordered by it.
	LastSeen time.Time `json:"lastSeen"`
	Remote   string    `json:"remote"`   // address the report came from
	Checkins int64     `json:"checkins"` // reports received in all
}

const devicesSchema = `
CREATE TABLE IF NOT EXISTS devices (
	device_id   TEXT PRIMARY KEY,
	device_type TEXT NOT NULL,
	bundle      TEXT NOT NULL,
	version     TEXT NOT NULL,
	result      TEXT NOT NULL,
	error       TEXT NOT NULL,
	reported_at INTEGER NOT NULL, -- unix ms, device clock
	last_seen   INTEGER NOT NULL, -- unix ms, mirror clock
	remote      TEXT NOT NULL,
	checkins    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS checkins (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	device_id   TEXT NOT NULL,
	device_type TEXT NOT NULL,
	bundle      TEXT NOT NULL,
	version     TEXT NOT NULL,
	result      TEXT NOT NULL,
	error       TEXT NOT NULL,
	reported_at INTEGER NOT NULL,
	received_at INTEGER NOT NULL,
	remote      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS checkins_by_device ON checkins (device_id, id);
`

// Perm is the mode of the check-in database and its -wal and -shm
// files: it holds every device's addresses and history, nobody else's
// business.
const Perm fs.FileMode = 0o600

// Open opens (creating if needed) the check-in database at path.
// A new database is made with mode Perm; one that is group- or
// world-accessible (made by an older ferry) is narrowed to it.
func Open(path string) (*DB, error) {
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("device database %s: the path may not contain '?' or '#'", path)
	}
	if err := restrictFiles(path); err != nil {
		return nil, fmt.Errorf("device database %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("device database %s: %w", path, err)
	}
	// One connection: SQLite has one writer at a time anyway, and this
	// way concurrent check-ins queue in Go instead of failing busy.
	// Transactions take the write lock when they begin (_txlock=immediate):
	// another process on the same file (a second mirror, a 'ferry mirror
	// devices' command) then waits its turn (busy_timeout) instead of
	// failing busy when a read would have to become a write.
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(devicesSchema + fleetSchema + engineSchema(sqliteDialect) + accountsSchema + "PRAGMA user_version = 2;"); err != nil {
		db.Close()
		return nil, fmt.Errorf("device database %s: %w", path, err)
	}
	return &DB{db: sqlDB{db: db, dl: sqliteDialect, gate: newGate()}, path: path}, nil
}

// restrictFiles creates the database file with Perm before
// SQLite opens it (SQLite would make it 0644, and its -wal and -shm files
// take the database's mode), and narrows existing files to Perm
// where it may (a database of another user's is left as it is).
func restrictFiles(path string) error {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, Perm)
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if f != nil {
			f.Close()
		}
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&^Perm != 0 {
			if err := os.Chmod(p, fi.Mode().Perm()&Perm); err != nil && !errors.Is(err, fs.ErrPermission) {
				return err
			}
		}
	}
	return nil
}

// OpenDir opens the check-in database of the mirror directory dir
// (DIR/devices.db), creating it if needed.
func OpenDir(dir string) (*DB, error) {
	return Open(filepath.Join(dir, File))
}

// Close closes the database.
func (d *DB) Close() error { return d.db.Close() }

// MaxClockAhead is how far ahead of the mirror's clock a device's report
// may be dated: more is refused (a *checkin.FieldError for "time"). A
// little is allowed for clocks that drift or run in a local time zone.
const MaxClockAhead = 24 * time.Hour

// Record stores a validated report received at the mirror's time at from
// remote (an address). Reports are ordered by at, never by the device's
// clock: a device's record holds the report received last. A report dated
// more than MaxClockAhead after at is refused with a *checkin.FieldError.
func (d *DB) Record(r *checkin.Report, at time.Time, remote string) error {
	if err := r.Validate(); err != nil {
		return err
	}
	if ahead := r.Time.Sub(at); ahead > MaxClockAhead {
		return &checkin.FieldError{Field: "time", Msg: fmt.Sprintf("%s is %s ahead of the mirror's clock (at most %s allowed)",
			r.Time.UTC().Format(time.RFC3339), ahead.Round(time.Second), MaxClockAhead)}
	}
	if err := d.record(r, at, remote); err != nil {
		return fmt.Errorf("store check-in of %s: %w", r.DeviceID, err)
	}
	return nil
}

func (d *DB) record(r *checkin.Report, at time.Time, remote string) error {
	tx, err := d.db.BeginTx(context.Background(), nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	rep, recv := r.Time.UnixMilli(), at.UnixMilli()
	if limit := d.maxDevices.Load(); limit > 0 {
		var known, n int64
		if err := tx.QueryRowContext(context.Background(), `SELECT count(*) FROM devices WHERE device_id = ?`, r.DeviceID).Scan(&known); err != nil {
			return err
		}
		if known == 0 {
			if err := tx.QueryRowContext(context.Background(), `SELECT count(*) FROM devices`).Scan(&n); err != nil {
				return err
			}
			if n >= limit {
				return fmt.Errorf("%w (%d)", ErrTooMany, limit)
			}
		}
	}
	// The mirror's clock orders the reports: the device's state follows
	// the report received last (on a tie, the one the device made last),
	// so a report dated far ahead cannot pin it. last_seen is the
	// receipt time of the report the state comes from.
	if _, err := tx.ExecContext(context.Background(), `UPDATE devices SET device_type = ?, bundle = ?, version = ?, result = ?, error = ?,
			reported_at = ?, remote = ?
		WHERE device_id = ? AND (last_seen < ? OR (last_seen = ? AND reported_at <= ?))`,
		r.DeviceType, r.Bundle, r.Version, r.Result, r.Error, rep, remote, r.DeviceID, recv, recv, rep); err != nil {
		return err
	}
	if _, err := tx.ExecContext(context.Background(), `INSERT INTO devices (device_id, device_type, bundle, version, result, error, reported_at, last_seen, remote, checkins)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)
		ON CONFLICT (device_id) DO UPDATE SET checkins = devices.checkins + 1,
			last_seen = `+d.db.dl.greatest+`(devices.last_seen, excluded.last_seen)`,
		r.DeviceID, r.DeviceType, r.Bundle, r.Version, r.Result, r.Error, rep, recv, remote); err != nil {
		return err
	}
	if _, err := tx.ExecContext(context.Background(), `INSERT INTO checkins (device_id, device_type, bundle, version, result, error, reported_at, received_at, remote)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.DeviceID, r.DeviceType, r.Bundle, r.Version, r.Result, r.Error, rep, recv, remote); err != nil {
		return err
	}
	if _, err := tx.ExecContext(context.Background(), `DELETE FROM checkins WHERE device_id = ? AND id <= (
		SELECT id FROM checkins WHERE device_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`,
		r.DeviceID, r.DeviceID, HistoryPerDevice); err != nil {
		return err
	}
	return tx.Commit()
}

// List returns every device's latest check-in, by device id.
func (d *DB) List() ([]Device, error) {
	rows, err := d.db.QueryContext(context.Background(), `SELECT device_id, device_type, bundle, version, result, error, reported_at, last_seen, remote, checkins
		FROM devices ORDER BY device_id`)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	defer rows.Close()
	out := []Device{}
	for rows.Next() {
		var dv Device
		var rep, seen int64
		if err := rows.Scan(&dv.ID, &dv.Type, &dv.Bundle, &dv.Version, &dv.Result, &dv.Error, &rep, &seen, &dv.Remote, &dv.Checkins); err != nil {
			return nil, fmt.Errorf("list devices: %w", err)
		}
		dv.ReportedAt, dv.LastSeen = time.UnixMilli(rep).UTC(), time.UnixMilli(seen).UTC()
		out = append(out, dv)
	}
	return out, rows.Err()
}

// History returns a device's stored check-ins, newest first.
func (d *DB) History(deviceID string) ([]Device, error) {
	rows, err := d.db.QueryContext(context.Background(), `SELECT device_id, device_type, bundle, version, result, error, reported_at, received_at, remote
		FROM checkins WHERE device_id = ? ORDER BY id DESC`, deviceID)
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", deviceID, err)
	}
	defer rows.Close()
	out := []Device{}
	for rows.Next() {
		var dv Device
		var rep, seen int64
		if err := rows.Scan(&dv.ID, &dv.Type, &dv.Bundle, &dv.Version, &dv.Result, &dv.Error, &rep, &seen, &dv.Remote); err != nil {
			return nil, fmt.Errorf("history of %s: %w", deviceID, err)
		}
		dv.ReportedAt, dv.LastSeen = time.UnixMilli(rep).UTC(), time.UnixMilli(seen).UTC()
		out = append(out, dv)
	}
	return out, rows.Err()
}

// ListDir lists the devices that checked in with the mirror directory
// dir (none if it never served a check-in).
func ListDir(dir string) ([]Device, error) {
	if _, err := os.Stat(filepath.Join(dir, File)); errors.Is(err, fs.ErrNotExist) {
		return []Device{}, nil
	}
	d, err := OpenDir(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.List()
}

// Size is how many bytes the database takes: SQLite's pages in use and
// free (as they are in the file once its write-ahead log is checkpointed),
// PostgreSQL's pg_database_size. The scale benchmark measures the growth
// per check-in with it (docs/fleet.md, "Scale").
func (d *DB) Size(ctx context.Context) (int64, error) {
	q := `SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()`
	if d.db.dl.dollar {
		q = `SELECT pg_database_size(current_database())`
	}
	var n int64
	if err := d.db.QueryRowContext(ctx, q).Scan(&n); err != nil {
		return 0, fmt.Errorf("size of the device database %s: %w", d.path, err)
	}
	return n, nil
}
