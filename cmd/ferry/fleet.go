package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/fleet"
	"github.com/ferry-update/ferry/internal/cliexit"
	"github.com/ferry-update/ferry/internal/display"
	"github.com/ferry-update/ferry/mirror/operator"
)

// fleetOptions are the flags every 'ferry fleet' command takes.
type fleetOptions struct {
	asJSON   bool
	database string
	// A mirror's URL: the API token's file, and whether it may cross
	// the network over plain http.
	tokenFile string
	plainHTTP bool
	flags     *pflag.FlagSet
}

func (o *fleetOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print JSON")
	addDatabaseFlag(cmd, &o.database)
	cmd.Flags().StringVar(&o.tokenFile, "token-file", "", "with a mirror's URL: the file holding the API token (else env "+tokenEnv+")")
	cmd.Flags().BoolVar(&o.plainHTTP, "token-over-http", false, "with an http:// URL of another machine: send the token anyway, in clear")
	o.flags = cmd.Flags()
}

// tokenEnv carries the API token of 'ferry fleet … URL'.
const tokenEnv = "FERRY_TOKEN"

// isMirrorURL says whether a fleet command's DIR is a running mirror's
// URL rather than a mirror directory.
func isMirrorURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// openFleet opens the fleet of the mirror directory dir, or of the
// running mirror at the URL dir through its API.
func openFleet(ctx context.Context, dir string, o fleetOptions) (fleet.Client, error) {
	if isMirrorURL(dir) {
		return openRemoteFleet(dir, o)
	}
	st, err := openMirror(dir)
	if err != nil {
		return nil, err
	}
	db, err := openDeviceStore(ctx, dir, o.database)
	if err != nil {
		return nil, err
	}
	return &fleet.Local{DB: db, Store: st}, nil
}

// openRemoteFleet is the fleet of the mirror served at url ('ferry
// mirror serve --console'), reached through its API with a token read
// from --token-file's first line, else from FERRY_TOKEN: never from the
// command line, where other users of the machine could read it.
func openRemoteFleet(url string, o fleetOptions) (fleet.Client, error) {
	for _, name := range []string{"database", "operator"} {
		if o.flags != nil && o.flags.Changed(name) {
			return nil, cliexit.UsageError{Err: fmt.Errorf("--%s is for a mirror directory: on a mirror's URL the mirror keeps its own database and acts as the token's user", name)}
		}
	}
	return apiClient(url, o.tokenFile, o.plainHTTP)
}

// apiClient is the API client of the mirror served at url, with the
// token read from tokenFile's first line, else from FERRY_TOKEN: never
// from the command line, where other users of the machine could read
// it. plainHTTP sends it over plain http to another machine.
func apiClient(url, tokenFile string, plainHTTP bool) (*operator.Client, error) {
	token := os.Getenv(tokenEnv)
	if tokenFile != "" {
		f, err := os.Open(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("token file: %w", err)
		}
		defer f.Close()
		if token, err = firstLine(f); err != nil {
			return nil, fmt.Errorf("token file %s: %w", tokenFile, err)
		}
	}
	if token = strings.TrimSpace(token); token == "" {
		return nil, cliexit.UsageError{Err: fmt.Errorf("%s is a mirror's URL: its API needs a token", url),
			Hint: "set " + tokenEnv + " or give --token-file FILE (a token from 'ferry fleet tokens create DIR --user NAME' on the mirror)"}
	}
	c, err := operator.NewClient(url, token, operator.ClientOptions{PlainHTTP: plainHTTP})
	var pe *operator.PlainHTTPError
	if errors.As(err, &pe) {
		return nil, cliexit.UsageError{Err: err, Hint: "use the mirror's https:// URL ('ferry mirror serve --tls-cert'), or an ssh tunnel to its loopback address; --token-over-http sends it anyway"}
	}
	if err != nil {
		return nil, cliexit.UsageError{Err: err}
	}
	return c, nil
}

// withFleet runs fn on the fleet of dir and closes it.
func withFleet(ctx context.Context, dir string, o fleetOptions, fn func(f fleet.Client) error) error {
	f, err := openFleet(ctx, dir, o)
	if err != nil {
		return err
	}
	defer f.Close()
	return fn(f)
}

