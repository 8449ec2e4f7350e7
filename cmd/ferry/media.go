package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"

	"github.com/ferry-update/ferry/fleet"
	"github.com/ferry-update/ferry/internal/cliexit"
	"github.com/ferry-update/ferry/internal/display"
	"github.com/ferry-update/ferry/media"
	"github.com/ferry-update/ferry/transport/stick"
)

func newMediaCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "media",
		Short: "Make USB sticks that carry bundles to devices, and read back their reports",
		Long: `A stick is a GPT disk with one FAT32 partition (label FERRY) whose ferry/
directory holds bundles as a mirror-store layout, trust material, a README.txt
for the technician and the reports devices write back. 'build' makes an image
(or writes a stick directly), 'write' copies an image onto a stick, 'inspect'
shows what is on one, 'reports' collects the reports.`,
	}
}

// mediaProgress adapts a (done, total) callback to progress bars on
// stderr; a pass that starts again from 0 (the read-back of 'write')
// gets a bar of its own.
func (s *streams) mediaProgress(whats ...string) (func(done, total int64), func()) {
	if !display.IsTerminal(s.err) {
		return nil, func() {}
	}
	var (
		step   func(int64)
		finish = func() {}
		last   int64
		pass   int
	)
	return func(done, total int64) {
			if step == nil || done < last {
				finish()
				what := whats[min(pass, len(whats)-1)]
				pass++
				step, finish = s.progress(total, what)
			}
			last = done
			step(done)
		}, func() {
			finish()
		}
}

// mediaBuildOptions are the flags of the command newMediaBuildCommand builds; runMediaBuild does its work.
type mediaBuildOptions struct {
	out, device, size, label string
	trust, deltaFrom         []string
	force, asJSON            bool
	deployment               int64
	valid, database          string
	relay                    bool
}

func newMediaBuildCommand(s *streams) *cobra.Command {
	var opts mediaBuildOptions
	cmd := &cobra.Command{
		Use:   "build (--out IMAGE | --device DEVICE) (BUNDLE... | --deployment ID MIRROR-DIR) [--size auto|8GiB] [--label FERRY] [--trust FILE]... [--delta-from BASE]...",
		Short: "Make a stick image holding bundles, or write one straight to a stick",
		Long: `Make a GPT disk image with one FAT32 partition holding the bundles (as a
mirror-store layout in ferry/), the --trust files (public keys, the ferry trust root, the mirror TUF root) in
ferry/trust/, an empty ferry/reports/ and a README.txt. --size auto makes it as
small as the content allows with room for reports, rounded up to 64 MiB.

With --device the stick is built for the whole device and written to it, only
its data (see 'ferry media write'); a mounted disk or the system's disk is
refused unless --force.

With --deployment ID the stick is built for a deployment of the mirror in
MIRROR-DIR, for a site without a network link (docs/fleet.md §12): it carries
the deployment's bundle, the signed assignments of the devices the deployment
assigns it now (its current phase; valid --valid, default 14d), and the
mirror's TUF root chain and targets that publish the assignment key. A device
its mirror manages ([mirror] managed) installs from it only what its own
assignment names; 'ferry mirror ingest' of the stick's reports moves the
deployment on.

With --relay the stick is built from what a site mirror MIRROR-DIR relays for
its upstream ('ferry mirror sync' from the upstream's deployment stick): the
upstream's signed assignments and metadata, as they came, and the bundles
they name from the site mirror.

With --delta-from BASE (a bundle file of a version devices run, repeatable),
a BUNDLE of the same name goes on the stick as a delta: only the chunk packs
of its chunked payloads (bundle create --delta) that hold a chunk one of the
bases lacks. Devices on a base install it from their running slot's chunks
and the stick's packs. When --size has room for it, the whole bundle is added
as the fallback for devices on any other version; otherwise (and always with
--size auto) the build says so and such devices skip the stick's bundle.`,
		Args: func(_ *cobra.Command, a []string) error {
			if opts.deployment != 0 && opts.relay {
				return cliexit.UsageError{Err: errors.New("--deployment and --relay: want one")}
			}
			if (opts.deployment != 0 || opts.relay) && len(a) != 1 {
				return cliexit.UsageError{Err: errors.New("with --deployment or --relay, want the MIRROR-DIR only")}
			}
			if len(a) == 0 {
				return cliexit.UsageError{Err: errors.New("want at least one BUNDLE")}
			}
			return nil
		},
		RunE: func(_ *cobra.Command, a []string) error { return runMediaBuild(s, opts, a) },
	}
	f := cmd.Flags()
	f.StringVarP(&opts.out, "out", "o", "", "image file to write")
	f.StringVar(&opts.device, "device", "", "block device to write the stick to (instead of --out)")
	f.StringVar(&opts.size, "size", "auto", "image size: auto, or such as 8GiB (default with --device: the device's)")
	f.StringVar(&opts.label, "label", media.DefaultLabel, "FAT volume label (up to 11 of A-Z, 0-9, _ and -)")
	f.StringArrayVar(&opts.deltaFrom, "delta-from", nil, "bundle file of a base version: put the BUNDLE of its name on the stick as a delta for it (repeatable)")
	f.StringArrayVar(&opts.trust, "trust", nil, "file to put in ferry/trust/: a public key, the ferry trust root or the mirror TUF root, never a private key (repeatable)")
	f.BoolVar(&opts.force, "force", false, "replace an existing --out IMAGE; with --device: write even to a mounted disk or the system's disk")
	f.BoolVar(&opts.asJSON, "json", false, "print the result as JSON")
	f.Int64Var(&opts.deployment, "deployment", 0, "build the stick for this deployment of the mirror MIRROR-DIR: its bundle and the signed assignments of its devices")
	f.BoolVar(&opts.relay, "relay", false, "build the stick from the upstream deployment the site mirror MIRROR-DIR relays")
	f.StringVar(&opts.valid, "valid", "14d", "with --deployment: how long the assignments on the stick stay valid (at most 180d)")
	addDatabaseFlag(cmd, &opts.database)
	return cmd
}

