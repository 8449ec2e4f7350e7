package devices

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, pure Go
)

// postgresSchema is the SQLite schema (devicesSchema, fleetSchema) in
// PostgreSQL's types; accountsSchema, written for both, follows it. An
// advisory lock keeps two mirrors that start at once from making it
// together.
const postgresSchema = `
SELECT pg_advisory_xact_lock(7026150412);
CREATE TABLE IF NOT EXISTS devices (
	device_id   TEXT PRIMARY KEY,
	device_type TEXT NOT NULL,
	bundle      TEXT NOT NULL,
	version     TEXT NOT NULL,
	result      TEXT NOT NULL,
	error       TEXT NOT NULL,
	reported_at BIGINT NOT NULL,
	last_seen   BIGINT NOT NULL,
	remote      TEXT NOT NULL,
	checkins    BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS checkins (
	id          BIGSERIAL PRIMARY KEY,
	device_id   TEXT NOT NULL,
	device_type TEXT NOT NULL,
	bundle      TEXT NOT NULL,
	version     TEXT NOT NULL,
	result      TEXT NOT NULL,
	error       TEXT NOT NULL,
	reported_at BIGINT NOT NULL,
	received_at BIGINT NOT NULL,
	remote      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS checkins_by_device ON checkins (device_id, id);
CREATE TABLE IF NOT EXISTS fleet_devices (
	device_id   TEXT PRIMARY KEY,
	public_key  BYTEA NOT NULL,
	status      TEXT NOT NULL,
	name        TEXT NOT NULL,
	device_type TEXT NOT NULL,
	enrolled_by TEXT NOT NULL,
	status_at   BIGINT NOT NULL,
	first_seen  BIGINT NOT NULL,
	last_seen   BIGINT NOT NULL,
	remote      TEXT NOT NULL,
	counter     BIGINT NOT NULL,
	checkins    BIGINT NOT NULL,
	contacts    BIGINT NOT NULL,
	inventory   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS fleet_reports (
	id          BIGSERIAL PRIMARY KEY,
	device_id   TEXT NOT NULL,
	counter     BIGINT NOT NULL,
	received_at BIGINT NOT NULL,
	remote      TEXT NOT NULL,
	inventory   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS fleet_reports_by_device ON fleet_reports (device_id, id);
`

// IsPostgresURL reports whether s names a PostgreSQL database
// (postgres:// or postgresql://) rather than a file.
func IsPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// PostgresConns is how many connections one DB keeps open to
// PostgreSQL, at most, and keeps open while idle. database/sql's defaults
// (no cap, 2 kept idle) made a burst of check-ins open a connection each
// — a server process forked per connection — and close all but two
// after: on a 2-core mirror at 170 check-ins a second, connecting took
// longer than the check-ins, PostgreSQL's connection slots (100 by
// default) ran out and check-ins failed with 503 (docs/fleet.md,
// "Scale"). A check-in spends most of its time in round trips, so a few
// more connections than cores keep the cores busy; more check-ins wait
// their turn in the mirror, and several mirrors sharing a database stay
// well within its slots. Measured in the scale benchmark (one run each,
// 2 cores, 333 requests/s, when the 200 downloads came in synchronized
// bursts): check-in p99 120 ms with 8, 64 ms with 16, 318 ms with 32
// (the server's processes then crowd the cores).
const PostgresConns = 16

// OpenPostgres opens the device records in the PostgreSQL database at url
// (postgres://USER@HOST/DB?..., as pgx takes it), making its tables if
// needed. Several mirrors may share one database: their check-ins of one
// device take turns (row locks), and each is counted once. It keeps up
// to PostgresConns connections open.
func OpenPostgres(ctx context.Context, url string) (*DB, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("device database: %w", err)
	}
	db.SetMaxOpenConns(PostgresConns)
	db.SetMaxIdleConns(PostgresConns)
	tx, err := db.BeginTx(ctx, nil)
	if err == nil {
		if _, err = tx.ExecContext(ctx, postgresSchema+engineSchema(postgresDialect)+accountsSchema); err == nil {
			err = tx.Commit()
		} else {
			tx.Rollback()
		}
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("device database %s: %w", redact(url), err)
	}
	return &DB{db: sqlDB{db: db, dl: postgresDialect}, path: redact(url)}, nil
}

// redact drops a password from a database URL, for messages.
func redact(url string) string {
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok {
		return url
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return url
	}
	if user, _, hasPass := strings.Cut(rest[:at], ":"); hasPass {
		return scheme + "://" + user + ":xxxxx" + rest[at:]
	}
	return url
}
