package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/internal/cliexit"
	"github.com/ferry-update/ferry/internal/display"
)

// devicesOptions are the flags every 'mirror devices' command takes.
type devicesOptions struct {
	asJSON   bool
	database string
}

func (o *devicesOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print JSON")
	addDatabaseFlag(cmd, &o.database)
}

// databaseEnv gives --database its default.
const databaseEnv = "FERRY_DATABASE"

// addDatabaseFlag adds --database: where the device records are.
func addDatabaseFlag(cmd *cobra.Command, db *string) {
	cmd.Flags().StringVar(db, "database", os.Getenv(databaseEnv),
		"the device records: a PostgreSQL URL (postgres://…) shared by several mirrors; default DIR/devices.db (env "+databaseEnv+")")
}

// openDeviceStore opens the device records of the mirror directory dir:
// the PostgreSQL database url, or DIR/devices.db when url is "".
func openDeviceStore(ctx context.Context, dir, url string) (*devices.DB, error) {
	st, err := openMirror(dir)
	if err != nil {
		return nil, err
	}
	switch {
	case url == "":
		return devices.OpenDir(st.Dir())
	case devices.IsPostgresURL(url):
		return devices.OpenPostgres(ctx, url)
	}
	return nil, cliexit.UsageError{Err: fmt.Errorf("--database %q: want a PostgreSQL URL (postgres://USER@HOST/DB), or nothing for DIR/devices.db", url)}
}

func newMirrorDevicesCommand(s *streams) *cobra.Command {
	var o devicesOptions
	cmd := &cobra.Command{
		Use:   "devices",
		Short: "List, enroll, approve, reject and revoke the devices that check in with the mirror",
		Long: `Every device has a key of its own ('ferry-agent identity') and signs its
check-ins with it. The mirror records what a device reports only once the
device is enrolled: from the factory line's list of keys ('enroll --file'),
or by an operator approving it after its first check-in ('approve'). Until
then it is listed as pending, and nothing it says changes a record.
'reject' refuses a pending device (it may be approved later); 'revoke'
refuses a device's key for good.

'ferry mirror devices DIR' is 'ferry mirror devices list DIR'. The records
are kept in DIR/devices.db (SQLite, mode 0600); see docs/fleet.md.`,
		Args: args(1, "a mirror DIR (or a command: list, show, enroll, approve, reject, revoke)"),
		RunE: func(cmd *cobra.Command, a []string) error { return runDevicesList(cmd.Context(), s, o, a[0]) },
	}
	o.addFlags(cmd)
	return cmd
}

func newDevicesListCommand(s *streams) *cobra.Command {
	var o devicesOptions
	cmd := &cobra.Command{
		Use:   "list DIR [--json]",
		Short: "List the devices: pending, enrolled, rejected and revoked, and legacy ones",
		Long: `List every device the mirror knows, pending ones first: its id (the first 16
hex digits; 'show' takes any unique prefix of 8 or more), name, device type,
status, what it runs and how its last install ended, as its latest
recorded check-in says, and when the mirror last heard from it (LAST SEEN,
the mirror's clock).

Devices that sent unsigned check-ins (agents older than device keys,
taken with 'serve --accept-legacy') follow under "legacy": what they say
is not authenticated.`,
		Args: args(1, "a mirror DIR"),
		RunE: func(cmd *cobra.Command, a []string) error { return runDevicesList(cmd.Context(), s, o, a[0]) },
	}
	o.addFlags(cmd)
	return cmd
}

// devicesList is 'devices list --json'.
type devicesList struct {
	Devices []devices.Record `json:"devices"`
	// Legacy are the devices that sent unsigned (version 1) check-ins.
	Legacy []devices.Device `json:"legacy"`
}

