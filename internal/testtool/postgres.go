package testtool

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// ErrNoPostgres says PostgreSQL's server programs are not installed.
var ErrNoPostgres = errors.New("initdb and pg_ctl (Debian package postgresql)")

// postgresBin finds a program of PostgreSQL's server: on PATH, or where
// Debian's postgresql package puts it (/usr/lib/postgresql/N/bin).
func postgresBin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	ms, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(ms) == 0 {
		return "", ErrNoPostgres
	}
	return ms[len(ms)-1], nil
}

// StartPostgres starts a PostgreSQL server of its own (initdb in a
// temporary directory, listening only on a Unix socket there) and returns
// the URL of its database "postgres" and how to stop it (which also
// removes the directory). PostgreSQL refuses to run as root: as root the
// server runs as the user nobody. Without PostgreSQL installed it fails
// with ErrNoPostgres.
func StartPostgres() (url string, stop func(), err error) {
	initdb, err := postgresBin("initdb")
	if err != nil {
		return "", nil, err
	}
	pgctl, err := postgresBin("pg_ctl")
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "ferry-pg-")
	if err != nil {
		return "", nil, err
	}
	var asUser []string
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			os.RemoveAll(dir)
			return "", nil, fmt.Errorf("postgres: no user nobody to run the server as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		runuser, err := exec.LookPath("runuser")
		if err == nil {
			err = os.Chown(dir, uid, gid)
		}
		if err != nil {
			os.RemoveAll(dir)
			return "", nil, fmt.Errorf("postgres: running as root needs runuser (util-linux) to start the server as nobody: %w", err)
		}
		asUser = []string{runuser, "-u", "nobody", "--"}
	}
	run := func(args ...string) error {
		args = append(append([]string{}, asUser...), args...)
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("postgres: %s: %w\n%s", args, err, out)
		}
		return nil
	}
	data := filepath.Join(dir, "data")
	const port = 5432 // on the socket alone: no TCP port is opened
	stop = func() {
		run(pgctl, "-D", data, "-m", "immediate", "-w", "stop")
		os.RemoveAll(dir)
	}
	if err := run(initdb, "-D", data, "-U", "ferry", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	if err := run(pgctl, "-D", data, "-l", filepath.Join(dir, "server.log"), "-w", "-t", "120",
		"-o", fmt.Sprintf("-c listen_addresses='' -k %s -p %d -c fsync=off", dir, port), "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		stop()
		return "", nil, fmt.Errorf("%w\n%s", err, log)
	}
	return fmt.Sprintf("postgres://ferry@/postgres?host=%s&port=%d&sslmode=disable", dir, port), stop, nil
}

// Postgres is StartPostgres for one test: the server stops when the test
// ends. Without PostgreSQL the test is skipped, or failed under CI.
func Postgres(t testing.TB) string {
	t.Helper()
	url, stop, err := StartPostgres()
	if errors.Is(err, ErrNoPostgres) {
		Missing(t, ErrNoPostgres.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return url
}

// SharedPostgres is one PostgreSQL server for a test binary, started by
// the first test that asks for a database (NewDB); each test gets a new
// database of its own on it. Stop it from TestMain once the tests ran.
// The caller links the "pgx" database/sql driver (package devices does).
type SharedPostgres struct {
	once sync.Once
	url  string
	stop func()
	err  error
	dbs  atomic.Int32
}

// NewDB makes a new, empty database and returns its URL. Without
// PostgreSQL the test is skipped, or failed under CI.
func (p *SharedPostgres) NewDB(t testing.TB) string {
	t.Helper()
	p.once.Do(func() { p.url, p.stop, p.err = StartPostgres() })
	if errors.Is(p.err, ErrNoPostgres) {
		Missing(t, ErrNoPostgres.Error())
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	name := fmt.Sprintf("t%d", p.dbs.Add(1))
	admin, err := sql.Open("pgx", p.url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	return strings.Replace(p.url, "/postgres?", "/"+name+"?", 1)
}

// Stop stops the server, if a test started it.
func (p *SharedPostgres) Stop() {
	if p.stop != nil {
		p.stop()
	}
}