// operatorEnv names the operator of the fleet commands by default.
const operatorEnv = "FERRY_OPERATOR"

// addOperatorFlag adds --operator: who acts, for the deployment's log
// and the two-person rule.
func addOperatorFlag(cmd *cobra.Command, op *string) {
	def := os.Getenv(operatorEnv)
	if def == "" {
		def = os.Getenv("USER")
	}
	cmd.Flags().StringVar(op, "operator", def, "who acts: kept in the deployment's log; approval must come from another operator (env "+operatorEnv+", else USER)")
}

func newFleetCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "fleet",
		Short: "Devices, groups and phased deployments of a mirror; its operators and their API tokens",
		Long: `The fleet of a mirror: its devices (enrolled by their keys), groups of
them (static lists, or filters on what they report and on their labels),
and deployments of a bundle to a group in phases, each phase with a soak
time and a failure threshold; a phase with too many failures pauses the
deployment by itself. The mirror tells each device what to install with
an assignment signed by its assignment key; a managed device ([mirror]
managed = true) installs only that. 'users' and 'tokens' manage the
operators who log in to the console and the API.

Every command but rotate-key, users and tokens works on a mirror
directory DIR (its devices.db, or --database postgres://...) or on a
running mirror's URL (https://HOST:PORT, served by 'ferry mirror serve
--console') through its API, with the same output. A URL needs an API
token ('ferry fleet tokens create DIR --user NAME' on the mirror) in the
file --token-file FILE or in FERRY_TOKEN, never on the command line; the
mirror acts as the token's user, so a read-only token only reads. A token
goes over plain http only to this machine (localhost), unless
--token-over-http says to send it in clear. Exit code 4: the mirror
refused the token or its role. See docs/fleet.md.`,
	}
}

func newFleetDevicesCommand(s *streams) *cobra.Command {
	var o fleetOptions
	cmd := &cobra.Command{
		Use:   "devices DIR|URL [--json]",
		Short: "List the devices with keys: status, what they run, how their last install ended",
		Long: `List the devices the mirror knows by their keys, pending ones first (the
same list as 'ferry mirror devices list', without the legacy devices).`,
		Args: args(1, "a mirror DIR or URL"),
		RunE: func(cmd *cobra.Command, a []string) error { return runFleetDevices(cmd.Context(), s, o, a[0]) },
	}
	o.addFlags(cmd)
	return cmd
}

func runFleetDevices(ctx context.Context, s *streams, o fleetOptions, dir string) error {
	return withFleet(ctx, dir, o, func(f fleet.Client) error {
		recs, err := f.Records(ctx)
		if err != nil {
			return err
		}
		devices.SortByStatus(recs)
		if o.asJSON {
			return writeJSON(s.out, struct {
				Devices []devices.Record `json:"devices"`
			}{recs})
		}
		if len(recs) == 0 {
			fmt.Fprintln(s.err, "ferry: no device is enrolled or pending on this mirror yet ('ferry fleet enroll DIR --file LIST')")
			return nil
		}
		return printRecords(s.out, recs, time.Now())
	})
}

type fleetDeviceOptions struct {
	fleetOptions
	labels []string
}

func newFleetDeviceCommand(s *streams) *cobra.Command {
	var o fleetDeviceOptions
	cmd := &cobra.Command{
		Use:   "device DIR|URL ID [--label KEY=VALUE]... [--json]",
		Short: "Show a device (and set its labels: site, line, ...)",
		Long: `Show one device: its key, status, labels, inventory and recorded check-ins.
ID is its id or a unique prefix of 8 hex digits or more.

--label KEY=VALUE sets a label first (KEY= removes it). Labels are the
operators' facts about a device, never the device's own claims: filters
select by them (site = plant-2, line = 3, label.KEY = VALUE).`,
		Args: args(2, "a mirror DIR or URL and a device ID"),
		RunE: func(cmd *cobra.Command, a []string) error { return runFleetDevice(cmd.Context(), s, o, a[0], a[1]) },
	}
	o.addFlags(cmd)
	cmd.Flags().StringArrayVar(&o.labels, "label", nil, "set a label KEY=VALUE (KEY= removes it); repeat for more")
	return cmd
}

