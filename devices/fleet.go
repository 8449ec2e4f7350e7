package devices

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ferry-update/ferry/transport/checkin"
)

// Status is where a device stands with the mirror.
type Status string

// The statuses of a device (docs/fleet.md, "Enrollment").
const (
	// Pending: the device checked in, correctly signed, but no operator
	// enrolled it: it is listed, and nothing it says is recorded.
	Pending Status = "pending"
	// Enrolled: its check-ins are recorded.
	Enrolled Status = "enrolled"
	// Rejected: an operator refused it; it may still be approved later.
	Rejected Status = "rejected"
	// Revoked: its key is no longer trusted, for good: a device that
	// comes back needs a new key.
	Revoked Status = "revoked"
)

// Store is what the mirror needs of its device records: the SQLite DB
// implements it, and a PostgreSQL store will.
type Store interface {
	// Accept judges a signed check-in (already verified by
	// checkin.OpenSigned) received at the mirror's time at from remote,
	// and records it if the device is enrolled. The Outcome says what
	// became of it; a refusal is a *checkin.RefusedError.
	Accept(ctx context.Context, inv *checkin.Inventory, at time.Time, remote string) (Outcome, error)
	// Enroll enrolls devices by their public keys (factory lists,
	// sticks), as how says (e.g. "file:keys.jsonl").
	Enroll(ctx context.Context, es []Enrollment, how string, at time.Time) ([]EnrollResult, error)
	// SetStatus moves the device idOrPrefix to status (approve, reject,
	// revoke) and returns its record.
	SetStatus(ctx context.Context, idOrPrefix string, to Status, at time.Time) (*Record, error)
	// Records lists every device with a key, by id.
	Records(ctx context.Context) ([]Record, error)
	// Show returns one device's record and its stored check-ins,
	// newest first.
	Show(ctx context.Context, idOrPrefix string) (*Record, []Report, error)
	// Record stores a version 1 (unsigned) check-in among the legacy
	// records, which never touch the records above.
	Record(r *checkin.Report, at time.Time, remote string) error
	// SetMaxDevices caps the devices recorded (0: no cap): beyond it a
	// new device's check-in fails with ErrTooMany.
	SetMaxDevices(n int)
	// AssignmentFor says what an enrolled device is assigned to install
	// (nil: nothing); Evaluate moves deployments on as time passes.
	AssignmentFor(ctx context.Context, device string, at time.Time) (*Assignment, error)
	Evaluate(ctx context.Context, at time.Time) error
	Close() error
}

var _ Store = (*DB)(nil)

// Outcome is what became of an accepted check-in.
type Outcome int

const (
	// Recorded: the device is enrolled; its record and history hold the
	// report.
	Recorded Outcome = iota
	// Listed: the device is not enrolled; it is listed as pending and
	// nothing it said is recorded.
	Listed
)

// Record is a device with a key, as the mirror knows it.
type Record struct {
	ID        string `json:"id"`
	Status    Status `json:"status"`
	PublicKey []byte `json:"publicKey"` // raw Ed25519
	// Name and DeviceType come from the enrollment when it gave them,
	// else from the device's first contact, then from its reports.
	Name       string    `json:"name"`
	DeviceType string    `json:"deviceType"`
	EnrolledBy string    `json:"enrolledBy,omitempty"` // file:PATH, approved, ...
	StatusAt   time.Time `json:"statusAt"`             // when the status last changed
	// FirstSeen and LastSeen are the mirror's times of the first and
	// latest check-in it took (zero: never); Remote is where the latest
	// came from.
	FirstSeen time.Time `json:"firstSeen"`
	LastSeen  time.Time `json:"lastSeen"`
	Remote    string    `json:"remote"`
	Counter   uint64    `json:"counter"`  // the highest counter accepted
	Checkins  int64     `json:"checkins"` // check-ins recorded
	Contacts  int64     `json:"contacts"` // check-ins taken while not enrolled
	// Inventory is the latest recorded report (nil: none yet).
	Inventory *checkin.Inventory `json:"inventory,omitempty"`
	// Labels are set by operators and enrollment lists (site, line, ...),
	// never by the device: filters select devices by them.
	Labels map[string]string `json:"labels,omitempty"`
}