func runDevicesList(ctx context.Context, s *streams, o devicesOptions, dir string) error {
	var recs []devices.Record
	var legacy []devices.Device
	if o.database == "" {
		st, err := openMirror(dir)
		if err != nil {
			return err
		}
		if recs, legacy, err = devices.ReadDir(ctx, st.Dir()); err != nil {
			return err
		}
	} else {
		d, err := openDeviceStore(ctx, dir, o.database)
		if err != nil {
			return err
		}
		defer d.Close()
		if recs, err = d.Records(ctx); err != nil {
			return err
		}
		if legacy, err = d.List(); err != nil {
			return err
		}
	}
	devices.SortByStatus(recs)
	if o.asJSON {
		return writeJSON(s.out, devicesList{Devices: recs, Legacy: legacy})
	}
	if len(recs) == 0 && len(legacy) == 0 {
		fmt.Fprintln(s.err, "ferry: no device has checked in with this mirror or been enrolled yet")
		return nil
	}
	now := time.Now()
	if len(recs) > 0 {
		if err := printRecords(s.out, recs, now); err != nil {
			return err
		}
	}
	if len(legacy) > 0 {
		if len(recs) > 0 {
			fmt.Fprintln(s.out)
		}
		fmt.Fprintln(s.out, "legacy devices (unsigned check-ins: not authenticated)")
		tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DEVICE\tTYPE\tBUNDLE\tVERSION\tRESULT\tREPORTED\tLAST SEEN\tERROR")
		for _, d := range legacy {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", display.Untrusted(d.ID), display.Untrusted(d.Type), display.Untrusted(display.OrDash(d.Bundle)), display.Untrusted(d.Version), display.Untrusted(d.Result),
				display.Time(d.ReportedAt), seen(d.LastSeen, now), display.OneLine(d.Error, 60))
		}
		return tw.Flush()
	}
	return nil
}

// printRecords prints devices with keys as a table.
func printRecords(w io.Writer, recs []devices.Record, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tNAME\tTYPE\tSTATUS\tBUNDLE\tVERSION\tRESULT\tLAST SEEN\tERROR")
	for _, r := range recs {
		bundle, version, result, errText := "-", "-", "-", ""
		if inv := r.Inventory; inv != nil {
			bundle, version, result, errText = display.OrDash(inv.Bundle), inv.Version, inv.Result, inv.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID[:16], display.Untrusted(display.OrDash(r.Name)), display.Untrusted(display.OrDash(r.DeviceType)), r.Status,
			display.Untrusted(bundle), display.Untrusted(version), display.Untrusted(result), seen(r.LastSeen, now), display.OneLine(errText, 60))
	}
	return tw.Flush()
}

// seen is a mirror time for a table: the time and how long ago, or "never".
func seen(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return fmt.Sprintf("%s (%s ago)", display.Time(t), now.Sub(t).Round(time.Second))
}

func newDevicesShowCommand(s *streams) *cobra.Command {
	var o devicesOptions
	cmd := &cobra.Command{
		Use:   "show DIR ID [--json]",
		Short: "Show a device: its key, status, inventory and recorded check-ins",
		Long: `Show one device (ID: its id, or a unique prefix of 8 or more hex digits):
its key and status, its inventory as its latest recorded check-in says
(device type, agent version, every installed component and its version,
slots, the last install's result and error, free space, uptime) and the
check-ins the mirror keeps of it (the last 100), newest first.`,
		Args: args(2, "a mirror DIR and a device ID"),
		RunE: func(cmd *cobra.Command, a []string) error { return runDevicesShow(cmd.Context(), s, o, a[0], a[1]) },
	}
	o.addFlags(cmd)
	return cmd
}

// deviceShow is 'devices show --json'.
type deviceShow struct {
	*devices.Record
	History []devices.Report `json:"history"`
}

func runDevicesShow(ctx context.Context, s *streams, o devicesOptions, dir, id string) error {
	d, err := openDeviceStore(ctx, dir, o.database)
	if err != nil {
		return err
	}
	defer d.Close()
	rec, hist, err := d.Show(ctx, id)
	if err != nil {
		return err
	}
	if o.asJSON {
		return writeJSON(s.out, deviceShow{rec, hist})
	}
	return printDevice(s.out, rec, hist, time.Now())
}