// runMediaBuild runs the command once cobra has parsed its flags.
func runMediaBuild(s *streams, opts mediaBuildOptions, a []string) error {
	if (opts.out == "") == (opts.device == "") {
		return cliexit.UsageError{Err: errors.New("want one of --out IMAGE and --device DEVICE")}
	}
	sz, err := display.ParseSize(opts.size)
	if err != nil {
		return cliexit.UsageError{Err: err}
	}
	if _, err := media.NormalizeLabel(opts.label); err != nil {
		return cliexit.UsageError{Err: err}
	}
	inputs := append(append(append([]string{}, a...), opts.trust...), opts.deltaFrom...)
	bo := media.BuildOptions{Size: sz, Label: opts.label, Trust: opts.trust, DeltaFrom: opts.deltaFrom}
	var sc *fleet.StickContent
	if opts.deployment != 0 {
		valid, err := display.ParseDuration(opts.valid)
		if err != nil {
			return cliexit.UsageError{Err: fmt.Errorf("--valid: %w", err)}
		}
		if sc, err = deploymentStick(&bo, a[0], opts, valid); err != nil {
			return err
		}
		a, inputs = nil, opts.trust
	}
	if opts.relay {
		if err := relayStick(&bo, a[0]); err != nil {
			return err
		}
		a, inputs = nil, opts.trust
	}
	progress, done := s.mediaProgress("building", "writing", "checking")
	bo.Progress = progress
	var (
		res *media.BuildResult
		wr  *media.WriteResult
	)
	if opts.out != "" {
		if err := checkOutput("--out", opts.out, opts.force, inputs...); err != nil {
			return err
		}
		res, err = media.Build(opts.out, a, bo)
	} else {
		if err := checkOutput("--device", opts.device, true, inputs...); err != nil {
			return err
		}
		res, wr, err = media.BuildDevice(opts.device, a, bo, media.WriteOptions{Force: opts.force, Progress: progress})
		var te *media.DeviceTooSmallError
		if errors.As(err, &te) {
			err = fmt.Errorf("--size %s is larger than %s (%s)", opts.size, te.Device, display.Bytes(te.DeviceSize))
		}
	}
	done()
	if err != nil {
		return err
	}
	if opts.asJSON {
		return writeJSON(s.out, map[string]any{"build": res, "write": wr, "deployment": sc})
	}
	printBuild(s, res)
	if sc != nil {
		fmt.Fprintf(s.out, "deployment  %d: %s %s, phase %d of %d; assignments for %d device(s), valid until %s\n", sc.Deployment.ID,
			display.Untrusted(sc.Deployment.Bundle), display.Untrusted(sc.Deployment.Version), sc.Deployment.Phase+1, len(sc.Deployment.Phases), len(sc.Devices), sc.Expires.Format(time.RFC3339))
		for _, d := range sc.Devices {
			fmt.Fprintf(s.out, "device      %s %s (phase %d)\n", d.ID[:16], display.Untrusted(d.Name), d.Phase)
		}
	}
	if wr != nil {
		fmt.Fprintf(s.out, "written     %s to %s, read back and checked (%s)\n", display.Bytes(wr.Bytes), wr.Device, wr.Digest)
	}
	return nil
}

