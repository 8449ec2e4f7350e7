// Command ferry-loadgen is the fleet's scale benchmark's load generator
// (package internal/fleetload; run by scripts/bench-fleet.sh from 'make
// bench'). It is not shipped.
//
//	ferry-loadgen list -devices N -download M -o LIST
//	    writes the simulated devices' enrollment list ('ferry fleet enroll --file')
//	ferry-loadgen run -url URL -root ROOT -database DB -devices N -download M ...
//	    drives the mirror, checks the database, prints the results
//
// Exit status: 0 done (every report recorded and every answer valid), 1
// a failure or a lost report or a wrong answer, 2 usage.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/internal/fleetload"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func run(args []string, stdout, stderr io.Writer) int {
	err := command(args, stdout, stderr)
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "ferry-loadgen: usage: %v\n", err)
		return 2
	}
	fmt.Fprintf(stderr, "ferry-loadgen: error: %v\n", err)
	return 1
}

func command(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return &usageError{"ferry-loadgen list|run [flags] (-h for the flags)"}
	}
	fs := flag.NewFlagSet("ferry-loadgen "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("devices", 10000, "simulated devices")
	dl := fs.Int("download", 200, "devices (spread evenly over the list) the deployment assigns the bundle: they download it")
	seed := fs.String("seed", "ferry-bench", "the devices' keys derive from it")
	switch args[0] {
	case "list":
		out := fs.String("o", "", "write the enrollment list to this file")
		if err := fs.Parse(args[1:]); err != nil {
			return &usageError{err.Error()}
		}
		if *out == "" {
			return &usageError{"list: -o FILE is required"}
		}
		devs, err := fleetload.MakeDevices(*seed, *n, *dl)
		if err != nil {
			return &usageError{err.Error()}
		}
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		if err := fleetload.WriteEnrollList(f, devs); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	case "run":
		var cfg fleetload.Config
		fs.StringVar(&cfg.URL, "url", "", "the mirror's base URL")
		fs.StringVar(&cfg.TrustedRoot, "root", "", "the mirror's TUF root.json the devices trust")
		fs.StringVar(&cfg.StateDir, "state", "", "scratch directory for the TUF client")
		fs.DurationVar(&cfg.Interval, "interval", time.Minute, "each device's poll interval")
		fs.DurationVar(&cfg.Duration, "duration", 5*time.Minute, "how long polls are started")
		fs.StringVar(&cfg.Bundle, "bundle", "bench", "the bundle the deployment assigns")
		fs.StringVar(&cfg.Version, "version", "1.0.0", "its version")
		rate := fs.Float64("rate", 1024, "KiB/s per downloading device (0: unpaced)")
		rangeMiB := fs.Int64("range", 32, "MiB per Range request")
		database := fs.String("database", "", "the mirror's device database (DIR/devices.db or postgres://...), checked after the run")
		jsonOut := fs.String("json", "", "also write the results as JSON to this file")
		if err := fs.Parse(args[1:]); err != nil {
			return &usageError{err.Error()}
		}
		if cfg.URL == "" || cfg.TrustedRoot == "" || cfg.StateDir == "" || *database == "" {
			return &usageError{"run: -url, -root, -state and -database are required"}
		}
		cfg.DownloadRate, cfg.RangeSize = *rate*1024, *rangeMiB<<20
		devs, err := fleetload.MakeDevices(*seed, *n, *dl)
		if err != nil {
			return &usageError{err.Error()}
		}
		cfg.Devices = devs
		cfg.Logf = func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return runLoad(ctx, cfg, *database, *jsonOut, stdout)
	}
	return &usageError{fmt.Sprintf("no command %q: list or run", args[0])}
}

// Report is what 'run' prints as JSON.
type Report struct {
	*fleetload.Result
	Check *fleetload.Check
	// SizeBefore and SizeAfter are the device database's size in bytes.
	SizeBefore, SizeAfter int64
}

func runLoad(ctx context.Context, cfg fleetload.Config, database, jsonOut string, stdout io.Writer) error {
	open := func() (*devices.DB, error) {
		if devices.IsPostgresURL(database) {
			return devices.OpenPostgres(ctx, database)
		}
		return devices.Open(database)
	}
	db, err := open()
	if err != nil {
		return err
	}
	defer db.Close()
	rep := &Report{}
	if rep.SizeBefore, err = db.Size(ctx); err != nil {
		return err
	}
	if rep.Result, err = fleetload.Run(ctx, cfg); err != nil {
		return err
	}
	recs, err := db.Records(ctx)
	if err != nil {
		return err
	}
	rep.Check = fleetload.Verify(rep.Result, recs)
	if rep.SizeAfter, err = db.Size(ctx); err != nil {
		return err
	}
	rep.Result.Devices = nil // thousands of lines; Check sums them up
	fleetload.Print(stdout, rep.Result, rep.Check, rep.SizeBefore, rep.SizeAfter, cfg.Interval)
	if jsonOut != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if bad := rep.Result.Invalid(); bad > 0 || !rep.Check.OK() {
		return fmt.Errorf("%d requests failed or were answered wrong; %d reports lost, %d not taken", bad, rep.Check.Lost, rep.Check.NotTaken)
	}
	return nil
}
