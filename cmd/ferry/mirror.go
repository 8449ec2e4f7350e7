package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-update/ferry/devices"
	"github.com/ferry-update/ferry/internal/cliexit"
	"github.com/ferry-update/ferry/internal/display"
	"github.com/ferry-update/ferry/media"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/mirror/server"
	"github.com/ferry-update/ferry/tufrepo"
	"github.com/ferry-update/ferry/verify"
)

func newMirrorCommand(s *streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mirror",
		Short: "Keep bundles in a local mirror directory and serve it to devices",
		Long: `A mirror is a directory (an OCI image layout) holding bundles, their
signatures and referrers. Fill it with 'add' and 'sync', look at it with
'list', and serve it read-only over the OCI distribution API with 'serve':
devices, skopeo and crane pull from it as from any registry.

The mirror publishes TUF metadata (root, targets, snapshot, timestamp) under
/tuf/ so devices can tell a fresh mirror from a frozen or replayed one:
'add' and 'sync' re-sign it, 'serve' keeps the short-lived timestamp fresh,
and 'refresh' does so from cron. Devices report their state to 'serve'
(check-ins), and 'ingest' takes the reports devices wrote onto a stick;
'devices' lists them.`,
	}
	cmd.AddCommand(newMirrorInitCommand(s), newMirrorAddCommand(s), newMirrorSyncCommand(s), newMirrorListCommand(s), newMirrorServeCommand(s),
		newMirrorRefreshCommand(s), newMirrorDevicesCommand(s), newMirrorIngestCommand(s), newMirrorAddRootCommand(s))
	return cmd
}

func openMirror(dir string) (*mirror.Store, error) {
	st, err := mirror.Open(dir)
	if errors.Is(err, mirror.ErrNotStore) {
		return nil, cliexit.UsageError{Err: err}
	}
	return st, err
}

func newMirrorInitCommand(s *streams) *cobra.Command {
	var key, rootKey, tsExpiry string
	cmd := &cobra.Command{
		Use:   "init DIR --key KEY [--root-key ROOTKEY] [--timestamp-expiry 24h]",
		Short: "Make DIR an empty mirror that signs its metadata with KEY",
		Long: `Make DIR an empty mirror. KEY (unencrypted: the mirror signs unattended) is
kept in DIR/keys/mirror.key and signs the TUF targets, the list of bundles,
whenever 'add' or 'sync' changes it. An online key is generated into
DIR/keys/online.key; it signs the snapshot and the short-lived timestamp,
which 'serve' and 'refresh' re-sign on their own.

ROOTKEY signs the mirror TUF root, which names those keys; keep it offline (it may
be encrypted, and is not stored). Without --root-key, KEY signs the root too.
Install DIR/tuf/root.json (the mirror TUF root) on the devices: it is how
they trust this mirror. It is not the ferry trust root (ferry trust init),
which says whose signatures on bundles count.`,
		Args: args(1, "a mirror DIR"),
		RunE: func(_ *cobra.Command, a []string) error {
			if key == "" {
				return cliexit.UsageError{Err: errors.New("--key KEY (the mirror's private key, PEM) is required")}
			}
			pemBytes, err := os.ReadFile(key)
			if err != nil {
				return fmt.Errorf("read mirror key: %w", err)
			}
			if verify.IsEncryptedPEM(pemBytes) {
				return cliexit.UsageError{Err: fmt.Errorf("mirror key %s is encrypted: the mirror signs unattended, give it a key of its own without a passphrase (ferry key generate --out mirror)", key)}
			}
			k, err := verify.ParsePrivateKey(pemBytes, nil)
			if err != nil {
				return fmt.Errorf("mirror key %s: %w", key, err)
			}
			pub, err := verify.NewPublicKey(k.Public())
			if err != nil {
				return err
			}
			opts := tufrepo.InitOptions{}
			if tsExpiry != "" {
				if opts.Expiries.Timestamp, err = parseDays(tsExpiry); err != nil {
					return cliexit.UsageError{Err: fmt.Errorf("--timestamp-expiry: %w", err)}
				}
			}
			if rootKey != "" {
				if opts.RootKey, err = s.loadPrivateKey(rootKey); err != nil {
					return err
				}
			}
			st, err := mirror.InitWith(a[0], pemBytes, opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.out, "mirror      %s\n", a[0])
			fmt.Fprintf(s.out, "key id      %s (%s)\n", pub.ID, pub.Algorithm)
			fmt.Fprintf(s.out, "tuf root    %s (install it on devices to trust this mirror)\n", st.TUFRootPath())
			return nil
		},
	}
	cmd.Flags().StringVarP(&key, "key", "k", "", "the mirror's private key (PEM, unencrypted): signs the TUF targets")
	cmd.Flags().StringVar(&rootKey, "root-key", "", "offline key that signs the mirror TUF root (default: --key)")
	cmd.Flags().StringVar(&tsExpiry, "timestamp-expiry", "24h", "how long a TUF timestamp is valid: a duration such as 24h, or Nd")
	return cmd
}

