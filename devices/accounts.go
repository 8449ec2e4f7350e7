package devices

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Role is what an operator account may do on the fleet.
type Role string

// The roles (docs/fleet.md, "The console and the API").
const (
	// ReadOnly reads the fleet: devices, groups, deployments.
	ReadOnly Role = "read-only"
	// Operator also changes it: enrollment, deployments.
	Operator Role = "operator"
)

// Valid reports whether r is one of the roles.
func (r Role) Valid() bool { return r == ReadOnly || r == Operator }

// Allows reports whether an account of role r may act as need.
func (r Role) Allows(need Role) bool { return r == Operator || (r == ReadOnly && need == ReadOnly) }

// Lesser is the lesser of two roles (an unknown role is the least).
func Lesser(a, b Role) Role {
	if a == Operator && b == Operator {
		return Operator
	}
	return ReadOnly
}

// User is an operator's local account. PasswordHash is what the
// operator package's KDF made of the password (a PHC string); the
// password itself is never stored.
type User struct {
	Name         string    `json:"name"`
	Role         Role      `json:"role"`
	PasswordHash string    `json:"-"`
	CreatedAt    time.Time `json:"createdAt"`
}

// Token is an API token: the caller sees its secret once, the store
// keeps only Hash (hex SHA-256 of the secret). Its role is at most its
// user's.
type Token struct {
	ID        string    `json:"id"` // public part, to list and revoke it
	Hash      string    `json:"-"`
	User      string    `json:"user"`
	Label     string    `json:"label"`
	Role      Role      `json:"role"`
	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `json:"expiresAt,omitzero"` // zero: never
	LastUsed  time.Time `json:"lastUsed,omitzero"`  // zero: never used
}

// Session is a console log-in: ID is the hex SHA-256 of the cookie's
// secret (a stolen database holds no usable cookie); CSRF is the token
// its forms carry.
type Session struct {
	ID        string
	User      string
	CSRF      string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// ErrExists is returned when adding an account or token whose name or
// id is taken.
var ErrExists = errors.New("already exists")

// NoAccountError says no user, token or session has the name or id.
type NoAccountError struct {
	What, Name string // "user", "token", "session"
}

func (e *NoAccountError) Error() string {
	return fmt.Sprintf("no %s %q on this mirror", e.What, e.Name)
}

// accountsSchema holds the operators' accounts, API tokens and console
// sessions. Its types mean the same to SQLite and PostgreSQL.
const accountsSchema = `
CREATE TABLE IF NOT EXISTS fleet_users (
	name       TEXT PRIMARY KEY,
	role       TEXT NOT NULL,   -- read-only, operator
	password   TEXT NOT NULL,   -- PHC string of the KDF (argon2id)
	created_at BIGINT NOT NULL  -- unix ms
);
CREATE TABLE IF NOT EXISTS fleet_tokens (
	id         TEXT PRIMARY KEY, -- public part of the token
	hash       TEXT NOT NULL,    -- hex SHA-256 of its secret
	user_name  TEXT NOT NULL,
	label      TEXT NOT NULL,
	role       TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,  -- 0: never
	last_used  BIGINT NOT NULL   -- 0: never
);
CREATE TABLE IF NOT EXISTS fleet_sessions (
	id         TEXT PRIMARY KEY, -- hex SHA-256 of the cookie's secret
	user_name  TEXT NOT NULL,
	csrf       TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL
);
`

// AddUser adds an account; a name taken gives ErrExists.
func (d *DB) AddUser(ctx context.Context, u User) error {
	res, err := d.db.ExecContext(ctx, `INSERT INTO fleet_users (name, role, password, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO NOTHING`, u.Name, u.Role, u.PasswordHash, u.CreatedAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("add user %s: %w", u.Name, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("user %q: %w", u.Name, ErrExists)
	}
	return nil
}

// SetPassword replaces the password hash of an account.
func (d *DB) SetPassword(ctx context.Context, name, hash string) error {
	return d.affectOne(ctx, "user", name, `UPDATE fleet_users SET password = ? WHERE name = ?`, hash, name)
}

// User returns an account (a *NoAccountError if there is none).
func (d *DB) User(ctx context.Context, name string) (*User, error) {
	var u User
	var at int64
	err := d.db.QueryRowContext(ctx, `SELECT name, role, password, created_at FROM fleet_users WHERE name = ?`, name).Scan(&u.Name, &u.Role, &u.PasswordHash, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, &NoAccountError{"user", name}
	}
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", name, err)
	}
	u.CreatedAt = msTime(at)
	return &u, nil
}

// Users lists the accounts by name.
func (d *DB) Users(ctx context.Context) ([]User, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT name, role, password, created_at FROM fleet_users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	out := []User{}
	for rows.Next() {
		var u User
		var at int64
		if err := rows.Scan(&u.Name, &u.Role, &u.PasswordHash, &at); err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		u.CreatedAt = msTime(at)
		out = append(out, u)
	}
	return out, rows.Err()
}

// RemoveUser removes an account with its tokens and sessions, at once.
func (d *DB) RemoveUser(ctx context.Context, name string) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM fleet_users WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("remove user %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return &NoAccountError{"user", name}
	}
	for _, q := range []string{`DELETE FROM fleet_tokens WHERE user_name = ?`, `DELETE FROM fleet_sessions WHERE user_name = ?`} {
		if _, err := tx.ExecContext(ctx, q, name); err != nil {
			return fmt.Errorf("remove user %s: %w", name, err)
		}
	}
	return tx.Commit()
}