func runFleetDevice(ctx context.Context, s *streams, o fleetDeviceOptions, dir, id string) error {
	set := map[string]string{}
	for _, l := range o.labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			return cliexit.UsageError{Err: fmt.Errorf("--label %q: want KEY=VALUE", l)}
		}
		set[k] = v
	}
	return withFleet(ctx, dir, o.fleetOptions, func(f fleet.Client) error {
		if len(set) > 0 {
			if _, err := f.SetLabels(ctx, id, set, time.Now()); err != nil {
				return err
			}
		}
		rec, hist, err := f.Show(ctx, id)
		if err != nil {
			return err
		}
		if o.asJSON {
			return writeJSON(s.out, deviceShow{rec, hist})
		}
		return printDevice(s.out, rec, hist, time.Now())
	})
}

type fleetEnrollOptions struct {
	fleetOptions
	file string
}

func newFleetEnrollCommand(s *streams) *cobra.Command {
	var o fleetEnrollOptions
	cmd := &cobra.Command{
		Use:   "enroll DIR|URL (--file LIST | ID...) [--json]",
		Short: "Enroll devices: the factory line's list of keys, or pending devices by id",
		Long: `Enroll devices, so the mirror records their check-ins and deployments
can reach them. --file LIST is the factory line's list: the output of
'ferry-agent identity --json' of each device, one per line (name, device
type, and optionally "labels": {"site": ..., "line": ...}), or PEM public
keys; nothing is enrolled if an entry is not valid. IDs approve devices
that checked in and wait as pending (as 'ferry mirror devices approve').`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error { return runFleetEnroll(cmd.Context(), s, o, a[0], a[1:]) },
	}
	o.addFlags(cmd)
	cmd.Flags().StringVarP(&o.file, "file", "f", "", "the enrollment list: 'ferry-agent identity --json' lines or PEM public keys")
	return cmd
}

func runFleetEnroll(ctx context.Context, s *streams, o fleetEnrollOptions, dir string, ids []string) error {
	if (o.file == "") == (len(ids) == 0) {
		return cliexit.UsageError{Err: errors.New("give --file LIST (the factory line's keys) or the ids of pending devices, not both")}
	}
	var es []devices.Enrollment
	if o.file != "" {
		data, err := os.ReadFile(o.file)
		if err != nil {
			return fmt.Errorf("read enrollment list: %w", err)
		}
		if es, err = devices.ParseEnrollments(data); err != nil {
			return fmt.Errorf("enrollment list %s: %w", o.file, err)
		}
	}
	return withFleet(ctx, dir, o.fleetOptions, func(f fleet.Client) error {
		if o.file != "" {
			res, err := f.Enroll(ctx, es, "file:"+o.file, time.Now())
			if err != nil {
				return err
			}
			return printEnrolled(s, o.asJSON, res)
		}
		var res []devices.EnrollResult
		for _, id := range ids {
			rec, err := f.SetStatus(ctx, id, devices.Enrolled, time.Now())
			if err != nil {
				return err
			}
			res = append(res, devices.EnrollResult{ID: rec.ID, Name: rec.Name, After: rec.Status})
		}
		return printEnrolled(s, o.asJSON, res)
	})
}

type fleetGroupsOptions struct {
	fleetOptions
	devices []string
	filter  string
	remove  bool
}

func newFleetGroupsCommand(s *streams) *cobra.Command {
	var o fleetGroupsOptions
	cmd := &cobra.Command{
		Use:   "groups DIR|URL [NAME [--devices ID,... | --filter EXPR | --delete]] [--json]",
		Short: "List, show, make and delete groups of devices",
		Long: `Without NAME, list the groups. With NAME alone, show the group and the
enrolled devices in it now. --devices makes (or replaces) a static group
of those devices (ids or unique prefixes); --filter a dynamic one: every
enrolled device the filter matches when a deployment is made, e.g.

  type = board-a and site = plant-2 and component.sim-os < 2.0.0

Attributes: id name type status bundle version site line label.KEY
component.NAME; operators = != ~ (glob) < <= > >= (versions); and, or,
not, parentheses; values bare or "quoted" (docs/fleet.md).`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, a []string) error {
			name := ""
			if len(a) == 2 {
				name = a[1]
			}
			return runFleetGroups(cmd.Context(), s, o, a[0], name)
		},
	}
	o.addFlags(cmd)
	cmd.Flags().StringSliceVar(&o.devices, "devices", nil, "make a static group of these devices (ids or unique prefixes, comma-separated)")
	cmd.Flags().StringVar(&o.filter, "filter", "", "make a dynamic group of the devices this filter matches")
	cmd.Flags().BoolVar(&o.remove, "delete", false, "delete the group")
	return cmd
}

