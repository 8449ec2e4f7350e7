package devices

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferry-update/ferry/internal/testtool"
)

// pgServer is one PostgreSQL server for the package's tests, started by
// the first test that needs it; each test gets a database of its own.
var pgServer testtool.SharedPostgres

func TestMain(m *testing.M) {
	code := m.Run()
	pgServer.Stop()
	os.Exit(code)
}

// backends are the stores the fleet tests run against.
var backends = []string{"sqlite", "postgres"}

// openBackend opens an empty store: SQLite in a temporary directory, or
// a new database on the package's PostgreSQL server (path names the
// SQLite file, "" for a new one).
func openBackend(t *testing.T, backend string) *DB {
	t.Helper()
	var d *DB
	var err error
	switch backend {
	case "sqlite":
		d, err = Open(filepath.Join(t.TempDir(), File))
	case "postgres":
		d, err = OpenPostgres(context.Background(), newPostgresDB(t))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// newPostgresDB makes a new database on the package's server and
// returns its URL.
func newPostgresDB(t *testing.T) string { return pgServer.NewDB(t) }

// eachBackend runs test against SQLite and PostgreSQL; its newDB opens
// an empty store of the backend.
func eachBackend(t *testing.T, test func(t *testing.T, newDB func(*testing.T) *DB)) {
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			test(t, func(t *testing.T) *DB { return openBackend(t, b) })
		})
	}
}