// AddToken stores a token; an id taken gives ErrExists.
func (d *DB) AddToken(ctx context.Context, t Token) error {
	res, err := d.db.ExecContext(ctx, `INSERT INTO fleet_tokens (id, hash, user_name, label, role, created_at, expires_at, last_used)
		SELECT ?, ?, ?, ?, ?, ?, ?, 0 WHERE EXISTS (SELECT 1 FROM fleet_users WHERE name = ?)
		ON CONFLICT (id) DO NOTHING`,
		t.ID, t.Hash, t.User, t.Label, t.Role, t.CreatedAt.UnixMilli(), unixMs(t.ExpiresAt), t.User)
	if err != nil {
		return fmt.Errorf("add token for %s: %w", t.User, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		if _, err := d.User(ctx, t.User); err != nil {
			return err
		}
		return fmt.Errorf("token %s: %w", t.ID, ErrExists)
	}
	return nil
}

const tokenColumns = `id, hash, user_name, label, role, created_at, expires_at, last_used`

func scanToken(row scanner) (*Token, error) {
	var t Token
	var created, expires, used int64
	if err := row.Scan(&t.ID, &t.Hash, &t.User, &t.Label, &t.Role, &created, &expires, &used); err != nil {
		return nil, err
	}
	t.CreatedAt, t.ExpiresAt, t.LastUsed = msTime(created), msTime(expires), msTime(used)
	return &t, nil
}

// Token returns a token by its id (a *NoAccountError if there is none).
func (d *DB) Token(ctx context.Context, id string) (*Token, error) {
	t, err := scanToken(d.db.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM fleet_tokens WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, &NoAccountError{"token", id}
	}
	if err != nil {
		return nil, fmt.Errorf("token %s: %w", id, err)
	}
	return t, nil
}

// Tokens lists the tokens, by user then id.
func (d *DB) Tokens(ctx context.Context) ([]Token, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT `+tokenColumns+` FROM fleet_tokens ORDER BY user_name, id`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	out := []Token{}
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		out = append(out, *t)
	}
	return out, rows.Err()
}

// TouchToken notes that a token was used at at.
func (d *DB) TouchToken(ctx context.Context, id string, at time.Time) error {
	return d.affectOne(ctx, "token", id, `UPDATE fleet_tokens SET last_used = ? WHERE id = ?`, at.UnixMilli(), id)
}

// RevokeToken deletes a token: it stops working at once.
func (d *DB) RevokeToken(ctx context.Context, id string) error {
	return d.affectOne(ctx, "token", id, `DELETE FROM fleet_tokens WHERE id = ?`, id)
}

// AddSession stores a console session of an existing account.
func (d *DB) AddSession(ctx context.Context, s Session) error {
	res, err := d.db.ExecContext(ctx, `INSERT INTO fleet_sessions (id, user_name, csrf, created_at, expires_at)
		SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM fleet_users WHERE name = ?)`,
		s.ID, s.User, s.CSRF, s.CreatedAt.UnixMilli(), s.ExpiresAt.UnixMilli(), s.User)
	if err != nil {
		return fmt.Errorf("add session for %s: %w", s.User, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return &NoAccountError{"user", s.User}
	}
	return nil
}

// Session returns a session and its account, if the session has not
// expired at now (a *NoAccountError if there is none).
func (d *DB) Session(ctx context.Context, id string, now time.Time) (*Session, *User, error) {
	var s Session
	var u User
	var created, expires, userCreated int64
	err := d.db.QueryRowContext(ctx, `SELECT s.id, s.user_name, s.csrf, s.created_at, s.expires_at, u.name, u.role, u.password, u.created_at
		FROM fleet_sessions s JOIN fleet_users u ON u.name = s.user_name WHERE s.id = ? AND s.expires_at > ?`, id, now.UnixMilli()).
		Scan(&s.ID, &s.User, &s.CSRF, &created, &expires, &u.Name, &u.Role, &u.PasswordHash, &userCreated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, &NoAccountError{"session", ""}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("session: %w", err)
	}
	s.CreatedAt, s.ExpiresAt, u.CreatedAt = msTime(created), msTime(expires), msTime(userCreated)
	return &s, &u, nil
}

// DeleteSession ends a session (log-out); ending one that is gone is
// not an error.
func (d *DB) DeleteSession(ctx context.Context, id string) error {
	if _, err := d.db.ExecContext(ctx, `DELETE FROM fleet_sessions WHERE id = ?`, id); err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	return nil
}

// DeleteExpiredSessions drops the sessions expired at now.
func (d *DB) DeleteExpiredSessions(ctx context.Context, now time.Time) error {
	if _, err := d.db.ExecContext(ctx, `DELETE FROM fleet_sessions WHERE expires_at <= ?`, now.UnixMilli()); err != nil {
		return fmt.Errorf("drop expired sessions: %w", err)
	}
	return nil
}

// affectOne runs an UPDATE or DELETE that must touch the one row of
// what name; none touched is a *NoAccountError.
func (d *DB) affectOne(ctx context.Context, what, name, query string, args ...any) error {
	res, err := d.db.ExecContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, name, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return &NoAccountError{what, name}
	}
	return nil
}

func unixMs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}