// printDevice prints one device and its stored check-ins.
func printDevice(w io.Writer, rec *devices.Record, hist []devices.Report, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "device\t%s\n", rec.ID)
	how := ""
	if rec.EnrolledBy != "" {
		how = ", " + display.Untrusted(rec.EnrolledBy)
	}
	fmt.Fprintf(tw, "status\t%s (since %s%s)\n", rec.Status, display.Time(rec.StatusAt), how)
	fmt.Fprintf(tw, "name\t%s\n", display.Untrusted(display.OrDash(rec.Name)))
	fmt.Fprintf(tw, "device type\t%s\n", display.Untrusted(display.OrDash(rec.DeviceType)))
	fmt.Fprintf(tw, "first seen\t%s\n", seen(rec.FirstSeen, now))
	fmt.Fprintf(tw, "last seen\t%s from %s\n", seen(rec.LastSeen, now), display.Untrusted(display.OrDash(rec.Remote)))
	fmt.Fprintf(tw, "check-ins\t%d recorded, %d while not enrolled; counter %d\n", rec.Checkins, rec.Contacts, rec.Counter)
	for _, k := range slices.Sorted(maps.Keys(rec.Labels)) {
		fmt.Fprintf(tw, "label\t%s=%s\n", k, display.Untrusted(rec.Labels[k]))
	}
	if inv := rec.Inventory; inv != nil {
		fmt.Fprintf(tw, "reported\t%s (the device's clock)\n", display.Time(inv.Time))
		fmt.Fprintf(tw, "agent\t%s\n", display.Untrusted(inv.AgentVersion))
		fmt.Fprintf(tw, "runs\t%s %s\n", display.Untrusted(display.OrDash(inv.Bundle)), display.Untrusted(inv.Version))
		for _, c := range inv.Components {
			where := "global"
			if c.Slot != "" {
				where = "slot " + c.Slot
			}
			fmt.Fprintf(tw, "component\t%s %s (%s)\n", display.Untrusted(c.Name), display.Untrusted(c.Version), where)
		}
		fmt.Fprintf(tw, "slot\tbooted %s, update on trial: %s, bootloader fell back: %s\n", display.OrDash(inv.Slot.Booted), yesNo(inv.Slot.Trial), yesNo(inv.Slot.Fallback))
		fmt.Fprintf(tw, "last install\t%s\n", display.Untrusted(inv.Result))
		if inv.Error != "" {
			fmt.Fprintf(tw, "error\t%s\n", display.OneLine(inv.Error, 200))
		}
		fmt.Fprintf(tw, "free space\t%s\n", display.Bytes(int64(min(inv.FreeBytes, 1<<62))))
		fmt.Fprintf(tw, "uptime\t%s\n", (time.Duration(min(inv.UptimeSeconds, 1<<32)) * time.Second).String())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(hist) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\ncheck-ins (%d kept, newest first)\n", len(hist))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RECEIVED\tCOUNTER\tBUNDLE\tVERSION\tRESULT\tERROR")
	for _, h := range hist {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", display.Time(h.ReceivedAt), h.Counter, display.Untrusted(display.OrDash(h.Inventory.Bundle)), display.Untrusted(h.Inventory.Version),
			display.Untrusted(h.Inventory.Result), display.OneLine(h.Inventory.Error, 60))
	}
	return tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

type devicesEnrollOptions struct {
	devicesOptions
	file string
}

func newDevicesEnrollCommand(s *streams) *cobra.Command {
	var o devicesEnrollOptions
	cmd := &cobra.Command{
		Use:   "enroll DIR --file FILE [--json]",
		Short: "Enroll devices from the factory line's list of their public keys",
		Long: `Enroll the devices FILE lists, so the mirror records their check-ins from the
first one. FILE is what the factory line collects: the output of
'ferry-agent identity --json' of each device, one per line (with its name
and device type), or PEM public keys one after another. A device listed
as pending becomes enrolled; one enrolled before is left as it is; a
rejected or revoked one is not enrolled (approve a rejected one; a revoked
key stays revoked). Nothing is enrolled if any entry is not valid.`,
		Args: args(1, "a mirror DIR"),
		RunE: func(cmd *cobra.Command, a []string) error { return runDevicesEnroll(cmd.Context(), s, o, a[0]) },
	}
	o.addFlags(cmd)
	cmd.Flags().StringVarP(&o.file, "file", "f", "", "the enrollment list: 'ferry-agent identity --json' lines or PEM public keys")
	return cmd
}