func runFleetGroups(ctx context.Context, s *streams, o fleetGroupsOptions, dir, name string) error {
	actions := 0
	for _, set := range []bool{len(o.devices) > 0, o.filter != "", o.remove} {
		if set {
			actions++
		}
	}
	if actions > 1 || (actions == 1 && name == "") {
		return cliexit.UsageError{Err: errors.New("give a group NAME and one of --devices, --filter or --delete")}
	}
	return withFleet(ctx, dir, o.fleetOptions, func(f fleet.Client) error {
		now := time.Now()
		switch {
		case o.remove:
			if err := f.DeleteGroup(ctx, name); err != nil {
				return err
			}
			if o.asJSON {
				return writeJSON(s.out, map[string]string{"deleted": name})
			}
			fmt.Fprintf(s.out, "group %s deleted\n", name)
			return nil
		case len(o.devices) > 0:
			if _, err := f.PutGroup(ctx, devices.Group{Name: name, Kind: devices.Static, Devices: o.devices}, now); err != nil {
				return err
			}
		case o.filter != "":
			if _, err := f.PutGroup(ctx, devices.Group{Name: name, Kind: devices.Dynamic, Filter: o.filter}, now); err != nil {
				return err
			}
		case name == "":
			gs, err := f.Groups(ctx)
			if err != nil {
				return err
			}
			if o.asJSON {
				return writeJSON(s.out, struct {
					Groups []devices.Group `json:"groups"`
				}{gs})
			}
			tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "GROUP\tKIND\tDEVICES / FILTER")
			for _, g := range gs {
				what := g.Filter
				if g.Kind == devices.Static {
					what = fmt.Sprintf("%d devices", len(g.Devices))
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", g.Name, g.Kind, what)
			}
			return tw.Flush()
		}
		g, members, err := f.GroupMembers(ctx, name)
		if err != nil {
			return err
		}
		if o.asJSON {
			return writeJSON(s.out, struct {
				*devices.Group
				Members []devices.Record `json:"members"`
			}{g, members})
		}
		what := "static, " + strconv.Itoa(len(g.Devices)) + " devices listed"
		if g.Kind == devices.Dynamic {
			what = "dynamic: " + g.Filter
		}
		fmt.Fprintf(s.out, "group %s (%s): %d enrolled devices in it now\n", g.Name, what, len(members))
		if len(members) == 0 {
			return nil
		}
		return printRecords(s.out, members, now)
	})
}

type fleetDeployOptions struct {
	fleetOptions
	group, filter string
	phases        string
	soak          string
	maxFailures   string
	operator      string
}

func newFleetDeployCommand(s *streams) *cobra.Command {
	var o fleetDeployOptions
	cmd := &cobra.Command{
		Use:   "deploy DIR|URL NAME:VERSION (--group G | --filter EXPR) [--phases 1,10%,50%,100%] [--soak 1h] [--max-failures 0] [--json]",
		Short: "Deploy a bundle of the mirror to a group, in phases",
		Long: `Deploy the mirror's bundle NAME:VERSION to the enrolled devices of a group
(or a filter) as they are now, in phases. --phases counts from the start:
"1,10%,50%,100%" is one canary device, then up to a tenth of the devices,
half, all; the last phase always reaches every device. A phase ends when
each of its devices has reported, at most --max-failures of them failed
(a number, or a percentage of the phase), and --soak has passed since the
last report; then the next phase starts. One failure more pauses the
deployment by itself, with the reason ('ferry fleet status'). Per phase:
"1:soak=2h:fail=0,50%:fail=5%,100%".

The mirror's assignment key is made (and published in its TUF metadata,
signed with the mirror key) at the first deployment. If the site requires
approval ('ferry fleet settings --require-approval'), the deployment waits
for another operator's 'ferry fleet approve'.`,
		Args: args(2, "a mirror DIR or URL and a bundle NAME:VERSION"),
		RunE: func(cmd *cobra.Command, a []string) error { return runFleetDeploy(cmd.Context(), s, o, a[0], a[1]) },
	}
	o.addFlags(cmd)
	cmd.Flags().StringVar(&o.group, "group", "", "deploy to this group's enrolled devices")
	cmd.Flags().StringVar(&o.filter, "filter", "", "deploy to the enrolled devices this filter matches")
	cmd.Flags().StringVar(&o.phases, "phases", "1,10%,50%,100%", "the phases: devices reached by the end of each, counted from the start")
	cmd.Flags().StringVar(&o.soak, "soak", "1h", "how long a phase's devices run after the last reported, before the next phase")
	cmd.Flags().StringVar(&o.maxFailures, "max-failures", "0", "failures a phase tolerates (a number, or a percentage of the phase); one more pauses")
	addOperatorFlag(cmd, &o.operator)
	return cmd
}