// Report is one stored check-in of a device.
type Report struct {
	Counter    uint64            `json:"counter"`
	ReceivedAt time.Time         `json:"receivedAt"`
	Remote     string            `json:"remote"`
	Inventory  checkin.Inventory `json:"inventory"`
}

// Enrollment is a device to enroll: its key, and optionally a name and
// device type from the factory line.
type Enrollment struct {
	PublicKey  ed25519.PublicKey
	Name       string
	DeviceType string
	// Labels (site, line, ...) are set on the device when it is enrolled.
	Labels map[string]string
}

// EnrollResult says what Enroll did with one device.
type EnrollResult struct {
	ID     string `json:"id"`
	Name   string `json:"name,omitempty"`
	Before Status `json:"before,omitempty"` // "" for a device the mirror did not know
	After  Status `json:"after"`
	// Note says why a device was left as it was.
	Note string `json:"note,omitempty"`
}

// NotFoundError says no device has the id (or prefix).
type NotFoundError struct {
	ID string `json:"id"`
}

func (e *NotFoundError) Error() string { return fmt.Sprintf("no device %q on this mirror", e.ID) }

// AmbiguousError says a prefix names more than one device.
type AmbiguousError struct {
	Prefix string   `json:"prefix"`
	IDs    []string `json:"ids"`
}

func (e *AmbiguousError) Error() string {
	return fmt.Sprintf("%q names %d devices (%s): give more of the id", e.Prefix, len(e.IDs), strings.Join(e.IDs, ", "))
}

// StatusError says a device cannot move from its status to another.
type StatusError struct {
	ID   string `json:"id"`
	From Status `json:"from"`
	To   Status `json:"to"`
	Msg  string `json:"msg"`
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("device %s is %s, cannot be %s: %s", e.ID, e.From, e.To, e.Msg)
}

// MinPrefix is the shortest id prefix that names a device.
const MinPrefix = 8

const fleetSchema = `
CREATE TABLE IF NOT EXISTS fleet_devices (
	device_id   TEXT PRIMARY KEY, -- hex SHA-256 of the key's SubjectPublicKeyInfo
	public_key  BLOB NOT NULL,    -- raw Ed25519
	status      TEXT NOT NULL,    -- pending, enrolled, rejected, revoked
	name        TEXT NOT NULL,
	device_type TEXT NOT NULL,
	enrolled_by TEXT NOT NULL,
	status_at   INTEGER NOT NULL, -- unix ms, mirror clock
	first_seen  INTEGER NOT NULL, -- unix ms, mirror clock; 0: never
	last_seen   INTEGER NOT NULL,
	remote      TEXT NOT NULL,
	counter     INTEGER NOT NULL,
	checkins    INTEGER NOT NULL,
	contacts    INTEGER NOT NULL,
	inventory   TEXT NOT NULL     -- the latest recorded payload (JSON), '' none
);
CREATE TABLE IF NOT EXISTS fleet_reports (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	device_id   TEXT NOT NULL,
	counter     INTEGER NOT NULL,
	received_at INTEGER NOT NULL,
	remote      TEXT NOT NULL,
	inventory   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS fleet_reports_by_device ON fleet_reports (device_id, id);
`

const recordColumns = `device_id, public_key, status, name, device_type, enrolled_by, status_at, first_seen, last_seen, remote, counter, checkins, contacts, inventory`

type scanner interface{ Scan(...any) error }

func scanRecord(row scanner) (*Record, error) {
	var r Record
	var statusAt, first, last, counter int64
	var inv string
	if err := row.Scan(&r.ID, &r.PublicKey, &r.Status, &r.Name, &r.DeviceType, &r.EnrolledBy, &statusAt, &first, &last, &r.Remote, &counter, &r.Checkins, &r.Contacts, &inv); err != nil {
		return nil, err
	}
	r.StatusAt, r.FirstSeen, r.LastSeen = msTime(statusAt), msTime(first), msTime(last)
	r.Counter = uint64(counter)
	if inv != "" {
		r.Inventory = new(checkin.Inventory)
		if err := json.Unmarshal([]byte(inv), r.Inventory); err != nil {
			return nil, fmt.Errorf("device %s: stored inventory: %w", r.ID, err)
		}
	}
	return &r, nil
}

func msTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// Accept implements Store.
func (d *DB) Accept(ctx context.Context, inv *checkin.Inventory, at time.Time, remote string) (Outcome, error) {
	if err := inv.Validate(); err != nil {
		return 0, err
	}
	if ahead := inv.Time.Sub(at); ahead > MaxClockAhead {
		return 0, &checkin.RefusedError{Reason: checkin.ClockAhead, Msg: fmt.Sprintf("device %s dated its report %s, %s ahead of the mirror's clock (at most %s allowed)",
			inv.Device, inv.Time.UTC().Format(time.RFC3339), ahead.Round(time.Second), MaxClockAhead)}
	}
	// The record keeps the report as the device sent it, validated.
	payload, err := json.Marshal(inv)
	if err != nil {
		return 0, err
	}
	if d.db.dl.dmlInWith {
		recorded, err := recordEnrolled(ctx, d.db, inv, payload, at, remote)
		if err != nil {
			return 0, fmt.Errorf("store check-in of %s: %w", inv.Device, err)
		}
		if recorded {
			return Recorded, nil
		}
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	out, err := accept(ctx, tx, inv, payload, at, remote, d.maxDevices.Load())
	if err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("store check-in of %s: %w", inv.Device, err)
	}
	return out, nil
}

func accept(ctx context.Context, tx sqlTx, inv *checkin.Inventory, payload []byte, at time.Time, remote string, limit int64) (Outcome, error) {
	now := at.UnixMilli()
	// Whether the device is in any deployment comes with its record: most
	// devices are in none, and their check-in then skips countReport's
	// query (each statement is a round trip to PostgreSQL).
	var targeted bool
	rec, err := scanRecord(withExtra{tx.QueryRowContext(ctx, `SELECT `+recordColumns+`,
		EXISTS (SELECT 1 FROM fleet_targets t WHERE t.device_id = fleet_devices.device_id)
		FROM fleet_devices WHERE device_id = ?`+tx.dl.forUpdate, inv.Device), []any{&targeted}})
	if errors.Is(err, sql.ErrNoRows) {
		// First contact: listed as pending, with what it claims to be.
		if limit > 0 {
			var n int64
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM fleet_devices`).Scan(&n); err != nil {
				return 0, err
			}
			if n >= limit {
				return 0, fmt.Errorf("%w (%d)", ErrTooMany, limit)
			}
		}
		// A contact of the same device at the same time may have listed
		// it first: then this one is listed too.
		_, err := tx.ExecContext(ctx, `INSERT INTO fleet_devices (`+recordColumns+`) VALUES (?, ?, ?, ?, ?, '', ?, ?, ?, ?, ?, 0, 1, '')
			ON CONFLICT (device_id) DO NOTHING`,
			inv.Device, []byte(inv.PublicKey), Pending, inv.Name, inv.DeviceType, now, now, now, remote, int64(inv.Counter))
		return Listed, err
	}
	if err != nil {
		return 0, err
	}
	switch rec.Status {
	case Rejected:
		return 0, &checkin.RefusedError{Reason: checkin.Rejected, Msg: fmt.Sprintf("device %s was rejected by an operator", inv.Device)}
	case Revoked:
		return 0, &checkin.RefusedError{Reason: checkin.Revoked, Msg: fmt.Sprintf("the key of device %s was revoked", inv.Device)}
	}
	// The latest contact of a device while it was pending set its
	// counter but recorded nothing: once the device is enrolled, that
	// very report (a stick ingested again with --enroll) is taken, once.
	untaken := rec.Status == Enrolled && rec.Checkins == 0 && rec.Contacts > 0
	if inv.Counter < rec.Counter || inv.Counter == rec.Counter && !untaken {
		return 0, &checkin.RefusedError{Reason: checkin.Replayed, Msg: fmt.Sprintf("device %s: counter %d is not above %d, the last accepted: a replayed or stale report", inv.Device, inv.Counter, rec.Counter)}
	}
	if rec.Status == Pending {
		// Only the mirror's own facts move: when and from where.
		_, err := tx.ExecContext(ctx, `UPDATE fleet_devices SET last_seen = ?, remote = ?, counter = ?, contacts = contacts + 1,
			first_seen = CASE WHEN first_seen = 0 THEN ? ELSE first_seen END WHERE device_id = ?`,
			now, remote, int64(inv.Counter), now, inv.Device)
		return Listed, err
	}
	name := rec.Name
	if name == "" || rec.EnrolledBy == byApproval {
		name = inv.Name
	}
	if _, err := tx.ExecContext(ctx, `UPDATE fleet_devices SET name = ?, device_type = ?, last_seen = ?, remote = ?, counter = ?, checkins = checkins + 1,
			first_seen = CASE WHEN first_seen = 0 THEN ? ELSE first_seen END, inventory = ? WHERE device_id = ?`,
		name, inv.DeviceType, now, remote, int64(inv.Counter), now, string(payload), inv.Device); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO fleet_reports (device_id, counter, received_at, remote, inventory) VALUES (?, ?, ?, ?, ?)`,
		inv.Device, int64(inv.Counter), now, remote, string(payload)); err != nil {
		return 0, err
	}
	if (rec.Checkins+1)%historyTrimEvery == 0 {
		_, err = tx.ExecContext(ctx, `DELETE FROM fleet_reports WHERE device_id = ? AND id <= (
			SELECT id FROM fleet_reports WHERE device_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`, inv.Device, inv.Device, HistoryPerDevice)
		if err != nil {
			return 0, err
		}
	}
	if !targeted {
		return Recorded, nil
	}
	return Recorded, countReport(ctx, tx, inv, at)
}

// recordEnrolled records the check-in of an enrolled device in no
// deployment whose counter rose, the common case, in one statement:
// accept's transaction takes five round trips to PostgreSQL, and on a
// busy mirror each is a wait for the database's process to be scheduled
// (docs/fleet.md, "Scale"). It reports false, having changed nothing,
// for every other check-in, which accept then judges: a pending,
// refused or replayed device, a report taken once after enrollment, or
// one a deployment counts. The conditions are in the UPDATE's WHERE, so
// two check-ins of one device racing are decided by its row lock as in
// accept (PostgreSQL rechecks them on the row a concurrent update left).
// Every historyTrimEvery-th check-in trims the device's history in the
// same statement; its DELETE sees the reports from before the INSERT, so
// it keeps HistoryPerDevice-1 of them.
func recordEnrolled(ctx context.Context, db sqlDB, inv *checkin.Inventory, payload []byte, at time.Time, remote string) (bool, error) {
	now := at.UnixMilli()
	var checkins int64
	err := db.QueryRowContext(ctx, `WITH d AS (
		UPDATE fleet_devices SET name = CASE WHEN name = '' OR enrolled_by = ? THEN ? ELSE name END,
			device_type = ?, last_seen = ?, remote = ?, counter = ?, checkins = checkins + 1,
			first_seen = CASE WHEN first_seen = 0 THEN ? ELSE first_seen END, inventory = ?
		WHERE device_id = ? AND status = ? AND counter < ?
			AND NOT EXISTS (SELECT 1 FROM fleet_targets t WHERE t.device_id = fleet_devices.device_id)
		RETURNING checkins
	), r AS (
		INSERT INTO fleet_reports (device_id, counter, received_at, remote, inventory)
		SELECT ?, ?, ?, ?, ? FROM d
	), cut AS (
		DELETE FROM fleet_reports WHERE device_id = ? AND (SELECT checkins FROM d) % ? = 0 AND id <= (
			SELECT id FROM fleet_reports WHERE device_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)
	)
	SELECT checkins FROM d`,
		byApproval, inv.Name, inv.DeviceType, now, remote, int64(inv.Counter), now, string(payload),
		inv.Device, Enrolled, int64(inv.Counter),
		inv.Device, int64(inv.Counter), now, remote, string(payload),
		inv.Device, historyTrimEvery, inv.Device, HistoryPerDevice-1).Scan(&checkins)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// byApproval is the enrolled_by of a device an operator approved after
// its first contact: its name is what it reports, while a name an
// enrollment list gave stays.
const byApproval = "approved"

// historyTrimEvery is how often (in a device's check-ins) its history is
// cut back to HistoryPerDevice reports: a statement saved on the others,
// for at most historyTrimEvery-1 reports more per device.
const historyTrimEvery = 10

// withExtra scans a row's leading columns with the wrapped scanner's
// destinations, then its last ones into extra.
type withExtra struct {
	row   scanner
	extra []any
}

func (w withExtra) Scan(dest ...any) error { return w.row.Scan(append(dest, w.extra...)...) }

// Enroll implements Store. A device the mirror does not know, or lists
// as pending, becomes enrolled; an enrolled one is left as it is; a
// rejected or revoked one too, with a note: only 'approve' (for a
// rejected one) changes those.
func (d *DB) Enroll(ctx context.Context, es []Enrollment, how string, at time.Time) ([]EnrollResult, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	now := at.UnixMilli()
	out := []EnrollResult{}
	for _, e := range es {
		id := checkin.DeviceID(e.PublicKey)
		if id == "" {
			return nil, fmt.Errorf("enroll: a public key of %d bytes is not Ed25519", len(e.PublicKey))
		}
		res := EnrollResult{ID: id, Name: e.Name}
		rec, err := scanRecord(tx.QueryRowContext(ctx, `SELECT `+recordColumns+` FROM fleet_devices WHERE device_id = ?`+tx.dl.forUpdate, id))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			res.After = Enrolled
			if _, err := tx.ExecContext(ctx, `INSERT INTO fleet_devices (`+recordColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0, '', 0, 0, 0, '')`,
				id, []byte(e.PublicKey), Enrolled, e.Name, e.DeviceType, how, now); err != nil {
				return nil, err
			}
		case err != nil:
			return nil, err
		case rec.Status == Pending:
			res.Before, res.After = Pending, Enrolled
			if _, err := tx.ExecContext(ctx, `UPDATE fleet_devices SET status = ?, enrolled_by = ?, status_at = ?,
					name = CASE WHEN ? = '' THEN name ELSE ? END, device_type = CASE WHEN ? = '' THEN device_type ELSE ? END WHERE device_id = ?`,
				Enrolled, how, now, e.Name, e.Name, e.DeviceType, e.DeviceType, id); err != nil {
				return nil, err
			}
		default:
			res.Before, res.After = rec.Status, rec.Status
			switch rec.Status {
			case Rejected:
				res.Note = "rejected by an operator: 'approve' it to enroll it"
			case Revoked:
				res.Note = "its key was revoked: the device needs a new key"
			default:
				res.Note = "enrolled before"
			}
		}
		if res.After == Enrolled && res.Before != Enrolled && len(e.Labels) > 0 {
			if err := setLabels(ctx, tx, id, e.Labels); err != nil {
				return nil, err
			}
		}
		out = append(out, res)
	}
	return out, tx.Commit()
}

// SetStatus implements Store. Allowed moves: pending or rejected to
// enrolled (approve); pending to rejected (reject); anything to revoked
// (revoke). Revoked is final.
func (d *DB) SetStatus(ctx context.Context, idOrPrefix string, to Status, at time.Time) (*Record, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	rec, err := resolve(ctx, tx, idOrPrefix, tx.dl.forUpdate)
	if err != nil {
		return nil, err
	}
	bad := func(msg string) error { return &StatusError{ID: rec.ID, From: rec.Status, To: to, Msg: msg} }
	switch {
	case rec.Status == to:
		return rec, nil
	case rec.Status == Revoked:
		return nil, bad("a revoked key stays revoked; the device needs a new key")
	case to == Enrolled && rec.Status != Pending && rec.Status != Rejected:
		return nil, bad("only a pending or rejected device is approved")
	case to == Rejected && rec.Status != Pending:
		return nil, bad("only a pending device is rejected; revoke an enrolled one")
	case to != Enrolled && to != Rejected && to != Revoked:
		return nil, fmt.Errorf("no such status %q", to)
	}
	how := rec.EnrolledBy
	if to == Enrolled {
		how = byApproval
	}
	if _, err := tx.ExecContext(ctx, `UPDATE fleet_devices SET status = ?, status_at = ?, enrolled_by = ? WHERE device_id = ?`, to, at.UnixMilli(), how, rec.ID); err != nil {
		return nil, err
	}
	rec.Status, rec.StatusAt, rec.EnrolledBy = to, msTime(at.UnixMilli()), how
	return rec, tx.Commit()
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// resolve finds the device whose id is idOrPrefix, or begins with it (at
// least MinPrefix hex digits).
func resolve(ctx context.Context, q querier, idOrPrefix, forUpdate string) (*Record, error) {
	p := strings.ToLower(idOrPrefix)
	if len(p) < MinPrefix || strings.Trim(p, "0123456789abcdef") != "" {
		return nil, &NotFoundError{ID: idOrPrefix}
	}
	rows, err := q.QueryContext(ctx, `SELECT `+recordColumns+` FROM fleet_devices WHERE substr(device_id, 1, ?) = ? ORDER BY device_id LIMIT 10`+forUpdate, len(p), p)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var recs []*Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, err
		}
		recs = append(recs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	switch len(recs) {
	case 0:
		return nil, &NotFoundError{ID: idOrPrefix}
	case 1:
		return recs[0], nil
	}
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.ID[:16]
	}
	return nil, &AmbiguousError{Prefix: idOrPrefix, IDs: ids}
}

// Records implements Store.
func (d *DB) Records(ctx context.Context) ([]Record, error) { return records(ctx, d.db) }

// records lists every device with a key, by id, with its labels.
func records(ctx context.Context, q querier) ([]Record, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+recordColumns+` FROM fleet_devices ORDER BY device_id`)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	defer rows.Close()
	out := []Record{}
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("list devices: %w", err)
		}
		out = append(out, *r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	rows.Close()
	return out, attachLabels(ctx, q, out)
}

// Show implements Store.
func (d *DB) Show(ctx context.Context, idOrPrefix string) (*Record, []Report, error) {
	rec, err := resolve(ctx, d.db, idOrPrefix, "")
	if err != nil {
		return nil, nil, err
	}
	one := []Record{*rec}
	if err := attachLabels(ctx, d.db, one); err != nil {
		return nil, nil, err
	}
	rec = &one[0]
	rows, err := d.db.QueryContext(ctx, `SELECT counter, received_at, remote, inventory FROM fleet_reports WHERE device_id = ? ORDER BY id DESC LIMIT ?`, rec.ID, HistoryPerDevice)
	if err != nil {
		return nil, nil, fmt.Errorf("history of %s: %w", rec.ID, err)
	}
	defer rows.Close()
	hist := []Report{}
	for rows.Next() {
		var r Report
		var counter, at int64
		var inv string
		if err := rows.Scan(&counter, &at, &r.Remote, &inv); err != nil {
			return nil, nil, fmt.Errorf("history of %s: %w", rec.ID, err)
		}
		r.Counter, r.ReceivedAt = uint64(counter), msTime(at)
		if err := json.Unmarshal([]byte(inv), &r.Inventory); err != nil {
			return nil, nil, fmt.Errorf("history of %s: %w", rec.ID, err)
		}
		hist = append(hist, r)
	}
	return rec, hist, rows.Err()
}

// SortByStatus orders records for people: pending first (they wait for
// an operator), then enrolled, rejected and revoked; by name, then id.
func SortByStatus(rs []Record) {
	rank := map[Status]int{Pending: 0, Enrolled: 1, Rejected: 2, Revoked: 3}
	sort.SliceStable(rs, func(i, j int) bool {
		if a, b := rank[rs[i].Status], rank[rs[j].Status]; a != b {
			return a < b
		}
		if rs[i].Name != rs[j].Name {
			return rs[i].Name < rs[j].Name
		}
		return rs[i].ID < rs[j].ID
	})
}
