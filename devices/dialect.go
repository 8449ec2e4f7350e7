package devices

import (
	"context"
	"database/sql"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	// dmlInWith: data-modifying statements in WITH (PostgreSQL), so an
	// enrolled device's check-in is recorded in one statement, one round
	// trip, instead of a transaction of five (recordEnrolled).
	dmlInWith bool
}

var (
	sqliteDialect   = dialect{name: "sqlite", greatest: "max"}
	postgresDialect = dialect{name: "postgres", dollar: true, forUpdate: " FOR UPDATE", greatest: "GREATEST", dmlInWith: true}
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
	// gate, when set, queues transactions first come, first served:
	// SQLite's one connection. database/sql hands a freed connection to
	// a waiter picked at random, so under load a check-in could wait
	// behind any number that came after it (the scale benchmark's p99,
	// docs/fleet.md "Scale"); the goroutines blocked on a channel are
	// woken in the order they came.
	gate *gate
}

// gate is a FIFO lock held from a transaction's begin to its end. The
// queue is explicit (not goroutines blocked on one channel) so that the
// order is the order enter was called, with nothing racing between being
// counted and being queued.
type gate struct {
	mu     sync.Mutex
	busy   bool
	queued []chan struct{} // waiters, first come first; closed to hand over
}

func newGate() *gate { return &gate{} }

// enter returns once the caller holds the gate, or ctx's error.
func (g *gate) enter(ctx context.Context) error {
	g.mu.Lock()
	if !g.busy {
		g.busy = true
		g.mu.Unlock()
		return nil
	}
	turn := make(chan struct{})
	g.queued = append(g.queued, turn)
	g.mu.Unlock()
	select {
	case <-turn:
		return nil
	case <-ctx.Done():
	}
	g.mu.Lock()
	for i, w := range g.queued {
		if w == turn {
			g.queued = slices.Delete(g.queued, i, i+1)
			g.mu.Unlock()
			return ctx.Err()
		}
	}
	g.mu.Unlock()
	// The gate was handed over as ctx ended: pass it on.
	g.leave()
	return ctx.Err()
}

// leave hands the gate to the first waiter, or frees it.
func (g *gate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.queued) == 0 {
		g.busy = false
		return
	}
	close(g.queued[0])
	g.queued = g.queued[1:]
}

// waiting counts the transactions waiting (for tests).
func (g *gate) waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.queued)
}

func (s sqlDB) BeginTx(ctx context.Context, o *sql.TxOptions) (sqlTx, error) {
	if s.gate == nil {
		tx, err := s.db.BeginTx(ctx, o)
		return sqlTx{tx: tx, dl: s.dl}, err
	}
	if err := s.gate.enter(ctx); err != nil {
		return sqlTx{}, err
	}
	tx, err := s.db.BeginTx(ctx, o)
	if err != nil {
		s.gate.leave()
		return sqlTx{}, err
	}
	return sqlTx{tx: tx, dl: s.dl, leave: &leave{gate: s.gate}}, nil
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
	// leave, when set, lets the next transaction through the gate once
	// this one ends (Commit, or the first Rollback).
	leave *leave
}

type leave struct {
	gate *gate
	once sync.Once
}

func (t sqlTx) end() {
	if t.leave != nil {
		t.leave.once.Do(t.leave.gate.leave)
	}
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

func (t sqlTx) Commit() error {
	defer t.end()
	return t.tx.Commit()
}

func (t sqlTx) Rollback() error {
	defer t.end()
	return t.tx.Rollback()
}