func runFleetDeploy(ctx context.Context, s *streams, o fleetDeployOptions, dir, ref string) error {
	var soak time.Duration // 0: the next phase starts once every device reported
	if o.soak != "0" && o.soak != "0s" {
		var err error
		if soak, err = display.ParseDuration(o.soak); err != nil {
			return cliexit.UsageError{Err: fmt.Errorf("--soak: %w", err)}
		}
	}
	fail, err := devices.ParseAmount(o.maxFailures)
	if err != nil {
		return cliexit.UsageError{Err: fmt.Errorf("--max-failures %w", err)}
	}
	phases, err := devices.ParsePhases(o.phases, soak, fail)
	if err != nil {
		return cliexit.UsageError{Err: fmt.Errorf("--phases: %w", err)}
	}
	if (o.group == "") == (o.filter == "") {
		return cliexit.UsageError{Err: errors.New("give --group G or --filter EXPR (one of them)")}
	}
	spec := devices.DeploymentSpec{Group: o.group, Filter: o.filter, Phases: phases, CreatedBy: o.operator}
	return withFleet(ctx, dir, o.fleetOptions, func(f fleet.Client) error {
		d, err := f.Deploy(ctx, ref, spec, time.Now())
		if err != nil {
			return err
		}
		if o.asJSON {
			return writeJSON(s.out, d)
		}
		fmt.Fprintf(s.out, "deployment %d: %s %s to %d devices, %s\n", d.ID, d.Bundle, d.Version, d.Devices, d.State)
		return printPhases(s.out, d)
	})
}

// printPhases prints a deployment's phases and their progress.
func printPhases(w io.Writer, d *devices.Deployment) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PHASE\tSIZE\tDEVICES\tSUCCEEDED\tFAILED\tALLOWED\tASSIGNED\tWAITING\tSOAK")
	for i, p := range d.Progress {
		mark := " "
		if i == d.Phase && d.State != devices.Completed {
			mark = "*"
		}
		fmt.Fprintf(tw, "%s%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", mark, i+1, p.Phase.Size, p.Devices, p.Succeeded, p.Failed, p.MaxFailures, p.Assigned, p.Waiting, p.Phase.Soak)
	}
	return tw.Flush()
}

func newFleetDeploymentsCommand(s *streams) *cobra.Command {
	var o fleetOptions
	cmd := &cobra.Command{
		Use:   "deployments DIR|URL [--json]",
		Short: "List the deployments, newest first, with their progress",
		Args:  args(1, "a mirror DIR or URL"),
		RunE:  func(cmd *cobra.Command, a []string) error { return runFleetDeployments(cmd.Context(), s, o, a[0]) },
	}
	o.addFlags(cmd)
	return cmd
}

func runFleetDeployments(ctx context.Context, s *streams, o fleetOptions, dir string) error {
	return withFleet(ctx, dir, o, func(f fleet.Client) error {
		if err := f.Evaluate(ctx, time.Now()); err != nil {
			return err
		}
		ds, err := f.Deployments(ctx)
		if err != nil {
			return err
		}
		if o.asJSON {
			return writeJSON(s.out, struct {
				Deployments []devices.Deployment `json:"deployments"`
			}{ds})
		}
		if len(ds) == 0 {
			fmt.Fprintln(s.err, "ferry: no deployment on this mirror yet ('ferry fleet deploy')")
			return nil
		}
		return printDeployments(s.out, ds)
	})
}