// deploymentStick fills bo for a stick built for deployment
// opts.deployment of the mirror dir: its bundle from the mirror store,
// the signed assignments and the mirror metadata.
func deploymentStick(bo *media.BuildOptions, dir string, opts mediaBuildOptions, valid time.Duration) (*fleet.StickContent, error) {
	ctx := context.Background()
	st, err := openMirror(dir)
	if err != nil {
		return nil, err
	}
	db, err := openDeviceStore(ctx, dir, opts.database)
	if err != nil {
		return nil, err
	}
	l := &fleet.Local{DB: db, Store: st}
	defer l.Close()
	sc, err := l.StickFor(ctx, opts.deployment, time.Now(), valid)
	if err != nil {
		return nil, err
	}
	if bo.From, err = stick.OpenLayout(l.Store.Dir()); err != nil {
		return nil, err
	}
	bo.FromBundles = []digest.Digest{digest.Digest(sc.Deployment.Digest)}
	bo.Deployment = &media.DeploymentFiles{ID: sc.Deployment.ID, Assignments: sc.Assignments, TUF: sc.TUF}
	return sc, nil
}

// relayStick fills bo for a stick built from what the site mirror dir
// relays: the upstream's assignments and metadata as they came, and the
// bundles they name (by manifest digest) from the mirror store.
func relayStick(bo *media.BuildOptions, dir string) error {
	st, err := openMirror(dir)
	if err != nil {
		return err
	}
	rc, err := st.RelayStick(time.Now())
	if err != nil {
		return err
	}
	if rc == nil {
		return fmt.Errorf("mirror %s relays no valid assignment: sync it from a stick built for an upstream deployment ('ferry mirror sync %s --from STICK')", dir, dir)
	}
	for _, d := range rc.Digests {
		bo.FromBundles = append(bo.FromBundles, digest.Digest(d))
	}
	if bo.From, err = stick.OpenLayout(st.Dir()); err != nil {
		return err
	}
	bo.Deployment = &media.DeploymentFiles{ID: rc.Deployment, Assignments: rc.Assignments, TUF: rc.TUF}
	return nil
}

func printBuild(s *streams, r *media.BuildResult) {
	fmt.Fprintf(s.out, "image       %s (%s, FAT32 %q at %s)\n", r.Path, display.Bytes(r.Size), r.Label, display.Bytes(r.PartitionOffset))
	for _, b := range r.Bundles {
		fmt.Fprintf(s.out, "bundle      %s %s for %s (%s, %d signature(s))\n", display.Untrusted(b.Name), display.Untrusted(b.Version), display.Untrusted(strings.Join(b.DeviceTypes, ", ")), display.Bytes(b.Size), b.Signatures)
		if d := b.Delta; d != nil {
			fmt.Fprintf(s.out, "delta       %s\n", display.Untrusted(d.Describe()))
			if d.Note != "" {
				fmt.Fprintf(s.out, "note        %s\n", display.Untrusted(d.Note))
			}
		}
	}
	if len(r.Trust) > 0 {
		fmt.Fprintf(s.out, "trust       %s\n", strings.Join(r.Trust, ", "))
	}
	fmt.Fprintf(s.out, "free        %s\n", display.Bytes(r.Free))
}

// mediaWriteOptions are the flags of the command newMediaWriteCommand builds; runMediaWrite does its work.
type mediaWriteOptions struct {
	force, asJSON bool
}