func runDevicesEnroll(ctx context.Context, s *streams, o devicesEnrollOptions, dir string) error {
	if o.file == "" {
		return cliexit.UsageError{Err: errors.New("--file FILE (the factory line's list of device keys) is required")}
	}
	data, err := os.ReadFile(o.file)
	if err != nil {
		return fmt.Errorf("read enrollment list: %w", err)
	}
	es, err := devices.ParseEnrollments(data)
	if err != nil {
		return fmt.Errorf("enrollment list %s: %w", o.file, err)
	}
	d, err := openDeviceStore(ctx, dir, o.database)
	if err != nil {
		return err
	}
	defer d.Close()
	res, err := d.Enroll(ctx, es, "file:"+o.file, time.Now())
	if err != nil {
		return err
	}
	return printEnrolled(s, o.asJSON, res)
}

// printEnrolled prints what an enrollment did with each device.
func printEnrolled(s *streams, asJSON bool, res []devices.EnrollResult) error {
	if asJSON {
		return writeJSON(s.out, res)
	}
	n := 0
	for _, r := range res {
		what := "enrolled"
		switch {
		case r.Before == devices.Pending:
			what = "enrolled (was pending)"
		case r.Before != "":
			what = fmt.Sprintf("unchanged (%s: %s)", r.After, r.Note)
		}
		if r.After == devices.Enrolled && r.Before != devices.Enrolled {
			n++
		}
		fmt.Fprintf(s.out, "%s  %-16s  %s\n", r.ID[:16], display.Untrusted(display.OrDash(r.Name)), what)
	}
	fmt.Fprintf(s.out, "%d devices listed, %d enrolled now\n", len(res), n)
	return nil
}

// The commands that move a device from one status to another.
func newDevicesApproveCommand(s *streams) *cobra.Command {
	return newDevicesStatusCommand(s, "approve", devices.Enrolled, "Enroll a pending (or rejected) device: its check-ins are recorded from now on")
}

func newDevicesRejectCommand(s *streams) *cobra.Command {
	return newDevicesStatusCommand(s, "reject", devices.Rejected, "Refuse a pending device's check-ins (it may be approved later)")
}

func newDevicesRevokeCommand(s *streams) *cobra.Command {
	return newDevicesStatusCommand(s, "revoke", devices.Revoked, "Refuse a device's key for good: a device that comes back needs a new key")
}

func newDevicesStatusCommand(s *streams, verb string, to devices.Status, short string) *cobra.Command {
	var o devicesOptions
	cmd := &cobra.Command{
		Use:   verb + " DIR ID [--json]",
		Short: short,
		Long: short + `.
ID is the device's id or a unique prefix of it (8 hex digits or more), as
'ferry mirror devices list DIR' shows it.`,
		Args: args(2, "a mirror DIR and a device ID"),
		RunE: func(cmd *cobra.Command, a []string) error {
			return runDevicesStatus(cmd.Context(), s, o, to, a[0], a[1])
		},
	}
	o.addFlags(cmd)
	return cmd
}

func runDevicesStatus(ctx context.Context, s *streams, o devicesOptions, to devices.Status, dir, id string) error {
	d, err := openDeviceStore(ctx, dir, o.database)
	if err != nil {
		return err
	}
	defer d.Close()
	rec, err := d.SetStatus(ctx, id, to, time.Now())
	if err != nil {
		return err
	}
	if o.asJSON {
		return writeJSON(s.out, rec)
	}
	fmt.Fprintf(s.out, "%s  %s  %s\n", rec.ID, display.Untrusted(display.OrDash(rec.Name)), rec.Status)
	return nil
}
