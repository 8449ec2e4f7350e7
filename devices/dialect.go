package devices

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
)

// dialect is what differs between the SQL databases the store runs on.
// Queries are written once, with ? placeholders, and rebound.
type dialect struct {
	name string
	// dollar: PostgreSQL's $1, $2, ... placeholders.
	dollar bool
	// forUpdate ends a SELECT whose rows the transaction will change, so
	// concurrent check-ins of one device take turns (SQLite: one writer
	// at a time anyway).
	forUpdate string
	// greatest is the larger-of-two function: SQLite's max, SQL's GREATEST.
	greatest string
}

var (
	sqliteDialect   = dialect{name: "sqlite", greatest: "max"}
	postgresDialect = dialect{name: "postgres", dollar: true, forUpdate: " FOR UPDATE", greatest: "GREATEST"}
)

// q rebinds query's ? placeholders for the dialect.
func (dl dialect) q(query string) string {
	if !dl.dollar {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// sqlDB is a database with its dialect.
type sqlDB struct {
	db *sql.DB
	dl dialect
}

func (s sqlDB) BeginTx(ctx context.Context, o *sql.TxOptions) (sqlTx, error) {
	tx, err := s.db.BeginTx(ctx, o)
	return sqlTx{tx, s.dl}, err
}

func (s sqlDB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return s.db.QueryContext(ctx, s.dl.q(query), args...)
}

func (s sqlDB) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return s.db.QueryRowContext(ctx, s.dl.q(query), args...)
}

func (s sqlDB) QueryRow(query string, args ...any) *sql.Row {
	return s.db.QueryRow(s.dl.q(query), args...)
}

func (s sqlDB) Exec(query string, args ...any) (sql.Result, error) {
	return s.db.Exec(s.dl.q(query), args...)
}

func (s sqlDB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return s.db.ExecContext(ctx, s.dl.q(query), args...)
}

func (s sqlDB) Close() error { return s.db.Close() }

// sqlTx is a transaction in a dialect.
type sqlTx struct {
	tx *sql.Tx
	dl dialect
}

func (t sqlTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(ctx, t.dl.q(query), args...)
}

func (t sqlTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(ctx, t.dl.q(query), args...)
}

func (t sqlTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, t.dl.q(query), args...)
}

func (t sqlTx) Commit() error   { return t.tx.Commit() }
func (t sqlTx) Rollback() error { return t.tx.Rollback() }