func newMediaWriteCommand(s *streams) *cobra.Command {
	var opts mediaWriteOptions
	cmd := &cobra.Command{
		Use:   "write IMAGE DEVICE [--force]",
		Short: "Copy a stick image onto a stick, then read it back and compare",
		Long: `Copy IMAGE onto DEVICE (a block device such as /dev/sdb, or a file), sync,
then read it back and compare SHA-256 digests. A disk that is mounted (itself,
a partition, or a volume on it) or that holds the running system is refused
unless --force.`,
		Args: args(2, "an IMAGE and a DEVICE"),
		RunE: func(_ *cobra.Command, a []string) error { return runMediaWrite(s, opts, a) },
	}
	cmd.Flags().BoolVar(&opts.force, "force", false, "write even to a mounted disk or the system's disk")
	cmd.Flags().BoolVar(&opts.asJSON, "json", false, "print the result as JSON")
	return cmd
}

// runMediaWrite runs the command once cobra has parsed its flags.
func runMediaWrite(s *streams, opts mediaWriteOptions, a []string) error {
	if err := checkOutput("DEVICE", a[1], true, a[0]); err != nil {
		return err
	}
	progress, done := s.mediaProgress("writing", "checking")
	res, err := media.Write(a[0], a[1], media.WriteOptions{Force: opts.force, Progress: progress})
	done()
	if err != nil {
		return err
	}
	if opts.asJSON {
		return writeJSON(s.out, res)
	}
	fmt.Fprintf(s.out, "written     %s to %s\n", display.Bytes(res.Bytes), res.Device)
	fmt.Fprintf(s.out, "checked     read back %s\n", res.Digest)
	return nil
}

// mediaInspectOptions are the flags of the command newMediaInspectCommand builds; runMediaInspect does its work.
type mediaInspectOptions struct {
	policy policyOptions
	asJSON bool
	quick  bool
}

func newMediaInspectCommand(s *streams) *cobra.Command {
	var opts mediaInspectOptions
	cmd := &cobra.Command{
		Use:   "inspect IMAGE|DEVICE [--key PUB | --trust ROOT] [--quick] [--json]",
		Short: "Show the bundles on a stick, whether they are valid, trust files and reports",
		Long: `Open a stick image or device read-only and list its bundles (versions, device
types) and whether they are valid: with --key or --trust each bundle is
judged as a device would, its signatures and then every payload part against
its signed digest, to the end of the archive (exit 3 if one is refused).
With --quick only the signatures are judged and a bundle whose signatures
hold shows "signatures only", not "valid". Without keys bundles are
"unchecked". A damaged partition table or filesystem is an error that says
what is wrong.`,
		Args: args(1, "an IMAGE or DEVICE"),
		RunE: func(_ *cobra.Command, a []string) error { return runMediaInspect(s, opts, a) },
	}
	opts.policy.addFlags(cmd)
	cmd.Flags().BoolVar(&opts.quick, "quick", false, "judge the signatures only, without reading the payloads")
	cmd.Flags().BoolVar(&opts.asJSON, "json", false, "print JSON")
	return cmd
}

// runMediaInspect runs the command once cobra has parsed its flags.
func runMediaInspect(s *streams, opts mediaInspectOptions, a []string) error {
	o := media.InspectOptions{Quick: opts.quick}
	if len(opts.policy.keys) > 0 || opts.policy.trust != "" {
		p, err := opts.policy.policy()
		if err != nil {
			return err
		}
		o.Policy = &p
	} else if opts.policy.deviceType != "" {
		return cliexit.UsageError{Err: errors.New("--device-type needs --key or --trust")}
	}
	in, err := media.Inspect(a[0], o)
	if err != nil {
		return err
	}
	if opts.asJSON {
		err = writeJSON(s.out, in)
	} else {
		printInspection(s, in)
	}
	if err != nil {
		return err
	}
	for _, b := range in.Bundles {
		if b.Status != media.StatusValid && b.Status != media.StatusSignaturesOnly && b.Status != media.StatusUnchecked {
			return fmt.Errorf("%s: %s %s refused (%s): %w", a[0], b.Name, b.Version, b.Status, errRejected)
		}
	}
	return nil
}