func newMirrorAddCommand(s *streams) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "add DIR FILE...",
		Short: "Copy bundle files into the mirror",
		Args: func(_ *cobra.Command, a []string) error {
			if len(a) < 2 {
				return cliexit.UsageError{Err: fmt.Errorf("want a mirror DIR and at least one bundle FILE, got %d argument(s)", len(a))}
			}
			return nil
		},
		RunE: func(_ *cobra.Command, a []string) error {
			st, err := openMirror(a[0])
			if err != nil {
				return err
			}
			var results []*mirror.AddResult
			err = st.Batch(func(add func(string) (*mirror.AddResult, error)) error {
				for _, f := range a[1:] {
					r, err := add(f)
					if err != nil {
						return err
					}
					results = append(results, r)
					if !asJSON {
						printAdded(s, r)
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(s.out, results)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the results as JSON")
	return cmd
}

func newMirrorAddRootCommand(s *streams) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "add-root DIR ROOT.json",
		Short: "Publish a ferry trust root to devices polling the mirror",
		Long: `Store the ferry trust root ROOT.json (written by 'ferry trust') as DIR/roots/N.root.json,
N its version; 'serve' answers it at /ferry/v1/roots/N.root.json, and devices
fetch the versions after theirs before they look for bundles (verify/TRUST.md
§10). The first root added must be signed by its own root keys; each later one
must follow the highest stored by the chain rule. Adding a version again with
the same signed content changes nothing.`,
		Args: args(2, "a mirror DIR and a ROOT.json"),
		RunE: func(_ *cobra.Command, a []string) error {
			st, err := openMirror(a[0])
			if err != nil {
				return err
			}
			data, err := os.ReadFile(a[1])
			if err != nil {
				return fmt.Errorf("read trust root: %w", err)
			}
			res, err := st.AddRoot(data)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(s.out, res)
			}
			what := "added"
			if res.Unchanged {
				what = "unchanged"
			}
			fmt.Fprintf(s.out, "%-9s trust root v%d %s\n", what, res.Version, res.Path)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func printAdded(s *streams, r *mirror.AddResult) {
	what := "unchanged"
	switch {
	case r.New:
		what = "added"
	case r.SignaturesAdded > 0:
		what = "signed"
	}
	fmt.Fprintf(s.out, "%-9s %s:%s %s (%d blobs moved, %d signatures, %d new)\n", what, r.Repository, r.Tag, r.Digest, r.BlobsAdded, r.Signatures, r.SignaturesAdded)
}

func newMirrorSyncCommand(s *streams) *cobra.Command {
	var (
		from   string
		reg    registryFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "sync DIR --from SOURCE",
		Short: "Bring the mirror up to date from a registry, a bundle file, a directory of bundles or a stick image",
		Long: `Bring the mirror up to date from SOURCE:
  oci://HOST/REPO       every tag of the repository that is a ferry bundle
  oci://HOST/REPO:TAG   that bundle
  FILE                  a bundle file
  DIR                   every bundle file in DIR and below; from another mirror
                        directory also its trust roots (roots/N.root.json)
  IMAGE|DEVICE          every bundle on a stick ('ferry media build')
Only missing blobs move. A sync that is interrupted leaves no half-written
blob in the mirror, and the next sync continues where it stopped.`,
		Args: args(1, "a mirror DIR"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if from == "" {
				return cliexit.UsageError{Err: errors.New("--from SOURCE is required")}
			}
			if strings.HasPrefix(from, "oci://") {
				if _, err := parseOCIRef(from); err != nil {
					return err
				}
			}
			st, err := openMirror(a[0])
			if err != nil {
				return err
			}
			var res *mirror.SyncResult
			if media.IsDiskImage(from) {
				res, err = media.SyncInto(cmd.Context(), st, from)
			} else {
				res, err = st.Sync(cmd.Context(), from, mirror.SyncOptions{Registry: reg.options()})
			}
			if asJSON && res != nil {
				if jerr := writeJSON(s.out, res); jerr != nil && err == nil {
					err = jerr
				}
			} else if res != nil {
				for _, r := range res.Roots {
					what := "added"
					if r.Unchanged {
						what = "unchanged"
					}
					fmt.Fprintf(s.out, "%-9s trust root v%d %s\n", what, r.Version, r.Path)
				}
				for _, r := range res.Bundles {
					printAdded(s, r)
				}
				for _, sk := range res.Skipped {
					fmt.Fprintf(s.out, "skipped   %s: %s\n", display.Untrusted(sk.Source), display.Untrusted(sk.Reason))
				}
				for _, f := range res.Failed {
					fmt.Fprintf(s.out, "FAILED    %s: %s\n", display.Untrusted(f.Source), display.Untrusted(f.Reason))
				}
			}
			return err
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "oci://HOST/REPO[:TAG], a bundle file, a directory, or a stick image or device")
	reg.addFlags(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func newMirrorListCommand(s *streams) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list DIR",
		Short: "List the bundles in the mirror",
		Args:  args(1, "a mirror DIR"),
		RunE: func(_ *cobra.Command, a []string) error {
			st, err := openMirror(a[0])
			if err != nil {
				return err
			}
			es, err := st.List()
			if err != nil {
				return err
			}
			if asJSON {
				if es == nil {
					es = []mirror.Entry{}
				}
				return writeJSON(s.out, es)
			}
			tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "REPOSITORY\tTAG\tDIGEST\tSIZE\tSIGNATURES\tDEVICE TYPES")
			for _, e := range es {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", e.Repository, e.Tag, e.Digest.Encoded()[:12], display.Bytes(e.Size), e.Signatures, display.Untrusted(strings.Join(e.DeviceTypes, ",")))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newMirrorServeCommand(s *streams) *cobra.Command {
	var (
		listen, cert, key string
		refresh           time.Duration
		noCheckins        bool
	)
	lim := server.DefaultLimits()
	cmd := &cobra.Command{
		Use:   "serve DIR --listen ADDR [--tls-cert C --tls-key K] [--refresh-interval 1h]",
		Short: "Serve the mirror read-only over the OCI distribution API, with TUF metadata and check-ins",
		Long: `Serve the mirror read-only over the OCI distribution API (pull, tags list,
referrers): devices, skopeo and crane pull oci://ADDR/<bundle name>:<version>.
Bundles added or synced while it runs are served at once.

Also served: the TUF metadata under /tuf/ (root.json, N.root.json,
timestamp.json, snapshot.json, targets.json), whose timestamp is re-signed
every --refresh-interval (at most a quarter of the timestamp expiry; 0: never,
leave it to 'ferry mirror refresh' from cron), and device check-ins at
POST /ferry/v1/checkin, stored in DIR/devices.db (the last 100 per device).

The network is not trusted, so every client is bounded: each read and
write has a deadline (a download may be slow as long as it keeps moving),
connections are capped in all and per client IP, and check-ins are
rate-limited per client IP (429 with Retry-After) and capped in devices
(507 for new ones beyond --max-devices). When a limit bites the log says so,
at most once a minute per kind. A check-in the database cannot take (a
full disk) gets 503; the TUF metadata is still re-signed.

ADDR is HOST:PORT, or unix:PATH for a Unix socket (behind a proxy). Stop it
with Ctrl-C or SIGTERM.`,
		Args: args(1, "a mirror DIR"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if (cert == "") != (key == "") {
				return cliexit.UsageError{Err: errors.New("--tls-cert and --tls-key go together")}
			}
			if refresh < 0 {
				return cliexit.UsageError{Err: errors.New("--refresh-interval must not be negative")}
			}
			st, err := openMirror(a[0])
			if err != nil {
				return err
			}
			return runServe(cmd.Context(), s, st, serveOptions{listen: listen, cert: cert, key: key, refresh: refresh, checkins: !noCheckins, limits: lim})
		},
	}
	f := cmd.Flags()
	f.DurationVar(&lim.ReadHeaderTimeout, "header-timeout", lim.ReadHeaderTimeout, "how long a client may take to send a request's headers")
	f.DurationVar(&lim.BodyTimeout, "body-timeout", lim.BodyTimeout, "how long a client may take to send a request body (a check-in)")
	f.DurationVar(&lim.IdleTimeout, "idle-timeout", lim.IdleTimeout, "how long an idle kept-alive connection stays open")
	f.DurationVar(&lim.WriteProgressTimeout, "write-timeout", lim.WriteProgressTimeout, "how long each 256 KiB of a response may take to go out (slow downloads that keep moving finish)")
	f.IntVar(&lim.MaxConns, "max-conns", lim.MaxConns, "open connections in all; more wait (0: no cap)")
	f.IntVar(&lim.MaxConnsPerClient, "max-conns-per-client", lim.MaxConnsPerClient, "open connections per client IP; more are closed (0: no cap)")
	f.Float64Var(&lim.CheckinRate, "checkin-rate", lim.CheckinRate, "check-ins per second per client IP over time; more get 429 (0: no limit)")
	f.IntVar(&lim.CheckinBurst, "checkin-burst", lim.CheckinBurst, "check-ins one client IP may make at once")
	f.IntVar(&lim.MaxDevices, "max-devices", lim.MaxDevices, "devices the mirror records; check-ins of new ones get 507 beyond (0: no cap)")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:5000", "address to listen on: HOST:PORT or unix:PATH")
	cmd.Flags().StringVar(&cert, "tls-cert", "", "TLS certificate (PEM); serves https")
	cmd.Flags().StringVar(&key, "tls-key", "", "TLS private key (PEM)")
	cmd.Flags().DurationVar(&refresh, "refresh-interval", time.Hour, "how often to re-sign the TUF timestamp; 0: never")
	cmd.Flags().BoolVar(&noCheckins, "no-checkins", false, "refuse device check-ins (404) instead of storing them")
	return cmd
}

type serveOptions struct {
	listen, cert, key string
	refresh           time.Duration
	checkins          bool
	limits            server.Limits
}

func runServe(ctx context.Context, s *streams, st *mirror.Store, o serveOptions) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	so := server.Options{Store: st, Checkins: o.checkins, Limits: o.limits, RefreshInterval: o.refresh, TLSCert: o.cert, TLSKey: o.key}
	so.Logf = func(format string, a ...any) {
		fmt.Fprintf(s.err, "ferry: %s\n", display.UntrustedLines(fmt.Sprintf(format, a...)))
	}
	so.Refreshed = func(res *tufrepo.Status, err error) {
		if err != nil {
			fmt.Fprintf(s.err, "ferry: warning: re-signing the TUF metadata failed (devices refuse it once it expires): %v\n", err)
			return
		}
		for _, w := range res.Warnings {
			fmt.Fprintf(s.err, "ferry: warning: %s\n", w)
		}
	}
	ln, err := server.Listen(o.listen)
	if err != nil {
		return err
	}
	so.Serving = func() {
		fmt.Fprintf(s.err, "ferry: serving mirror %s on %s\n", st.Dir(), server.Where(ln, o.cert != ""))
	}
	return server.Serve(ctx, ln, so)
}

func newMirrorRefreshCommand(s *streams) *cobra.Command {
	var (
		tsExpiry, rootKey string
		asJSON            bool
	)
	cmd := &cobra.Command{
		Use:   "refresh DIR [--timestamp-expiry D] [--root-key ROOTKEY]",
		Short: "Re-sign the mirror's TUF timestamp (and whatever else is due), e.g. from cron",
		Long: `Re-sign the mirror's TUF metadata: the timestamp always, with a fresh
expiry; the snapshot and targets when the bundles changed or half their
lifetime is gone. 'serve' does this on its own; run refresh from cron when
the mirror is served some other way (a static web server, a copy).

--timestamp-expiry changes how long timestamps are valid from now on.
--root-key renews the mirror TUF root (a new version, signed by the root key):
devices follow the chain of root versions on their next check.`,
		Args: args(1, "a mirror DIR"),
		RunE: func(_ *cobra.Command, a []string) error {
			var o tufrepo.RefreshOptions
			if tsExpiry != "" {
				d, err := parseDays(tsExpiry)
				if err != nil {
					return cliexit.UsageError{Err: fmt.Errorf("--timestamp-expiry: %w", err)}
				}
				o.TimestampExpiry = d
			}
			st, err := openMirror(a[0])
			if err != nil {
				return err
			}
			if rootKey != "" {
				if o.RootKey, err = s.loadPrivateKey(rootKey); err != nil {
					return err
				}
			}
			res, err := st.Refresh(o)
			if err != nil {
				return err
			}
			for _, w := range res.Warnings {
				fmt.Fprintf(s.err, "ferry: warning: %s\n", w)
			}
			if asJSON {
				return writeJSON(s.out, res)
			}
			printTUFStatus(s, res)
			return nil
		},
	}
	cmd.Flags().StringVar(&tsExpiry, "timestamp-expiry", "", "set how long TUF timestamps are valid (a duration such as 24h, or Nd)")
	cmd.Flags().StringVar(&rootKey, "root-key", "", "renew the mirror TUF root with this key (the mirror's root key)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func printTUFStatus(s *streams, st *tufrepo.Status) {
	tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tVERSION\tEXPIRES\tKEY\t")
	for _, r := range []struct {
		name string
		rs   tufrepo.RoleStatus
	}{{"root", st.Root}, {"targets", st.Targets}, {"snapshot", st.Snapshot}, {"timestamp", st.Timestamp}} {
		what := ""
		if r.rs.Signed {
			what = "re-signed"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", r.name, r.rs.Version, display.Time(r.rs.Expires), display.ShortID(r.rs.KeyID), what)
	}
	tw.Flush()
	fmt.Fprintf(s.out, "%d bundles listed\n", st.Bundles)
}

func newMirrorDevicesCommand(s *streams) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "devices DIR [--json]",
		Short: "List the devices that checked in with the mirror",
		Long: `List the devices that reported to 'ferry mirror serve' (POST
/ferry/v1/checkin), or onto a stick whose reports were ingested ('ferry
mirror ingest'), with what each last said: the bundle and version it
runs, how its last install ended, when the device says it made the report
(REPORTED, its own clock: informative, it may be wrong or forged) and when
the mirror received it (LAST SEEN, the mirror's clock, which orders the
reports). The reports are kept in DIR/devices.db (SQLite).`,
		Args: args(1, "a mirror DIR"),
		RunE: func(_ *cobra.Command, a []string) error {
			st, err := openMirror(a[0])
			if err != nil {
				return err
			}
			ds, err := devices.ListDir(st.Dir())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(s.out, ds)
			}
			if len(ds) == 0 {
				fmt.Fprintln(s.err, "ferry: no device has checked in with this mirror yet")
				return nil
			}
			now := time.Now()
			tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "DEVICE\tTYPE\tBUNDLE\tVERSION\tRESULT\tREPORTED\tLAST SEEN\tERROR")
			for _, d := range ds {
				bundle := d.Bundle
				if bundle == "" {
					bundle = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s (%s ago)\t%s\n", display.Untrusted(d.ID), display.Untrusted(d.Type), display.Untrusted(bundle), display.Untrusted(d.Version), display.Untrusted(d.Result),
					display.Time(d.ReportedAt), display.Time(d.LastSeen), now.Sub(d.LastSeen).Round(time.Second), oneLine(d.Error, 60))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newMirrorIngestCommand(s *streams) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ingest DIR IMAGE|DEVICE|STICKDIR [--json]",
		Short: "Record the install reports devices wrote onto a stick as their check-ins",
		Long: `Read the reports in a stick's ferry/reports/ (from an image, a device, a
mounted stick or a copy of one, as 'ferry media reports' does) and record
each in DIR/devices.db as a check-in of its device: the bundle, the version
after the install, the result, the time it finished and the error, filed
under the device type the report names. Reports of older agents name none:
they get the type the device last checked in with, else "unknown". A report
recorded before (the same device, time and bundle) is not recorded again,
so a stick may be ingested twice. A file that is not a valid report is
listed as rejected and recorded nowhere.
'ferry mirror devices DIR' then lists the devices.`,
		Args: args(2, "a mirror DIR and a stick IMAGE, DEVICE or directory"),
		RunE: func(_ *cobra.Command, a []string) error {
			st, err := openMirror(a[0])
			if err != nil {
				return err
			}
			res, err := media.IngestReports(st, a[1])
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(s.out, res)
			}
			for _, r := range res.Rejected {
				fmt.Fprintf(s.out, "rejected  %s: %s\n", display.Untrusted(r.Source), display.Untrusted(r.Reason))
			}
			fmt.Fprintf(s.out, "%d reports: %d new, %d recorded before\n", res.Reports, res.New, res.Known)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// oneLine shortens untrusted text to one line of at most n runes for a
// table, then escapes what is left that a terminal would act on
// (display.Untrusted).
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		s = string(r[:n-1]) + "…"
	}
	return display.Untrusted(s)
}
