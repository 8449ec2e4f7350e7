package devices

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ferry-update/ferry/internal/testtool"
)

// pgServer is one PostgreSQL server for the package's tests, started by
// the first test that needs it; each test gets a database of its own.
var pgServer struct {
	once sync.Once
	url  string
	stop func()
	err  error
	dbs  atomic.Int32
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pgServer.stop != nil {
		pgServer.stop()
	}
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
func newPostgresDB(t *testing.T) string {
	t.Helper()
	pgServer.once.Do(func() { pgServer.url, pgServer.stop, pgServer.err = testtool.StartPostgres() })
	if pgServer.err != nil {
		if pgServer.err == testtool.ErrNoPostgres {
			testtool.Missing(t, testtool.ErrNoPostgres.Error())
		}
		t.Fatal(pgServer.err)
	}
	name := fmt.Sprintf("t%d", pgServer.dbs.Add(1))
	admin, err := sql.Open("pgx", pgServer.url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	return strings.Replace(pgServer.url, "/postgres?", "/"+name+"?", 1)
}

// eachBackend runs test against SQLite and PostgreSQL; its newDB opens
// an empty store of the backend.
func eachBackend(t *testing.T, test func(t *testing.T, newDB func(*testing.T) *DB)) {
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			test(t, func(t *testing.T) *DB { return openBackend(t, b) })
		})
	}
}