func printInspection(s *streams, in *media.Inspection) {
	fmt.Fprintf(s.out, "stick       %s: %s, FAT32 %q, %s, %s free\n", display.Untrusted(in.Path), strings.ToUpper(in.PartitionTable), in.Label, display.Bytes(in.PartitionSize), display.Bytes(in.Free))
	for _, w := range in.Warnings {
		fmt.Fprintf(s.out, "warning     %s\n", display.Untrusted(w))
	}
	tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tDEVICE TYPES\tSIZE\tSIGNATURES\tSTATUS")
	for _, b := range in.Bundles {
		status := b.Status
		if status == media.StatusSignaturesOnly {
			status = "signatures only"
		}
		if b.Verdict != nil {
			status = fmt.Sprintf("%s (%d of %d)", status, b.Verdict.ValidKeys, b.Verdict.Threshold)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", display.OrDash(display.Untrusted(b.Name)), display.OrDash(display.Untrusted(b.Version)), display.OrDash(display.Untrusted(strings.Join(b.DeviceTypes, ","))), display.Bytes(b.Size), b.Signatures, status)
	}
	tw.Flush()
	for _, b := range in.Bundles {
		if d := b.Delta; d != nil {
			what := "the full bundle for devices on other versions"
			if d.Only {
				what = "delta only: devices on other versions skip it"
			}
			fmt.Fprintf(s.out, "%s %s: delta for bases %s: %d of %d payload parts on the stick, %s\n", display.OrDash(display.Untrusted(b.Name)), display.OrDash(display.Untrusted(b.Version)),
				display.Untrusted(strings.Join(d.Bases, ", ")), d.Present, d.Parts, what)
		}
		if b.Reason != "" {
			fmt.Fprintf(s.out, "%s %s: %s\n", display.OrDash(display.Untrusted(b.Name)), display.OrDash(display.Untrusted(b.Version)), display.Untrusted(b.Reason))
		}
	}
	if len(in.Trust) > 0 {
		fmt.Fprintf(s.out, "trust       %s\n", display.Untrusted(strings.Join(in.Trust, ", ")))
	}
	bad := 0
	for _, r := range in.Reports {
		if r.Error != "" {
			bad++
		}
	}
	fmt.Fprintf(s.out, "reports     %d", len(in.Reports))
	if bad > 0 {
		fmt.Fprintf(s.out, " (%d unreadable)", bad)
	}
	if len(in.Reports) > 0 {
		fmt.Fprintf(s.out, " (ferry media reports %s)", display.Untrusted(in.Path))
	}
	fmt.Fprintln(s.out)
}

// mediaReportsOptions are the flags of the command newMediaReportsCommand builds; runMediaReports does its work.
type mediaReportsOptions struct {
	asJSON bool
}

func newMediaReportsCommand(s *streams) *cobra.Command {
	var opts mediaReportsOptions
	cmd := &cobra.Command{
		Use:   "reports IMAGE|DEVICE|DIR [--json]",
		Short: "Collect the install reports devices wrote onto a stick",
		Long: `List the reports in a stick's ferry/reports/: from an image or device, or from
a directory (a mounted stick, its ferry/ directory, or a reports directory).
A file that is not a valid report is listed with why.`,
		Args: args(1, "an IMAGE, DEVICE or DIR"),
		RunE: func(_ *cobra.Command, a []string) error { return runMediaReports(s, opts, a) },
	}
	cmd.Flags().BoolVar(&opts.asJSON, "json", false, "print JSON")
	return cmd
}

// runMediaReports runs the command once cobra has parsed its flags.
func runMediaReports(s *streams, opts mediaReportsOptions, a []string) error {
	rows, err := media.Reports(a[0])
	if err != nil {
		return err
	}
	if opts.asJSON {
		return writeJSON(s.out, rows)
	}
	tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tBUNDLE\tBEFORE\tAFTER\tRESULT\tFINISHED\tERROR")
	for _, row := range rows {
		if row.Report == nil {
			fmt.Fprintf(tw, "-\t-\t-\t-\tunreadable\t-\t%s\n", display.OneLine(row.Error, 80))
			continue
		}
		r := row.Report
		b := r.Bundle
		if r.BundleVersion != "" {
			b += " " + r.BundleVersion
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", display.Untrusted(r.DeviceID), display.OrDash(display.Untrusted(b)), display.OrDash(display.Untrusted(r.VersionBefore)), display.OrDash(display.Untrusted(r.VersionAfter)), display.Untrusted(string(r.Result)), display.OrDash(display.Time(r.Finished)), display.OneLine(r.Error, 80))
	}
	return tw.Flush()
}