func printDeployments(w io.Writer, ds []devices.Deployment) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tBUNDLE\tVERSION\tTO\tSTATE\tPHASE\tDEVICES\tSUCCEEDED\tFAILED\tREASON")
	for _, d := range ds {
		ok, bad := 0, 0
		for _, p := range d.Progress {
			ok, bad = ok+p.Succeeded, bad+p.Failed
		}
		to := "group " + d.Group
		if d.Group == "" {
			to = "filter"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d/%d\t%d\t%d\t%d\t%s\n", d.ID, d.Bundle, d.Version, to, d.State, d.Phase+1, len(d.Phases), d.Devices, ok, bad,
			display.OneLine(display.OrDash(d.Reason), 80))
	}
	return tw.Flush()
}

func newFleetStatusCommand(s *streams) *cobra.Command {
	var o fleetOptions
	cmd := &cobra.Command{
		Use:   "status DIR|URL [DEPLOYMENT] [--json]",
		Short: "The fleet at a glance, or one deployment: phases, devices, why it paused",
		Long: `Without DEPLOYMENT: the devices by status and by what they run, the
devices whose last install failed, and the deployments not over, with the
reason of any pause. With DEPLOYMENT (its id): its phases and their
progress, every device with its state and error, and its log.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, a []string) error {
			return runFleetStatus(cmd.Context(), s, o, a[0], a[1:])
		},
	}
	o.addFlags(cmd)
	return cmd
}

func runFleetStatus(ctx context.Context, s *streams, o fleetOptions, dir string, rest []string) error {
	var id int64
	if len(rest) == 1 {
		var err error
		if id, err = parseDeploymentID(rest[0]); err != nil {
			return err
		}
	}
	return withFleet(ctx, dir, o, func(f fleet.Client) error {
		now := time.Now()
		if id != 0 {
			if err := f.Evaluate(ctx, now); err != nil {
				return err
			}
			return printDeploymentDetail(ctx, s, o, f, id)
		}
		ov, err := fleet.Status(ctx, f, now)
		if err != nil {
			return err
		}
		if o.asJSON {
			return writeJSON(s.out, ov)
		}
		fmt.Fprintf(s.out, "devices: %d (%d enrolled, %d pending, %d rejected, %d revoked)\n", ov.Devices,
			ov.ByStatus[devices.Enrolled], ov.ByStatus[devices.Pending], ov.ByStatus[devices.Rejected], ov.ByStatus[devices.Revoked])
		for _, v := range ov.Versions {
			what := display.Untrusted(display.OrDash(v.Bundle)) + " " + display.Untrusted(v.Version)
			if v.Bundle == "" && v.Version == "" {
				what = "- never reported"
			}
			fmt.Fprintf(s.out, "  %4d  %s\n", v.Devices, what)
		}
		if len(ov.Failing) > 0 {
			fmt.Fprintf(s.out, "\nfailing: %d devices (the last install failed, rolled back or was refused, or the bootloader fell back)\n", len(ov.Failing))
			if err := printRecords(s.out, ov.Failing, now); err != nil {
				return err
			}
		}
		if len(ov.Silent) > 0 {
			fmt.Fprintf(s.out, "\nsilent: %d devices (no check-in for a day or more, or never)\n", len(ov.Silent))
			if err := printRecords(s.out, ov.Silent, now); err != nil {
				return err
			}
		}
		if len(ov.Deployments) == 0 {
			fmt.Fprintln(s.out, "\nno deployment under way")
			return nil
		}
		fmt.Fprintln(s.out, "\ndeployments under way:")
		if err := printDeployments(s.out, ov.Deployments); err != nil {
			return err
		}
		for _, d := range ov.Deployments {
			if d.State == devices.Paused {
				fmt.Fprintf(s.out, "\ndeployment %d is paused: %s\n", d.ID, display.OneLine(d.Reason, 400))
				fmt.Fprintf(s.out, "  see 'ferry fleet status DIR %d'; after a fix, 'ferry fleet resume DIR %d' tries the failed devices again, or 'ferry fleet abort DIR %d'\n", d.ID, d.ID, d.ID)
			}
		}
		return nil
	})
}

func printDeploymentDetail(ctx context.Context, s *streams, o fleetOptions, f fleet.Client, id int64) error {
	d, err := f.DeploymentDetail(ctx, id)
	if err != nil {
		return err
	}
	if o.asJSON {
		return writeJSON(s.out, d)
	}
	to := "group " + d.Group
	if d.Group == "" {
		to = "filter " + d.Filter
	}
	fmt.Fprintf(s.out, "deployment %d: %s %s (%s) to %s, %d devices\n", d.ID, d.Bundle, d.Version, d.Digest, to, d.Devices)
	fmt.Fprintf(s.out, "state: %s (phase %d of %d)\n", d.State, d.Phase+1, len(d.Phases))
	if d.Reason != "" {
		fmt.Fprintf(s.out, "why: %s\n", display.OneLine(d.Reason, 400))
	}
	if err := printPhases(s.out, &d.Deployment); err != nil {
		return err
	}
	fmt.Fprintln(s.out, "\ndevices:")
	tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tNAME\tPHASE\tSTATE\tATTEMPTS\tRESULT\tERROR")
	for _, t := range d.Targets {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\t%s\n", t.Device[:16], display.Untrusted(display.OrDash(t.Name)), t.Phase+1, t.State, t.Attempts,
			display.Untrusted(display.OrDash(t.Result)), display.OneLine(t.Error, 60))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(s.out, "\nlog:")
	for _, e := range d.Events {
		who := ""
		if e.Operator != "" {
			who = " (" + e.Operator + ")"
		}
		fmt.Fprintf(s.out, "  %s  %s%s: %s\n", display.Time(e.At), e.Kind, who, display.OneLine(e.Message, 400))
	}
	return nil
}

func parseDeploymentID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, cliexit.UsageError{Err: fmt.Errorf("deployment %q: want its number, as 'ferry fleet deployments DIR' lists it", s)}
	}
	return id, nil
}

type fleetActOptions struct {
	fleetOptions
	operator string
	reason   string
}

// newFleetActCommand makes the commands that act on one deployment.
func newFleetActCommand(s *streams, verb, short string, withReason bool,
	act func(ctx context.Context, f fleet.Client, id int64, o fleetActOptions) (*devices.Deployment, error)) *cobra.Command {
	var o fleetActOptions
	cmd := &cobra.Command{
		Use:   verb + " DIR|URL DEPLOYMENT [--json]",
		Short: short,
		Long:  short + ".\nDEPLOYMENT is its number, as 'ferry fleet deployments DIR' lists it.",
		Args:  args(2, "a mirror DIR or URL and a DEPLOYMENT number"),
		RunE: func(cmd *cobra.Command, a []string) error {
			return runFleetAct(cmd.Context(), s, o, a[0], a[1], act)
		},
	}
	o.addFlags(cmd)
	addOperatorFlag(cmd, &o.operator)
	if withReason {
		cmd.Flags().StringVar(&o.reason, "reason", "", "why, for the deployment's log")
	}
	return cmd
}

func runFleetAct(ctx context.Context, s *streams, o fleetActOptions, dir, idText string,
	act func(ctx context.Context, f fleet.Client, id int64, o fleetActOptions) (*devices.Deployment, error)) error {
	id, err := parseDeploymentID(idText)
	if err != nil {
		return err
	}
	return withFleet(ctx, dir, o.fleetOptions, func(f fleet.Client) error {
		d, err := act(ctx, f, id, o)
		if err != nil {
			return err
		}
		if o.asJSON {
			return writeJSON(s.out, d)
		}
		fmt.Fprintf(s.out, "deployment %d: %s", d.ID, d.State)
		if d.Reason != "" {
			fmt.Fprintf(s.out, " (%s)", display.OneLine(d.Reason, 200))
		}
		fmt.Fprintln(s.out)
		return nil
	})
}

func newFleetPauseCommand(s *streams) *cobra.Command {
	return newFleetActCommand(s, "pause", "Pause a deployment: no more devices are assigned its bundle until it resumes", true,
		func(ctx context.Context, f fleet.Client, id int64, o fleetActOptions) (*devices.Deployment, error) {
			return f.Pause(ctx, id, o.operator, o.reason, time.Now())
		})
}

func newFleetResumeCommand(s *streams) *cobra.Command {
	return newFleetActCommand(s, "resume", "Resume a paused deployment; its failed devices are assigned the bundle again", false,
		func(ctx context.Context, f fleet.Client, id int64, o fleetActOptions) (*devices.Deployment, error) {
			return f.Resume(ctx, id, o.operator, time.Now())
		})
}

func newFleetAbortCommand(s *streams) *cobra.Command {
	return newFleetActCommand(s, "abort", "Abort a deployment for good: no device is assigned its bundle any more", true,
		func(ctx context.Context, f fleet.Client, id int64, o fleetActOptions) (*devices.Deployment, error) {
			return f.Abort(ctx, id, o.operator, o.reason, time.Now())
		})
}

func newFleetApproveCommand(s *streams) *cobra.Command {
	return newFleetActCommand(s, "approve", "Approve a deployment that awaits a second operator's approval, and start it", false,
		func(ctx context.Context, f fleet.Client, id int64, o fleetActOptions) (*devices.Deployment, error) {
			return f.Approve(ctx, id, o.operator, time.Now())
		})
}

type fleetSettingsOptions struct {
	fleetOptions
	requireApproval string
}

func newFleetSettingsCommand(s *streams) *cobra.Command {
	var o fleetSettingsOptions
	cmd := &cobra.Command{
		Use:   "settings DIR|URL [--require-approval true|false] [--json]",
		Short: "Show or change the site's rules for deployments",
		Long: `Show the site's settings, or change them. --require-approval true: a new
deployment waits until an operator other than the one who made it
approves it ('ferry fleet approve').`,
		Args: args(1, "a mirror DIR or URL"),
		RunE: func(cmd *cobra.Command, a []string) error { return runFleetSettings(cmd.Context(), s, o, a[0]) },
	}
	o.addFlags(cmd)
	cmd.Flags().StringVar(&o.requireApproval, "require-approval", "", "true: deployments need a second operator's approval before they start")
	return cmd
}

func runFleetSettings(ctx context.Context, s *streams, o fleetSettingsOptions, dir string) error {
	return withFleet(ctx, dir, o.fleetOptions, func(f fleet.Client) error {
		st, err := f.Settings(ctx)
		if err != nil {
			return err
		}
		if o.requireApproval != "" {
			v, err := strconv.ParseBool(o.requireApproval)
			if err != nil {
				return cliexit.UsageError{Err: fmt.Errorf("--require-approval %q: want true or false", o.requireApproval)}
			}
			st.RequireApproval = v
			if err := f.SetSettings(ctx, st); err != nil {
				return err
			}
		}
		if o.asJSON {
			return writeJSON(s.out, st)
		}
		fmt.Fprintf(s.out, "require approval: %s\n", yesNo(st.RequireApproval))
		return nil
	})
}

func newFleetRotateKeyCommand(s *streams) *cobra.Command {
	var o fleetOptions
	cmd := &cobra.Command{
		Use:   "rotate-key DIR [--json]",
		Short: "Replace the mirror's assignment key (the old one stays published until removed)",
		Long: `Make a new assignment key (DIR/keys/assign.key) and publish it in the
mirror's TUF targets (signed with the mirror key). The old key stays
published as DIR/keys/assign.<id>.pub, so assignments it signed verify
until they expire (a day); then delete that file and run 'ferry mirror
refresh DIR'. A running 'ferry mirror serve' signs with the new key at
once.`,
		Args: args(1, "a mirror DIR or URL"),
		RunE: func(cmd *cobra.Command, a []string) error { return runFleetRotateKey(s, o, a[0]) },
	}
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print JSON")
	return cmd
}

func runFleetRotateKey(s *streams, o fleetOptions, dir string) error {
	if isMirrorURL(dir) {
		return cliexit.UsageError{Err: fmt.Errorf("rotate-key works on the mirror directory, not its URL %s: it writes the key file", dir)}
	}
	st, err := openMirror(dir)
	if err != nil {
		return err
	}
	id, err := st.RotateAssignmentKey()
	if err != nil {
		return err
	}
	if o.asJSON {
		return writeJSON(s.out, map[string]string{"keyId": id})
	}
	fmt.Fprintf(s.out, "assignment key %s\n", id)
	return nil
}
