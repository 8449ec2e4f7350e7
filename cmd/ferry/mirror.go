package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-update/ferry/fleet"
	"github.com/ferry-update/ferry/internal/cliexit"
	"github.com/ferry-update/ferry/internal/display"
	"github.com/ferry-update/ferry/media"
	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/mirror/operator"
	"github.com/ferry-update/ferry/mirror/server"
	"github.com/ferry-update/ferry/signing"
	"github.com/ferry-update/ferry/signing/pkcs11uri"
	"github.com/ferry-update/ferry/tufrepo"
	"github.com/ferry-update/ferry/verify"
)

func newMirrorCommand() *cobra.Command {
	return &cobra.Command{
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
}

func openMirror(dir string) (*mirror.Store, error) {
	st, err := mirror.Open(dir)
	if errors.Is(err, mirror.ErrNotStore) && isMirrorURL(dir) {
		return nil, cliexit.UsageError{Err: fmt.Errorf("%s is a running mirror's URL: this command works on the mirror directory", dir),
			Hint: "run it on the mirror's host with its directory; the fleet commands that take a URL are listed by 'ferry fleet --help'"}
	}
	if errors.Is(err, mirror.ErrNotStore) {
		return nil, cliexit.UsageError{Err: err}
	}
	return st, err
}

// mirrorInitOptions are the flags of 'ferry mirror init'.
type mirrorInitOptions struct {
	key, rootKey, tsExpiry string
}

func newMirrorInitCommand(s *streams) *cobra.Command {
	var o mirrorInitOptions
	cmd := &cobra.Command{
		Use:   "init DIR --key KEY [--root-key ROOTKEY] [--timestamp-expiry 24h]",
		Short: "Make DIR an empty mirror that signs its metadata with KEY",
		Long: `Make DIR an empty mirror. KEY (unencrypted: the mirror signs unattended) is
kept in DIR/keys/mirror.key and signs the TUF targets, the list of bundles,
whenever 'add' or 'sync' changes it. KEY may be a key in a PKCS#11 token
(a pkcs11: URI with pin-source=FILE, or FERRY_PKCS11_PIN set wherever the
mirror signs) or a Vault transit key (hashivault://NAME, with VAULT_ADDR
and VAULT_TOKEN set wherever the mirror signs): then only the URI is kept. An online key is generated into
DIR/keys/online.key; it signs the snapshot and the short-lived timestamp,
which 'serve' and 'refresh' re-sign on their own.

ROOTKEY signs the mirror TUF root, which names those keys; keep it offline (it may
be encrypted, and is not stored). Without --root-key, KEY signs the root too.
Install DIR/tuf/root.json (the mirror TUF root) on the devices: it is how
they trust this mirror. It is not the ferry trust root (ferry trust init),
which says whose signatures on bundles count.`,
		Args: args(1, "a mirror DIR"),
		RunE: func(_ *cobra.Command, a []string) error { return runMirrorInit(s, o, a[0]) },
	}
	cmd.Flags().StringVarP(&o.key, "key", "k", "", "the mirror's private key (PEM, unencrypted): signs the TUF targets")
	cmd.Flags().StringVar(&o.rootKey, "root-key", "", "offline key that signs the mirror TUF root (default: --key)")
	cmd.Flags().StringVar(&o.tsExpiry, "timestamp-expiry", "24h", "how long a TUF timestamp is valid: a duration such as 24h, or Nd")
	return cmd
}

// runMirrorInit makes dir a mirror.
func runMirrorInit(s *streams, o mirrorInitOptions, dir string) error {
	if o.key == "" {
		return cliexit.UsageError{Err: errors.New("--key KEY (the mirror's private key, PEM) is required")}
	}
	pemBytes, pub, err := s.mirrorKey(o.key)
	if err != nil {
		return err
	}
	opts := tufrepo.InitOptions{}
	if o.tsExpiry != "" {
		if opts.Expiries.Timestamp, err = display.ParseDuration(o.tsExpiry); err != nil {
			return cliexit.UsageError{Err: fmt.Errorf("--timestamp-expiry: %w", err)}
		}
	}
	if o.rootKey != "" {
		if opts.RootKey, err = s.loadPrivateKey(o.rootKey); err != nil {
			return err
		}
	}
	st, err := mirror.InitWith(dir, pemBytes, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.out, "mirror      %s\n", dir)
	fmt.Fprintf(s.out, "key id      %s (%s)\n", pub.ID, pub.Algorithm)
	fmt.Fprintf(s.out, "tuf root    %s (install it on devices to trust this mirror)\n", st.TUFRootPath())
	return nil
}

// mirrorKey reads the key 'mirror init --key' names: what the mirror
// keeps in DIR/keys/mirror.key (the PEM, or the URI of a key in a token
// or a KMS) and its public key. The mirror signs unattended: the key must
// open without a passphrase or a PIN typed in.
func (s *streams) mirrorKey(ref string) ([]byte, *verify.PublicKey, error) {
	if signing.IsReference(ref) {
		if !signing.Unattended(ref) {
			return nil, nil, cliexit.UsageError{Err: fmt.Errorf("mirror key %s: the mirror signs unattended: put the PIN in the URI (pin-source=FILE) or set %s", pkcs11uri.Redact(ref), signing.PINEnv)}
		}
		k, err := signing.Open(context.Background(), ref, signing.Options{What: "mirror key"})
		if err != nil {
			return nil, nil, err
		}
		defer k.Close()
		pub, err := verify.NewPublicKey(k.Public())
		return []byte(ref + "\n"), pub, err
	}
	pemBytes, err := os.ReadFile(ref)
	if err != nil {
		return nil, nil, fmt.Errorf("read mirror key: %w", err)
	}
	if verify.IsEncryptedPEM(pemBytes) {
		return nil, nil, cliexit.UsageError{Err: fmt.Errorf("mirror key %s is encrypted: the mirror signs unattended, give it a key of its own without a passphrase (ferry key generate --out mirror)", ref)}
	}
	k, err := verify.ParsePrivateKey(pemBytes, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("mirror key %s: %w", ref, err)
	}
	pub, err := verify.NewPublicKey(k.Public())
	return pemBytes, pub, err
}

// mirrorAddOptions are the flags of 'ferry mirror add'.
type mirrorAddOptions struct {
	asJSON bool
}

func newMirrorAddCommand(s *streams) *cobra.Command {
	var o mirrorAddOptions
	cmd := &cobra.Command{
		Use:   "add DIR FILE...",
		Short: "Copy bundle files into the mirror",
		Args: func(_ *cobra.Command, a []string) error {
			if len(a) < 2 {
				return cliexit.UsageError{Err: fmt.Errorf("want a mirror DIR and at least one bundle FILE, got %d argument(s)", len(a))}
			}
			return nil
		},
		RunE: func(_ *cobra.Command, a []string) error { return runMirrorAdd(s, o, a[0], a[1:]) },
	}
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print the results as JSON")
	return cmd
}

// runMirrorAdd adds the bundle files to the mirror in dir, publishing
// its TUF metadata once.
func runMirrorAdd(s *streams, o mirrorAddOptions, dir string, files []string) error {
	st, err := openMirror(dir)
	if err != nil {
		return err
	}
	var results []*mirror.AddResult
	err = st.Batch(func(add func(string) (*mirror.AddResult, error)) error {
		for _, f := range files {
			r, err := add(f)
			if err != nil {
				return err
			}
			results = append(results, r)
			if !o.asJSON {
				printAdded(s, r)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if o.asJSON {
		return writeJSON(s.out, results)
	}
	return nil
}

// mirrorAddRootOptions are the flags of 'ferry mirror add-root'.
type mirrorAddRootOptions struct {
	asJSON bool
}

func newMirrorAddRootCommand(s *streams) *cobra.Command {
	var o mirrorAddRootOptions
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
		RunE: func(_ *cobra.Command, a []string) error { return runMirrorAddRoot(s, o, a[0], a[1]) },
	}
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print the result as JSON")
	return cmd
}

// runMirrorAddRoot stores the trust root in file rootPath in the mirror
// in dir.
func runMirrorAddRoot(s *streams, o mirrorAddRootOptions, dir, rootPath string) error {
	st, err := openMirror(dir)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(rootPath)
	if err != nil {
		return fmt.Errorf("read trust root: %w", err)
	}
	res, err := st.AddRoot(data)
	if err != nil {
		return err
	}
	if o.asJSON {
		return writeJSON(s.out, res)
	}
	printRootAdded(s, res)
	return nil
}

func printRootAdded(s *streams, r *mirror.AddRootResult) {
	what := "added"
	if r.Unchanged {
		what = "unchanged"
	}
	fmt.Fprintf(s.out, "%-9s trust root v%d %s\n", what, r.Version, r.Path)
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
	if r.BytesReused > 0 {
		fmt.Fprintf(s.out, "%-9s %s fetched, %s of chunk packs rebuilt from chunks the mirror held\n", "", display.Bytes(r.BytesFetched), display.Bytes(r.BytesReused))
	}
}

// mirrorSyncOptions are the flags of 'ferry mirror sync'.
type mirrorSyncOptions struct {
	from   string
	reg    registryFlags
	asJSON bool
	// From a running mirror's URL: its API token, and whether it may
	// cross the network over plain http.
	tokenFile string
	plainHTTP bool
}

func newMirrorSyncCommand(s *streams) *cobra.Command {
	var o mirrorSyncOptions
	cmd := &cobra.Command{
		Use:   "sync DIR --from SOURCE",
		Short: "Bring the mirror up to date from a registry, a bundle file, a directory of bundles or a stick image",
		Long: `Bring the mirror up to date from SOURCE:
  oci://HOST/REPO       every tag of the repository that is a ferry bundle
  oci://HOST/REPO:TAG   that bundle
  FILE                  a bundle file
  DIR                   every bundle file in DIR and below
  MIRROR|STICK DIR      the bundles of another mirror directory (and its trust
                        roots, roots/N.root.json) or of a mounted stick
  IMAGE|DEVICE          every bundle on a stick ('ferry media build')
  https://HOST[:PORT]   a running upstream mirror ('ferry mirror serve
                        --console'), relayed: see below
Only missing blobs move. A chunk pack of a --delta bundle is rebuilt from the
chunks the mirror holds in other versions of the bundle and the new chunks,
fetched by range (checked against the pack's signed digest; fetched whole if
it does not match). A sync that is interrupted leaves no half-written blob in
the mirror, and the next sync continues where it stopped.

From a stick built for an upstream mirror's deployment ('ferry media build
--deployment'), or from a running upstream mirror's URL, DIR becomes a site
mirror that relays the upstream's fleet (docs/fleet.md §13) in DIR/relay/:
the upstream's TUF metadata, checked as its devices check it (the first
upstream root seen is trusted from then on; no rollback), and the signed
assignments of its deployments. From a URL a sync also
  - sends up first every report kept in DIR/relay/ferry/reports/ (the signed
    check-ins of the upstream's devices, from sticks or from 'ferry mirror
    serve --relay'), as they are, to the upstream's check-in endpoint, and
    removes those it acknowledged (recorded, known, pending or refused);
    the others stay and go with the next sync;
  - takes every bundle the upstream's TUF targets list (its OCI API), its
    timestamp and snapshot (which the site's devices need fresh: sync more
    often than the upstream's timestamp expires, a day), and the signed
    assignments of every device its running deployments assign now.
The URL needs an API token of the upstream (read-only is enough) in a file
(--token-file) or FERRY_TOKEN; the bundles and metadata need none. Exit code
4: the upstream refused the token.`,
		Args: args(1, "a mirror DIR"),
		RunE: func(cmd *cobra.Command, a []string) error { return runMirrorSync(cmd.Context(), s, o, a[0]) },
	}
	cmd.Flags().StringVar(&o.from, "from", "", "oci://HOST/REPO[:TAG], a bundle file, a directory, a stick image or device, or an upstream mirror's https:// URL")
	cmd.Flags().StringVar(&o.tokenFile, "token-file", "", "with an upstream mirror's URL: the file holding its API token (else env "+tokenEnv+")")
	cmd.Flags().BoolVar(&o.plainHTTP, "token-over-http", false, "with an http:// URL of another machine: send the token anyway, in clear")
	o.reg.addFlags(cmd)
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print the result as JSON")
	return cmd
}

// runMirrorSync brings the mirror in dir up to date from o.from.
func runMirrorSync(ctx context.Context, s *streams, o mirrorSyncOptions, dir string) error {
	if o.from == "" {
		return cliexit.UsageError{Err: errors.New("--from SOURCE is required")}
	}
	if strings.HasPrefix(o.from, "oci://") {
		if _, err := parseOCIRef(o.from); err != nil {
			return err
		}
	}
	so := mirror.SyncOptions{Registry: o.reg.options(), Images: media.Images{}}
	if isMirrorURL(o.from) {
		c, err := apiClient(o.from, o.tokenFile, o.plainHTTP)
		if err != nil {
			return err
		}
		so.Upstream, so.HTTP = c, c.HTTP()
	}
	st, err := openMirror(dir)
	if err != nil {
		return err
	}
	res, err := st.Sync(ctx, o.from, so)
	if o.asJSON && res != nil {
		if jerr := writeJSON(s.out, res); jerr != nil && err == nil {
			err = jerr
		}
	} else if res != nil {
		printSynced(s, res)
	}
	return err
}

func printSynced(s *streams, res *mirror.SyncResult) {
	for _, r := range res.Roots {
		printRootAdded(s, r)
	}
	for _, r := range res.Bundles {
		printAdded(s, r)
	}
	for _, sk := range res.Skipped {
		fmt.Fprintf(s.out, "skipped   %s: %s\n", display.Untrusted(sk.Source), display.Untrusted(sk.Reason))
	}
	if r := res.Relay; r != nil {
		fmt.Fprintf(s.out, "upstream  mirror %s: %d metadata file(s), assignments for %d device(s) kept in the relay\n", r.Upstream[:16], len(r.Metadata), len(r.Assignments))
		for _, sk := range r.Skipped {
			fmt.Fprintf(s.out, "skipped   %s: %s\n", display.Untrusted(sk.Source), display.Untrusted(sk.Reason))
		}
	}
	if r := res.Reports; r != nil {
		fmt.Fprintf(s.out, "reports   %d sent up: %d recorded, %d known, %d pending, %d refused; %d kept for the next sync\n",
			len(r.Recorded)+len(r.Known)+len(r.Pending)+len(r.Refused), len(r.Recorded), len(r.Known), len(r.Pending), len(r.Refused), len(r.Kept))
		for _, sk := range r.Refused {
			fmt.Fprintf(s.out, "refused   %s: %s\n", display.Untrusted(sk.Source), display.Untrusted(sk.Reason))
		}
		for _, sk := range r.Kept {
			fmt.Fprintf(s.out, "kept      %s: %s\n", display.Untrusted(sk.Source), display.Untrusted(sk.Reason))
		}
	}
	for _, f := range res.Failed {
		fmt.Fprintf(s.out, "FAILED    %s: %s\n", display.Untrusted(f.Source), display.Untrusted(f.Reason))
	}
}

// mirrorListOptions are the flags of 'ferry mirror list'.
type mirrorListOptions struct {
	asJSON bool
}

func newMirrorListCommand(s *streams) *cobra.Command {
	var o mirrorListOptions
	cmd := &cobra.Command{
		Use:   "list DIR",
		Short: "List the bundles in the mirror",
		Args:  args(1, "a mirror DIR"),
		RunE:  func(_ *cobra.Command, a []string) error { return runMirrorList(s, o, a[0]) },
	}
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print JSON")
	return cmd
}

// runMirrorList lists the bundles in the mirror in dir.
func runMirrorList(s *streams, o mirrorListOptions, dir string) error {
	st, err := openMirror(dir)
	if err != nil {
		return err
	}
	es, err := st.List()
	if err != nil {
		return err
	}
	if o.asJSON {
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
}

// mirrorServeOptions are the flags of 'ferry mirror serve'.
type mirrorServeOptions struct {
	listen, cert, key string
	refresh           time.Duration
	noCheckins        bool
	acceptLegacy      bool
	relay             bool
	database          string
	limits            server.Limits
	// The operators' console and API.
	console, secureCookies, plainConsole bool
	memoryLimit                          string
}

func newMirrorServeCommand(s *streams) *cobra.Command {
	o := mirrorServeOptions{limits: server.DefaultLimits()}
	lim := &o.limits
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

Check-ins are signed by each device's key and bound to this mirror and a
counter: forged, replayed and foreign ones (meant for another mirror) are
refused and logged with the reason. A device's check-ins are recorded once
it is enrolled ('ferry mirror devices'); before, it is listed as pending.
Unsigned check-ins of agents older than device keys are refused (401)
unless --accept-legacy records them as legacy devices, apart from the
others (docs/fleet.md).

The network is not trusted, so every client is bounded: each read and
write has a deadline (a download may be slow as long as it keeps moving),
connections are capped in all and per client IP, and check-ins are
rate-limited per client IP (429 with Retry-After) and capped in devices
(507 for new ones beyond --max-devices). When a limit bites the log says so,
at most once a minute per kind. A check-in the database cannot take (a
full disk) gets 503; the TUF metadata is still re-signed.

With --relay, a site mirror serves its relay ('ferry mirror sync DIR --from
URL|STICK') to the devices of the upstream mirror: the upstream's TUF metadata
under /tuf/ in place of this mirror's own, their assignments as the upstream
signed them, and their check-ins kept verbatim in DIR/relay/ferry/reports/
for the next sync up (docs/fleet.md §13).

ADDR is HOST:PORT, or unix:PATH for a Unix socket (behind a proxy). Stop it
with Ctrl-C or SIGTERM.`,
		Args: args(1, "a mirror DIR"),
		RunE: func(cmd *cobra.Command, a []string) error { return runMirrorServe(cmd.Context(), s, o, a[0]) },
	}
	f := cmd.Flags()
	f.DurationVar(&lim.ReadHeaderTimeout, "header-timeout", lim.ReadHeaderTimeout, "how long a client may take to send a request's headers")
	f.DurationVar(&lim.BodyTimeout, "body-timeout", lim.BodyTimeout, "how long a client may take to send a request body (a check-in)")
	f.DurationVar(&lim.IdleTimeout, "idle-timeout", lim.IdleTimeout, "how long an idle kept-alive connection stays open")
	f.DurationVar(&lim.WriteProgressTimeout, "write-timeout", lim.WriteProgressTimeout, "how long each 256 KiB of a response may take to go out (slow downloads that keep moving finish)")
	f.IntVar(&lim.MaxConns, "max-conns", lim.MaxConns, "open connections in all: at the cap the one idle longest is closed for a new one, or new ones wait (0: no cap)")
	f.IntVar(&lim.MaxConnsPerClient, "max-conns-per-client", lim.MaxConnsPerClient, "open connections per client IP; more are closed (0: no cap)")
	f.Float64Var(&lim.CheckinRate, "checkin-rate", lim.CheckinRate, "check-ins per second per client IP over time; more get 429 (0: no limit)")
	f.IntVar(&lim.CheckinBurst, "checkin-burst", lim.CheckinBurst, "check-ins one client IP may make at once")
	f.IntVar(&lim.MaxDevices, "max-devices", lim.MaxDevices, "devices the mirror records; check-ins of new ones get 507 beyond (0: no cap)")
	f.StringVar(&o.listen, "listen", "127.0.0.1:5000", "address to listen on: HOST:PORT or unix:PATH")
	f.StringVar(&o.cert, "tls-cert", "", "TLS certificate (PEM); serves https")
	f.StringVar(&o.key, "tls-key", "", "TLS private key (PEM)")
	f.DurationVar(&o.refresh, "refresh-interval", time.Hour, "how often to re-sign the TUF timestamp; 0: never")
	f.BoolVar(&o.noCheckins, "no-checkins", false, "refuse device check-ins (404) instead of storing them")
	addDatabaseFlag(cmd, &o.database)
	f.BoolVar(&o.relay, "relay", false, "serve the relay (DIR/relay/, 'ferry mirror sync --from URL|STICK') to the upstream mirror's devices: its TUF metadata under /tuf/ in place of this mirror's, their assignments as it signed them, their check-ins kept for it")
	f.BoolVar(&o.acceptLegacy, "accept-legacy", false, "record unsigned check-ins of older agents as legacy devices (not authenticated) instead of refusing them")
	f.BoolVar(&o.console, "console", false, "serve the operators' web console (/console/) and fleet API (/api/v1/); accounts: 'ferry fleet users'")
	f.BoolVar(&o.secureCookies, "secure-cookies", false, "mark console cookies Secure on plain http too: the mirror is behind a TLS proxy")
	f.BoolVar(&o.plainConsole, "console-over-http", false, "serve --console over plain http on a non-loopback address (passwords and tokens cross the network in clear)")
	f.StringVar(&o.memoryLimit, "memory-limit", "64MiB", "soft limit on the memory the Go runtime holds: near it the garbage collector runs sooner, so bursts (delta streams made, many check-ins) leave no high-water mark ('off': none; env GOMEMLIMIT, when set, wins)")
	return cmd
}

// setMemoryLimit applies --memory-limit: without one, Go's collector
// lets the heap grow to twice what is live, and a mirror's peak memory
// is set by its busiest second rather than by what it keeps.
func setMemoryLimit(limit string) error {
	if limit == "" || os.Getenv("GOMEMLIMIT") != "" || strings.EqualFold(limit, "off") {
		return nil // not asked for (callers other than the flag), or left to the environment
	}
	n, err := display.ParseSize(limit)
	if err != nil || n == 0 {
		return cliexit.UsageError{Err: fmt.Errorf("--memory-limit %q: want a size such as 64MiB, or off", limit)}
	}
	debug.SetMemoryLimit(n)
	return nil
}

// runMirrorServe serves the mirror in dir until ctx ends, SIGINT or
// SIGTERM.
func runMirrorServe(ctx context.Context, s *streams, o mirrorServeOptions, dir string) error {
	if (o.cert == "") != (o.key == "") {
		return cliexit.UsageError{Err: errors.New("--tls-cert and --tls-key go together")}
	}
	if o.refresh < 0 {
		return cliexit.UsageError{Err: errors.New("--refresh-interval must not be negative")}
	}
	if err := setMemoryLimit(o.memoryLimit); err != nil {
		return err
	}
	st, err := openMirror(dir)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	so := server.Options{Store: st, Checkins: !o.noCheckins, AcceptLegacy: o.acceptLegacy, Limits: o.limits, RefreshInterval: o.refresh, TLSCert: o.cert, TLSKey: o.key, Relay: o.relay}
	so.Logf = func(format string, a ...any) {
		fmt.Fprintf(s.err, "ferry: %s\n", display.UntrustedLines(fmt.Sprintf(format, a...)))
	}
	if (!o.noCheckins && o.database != "") || o.console {
		d, err := openDeviceStore(ctx, st.Dir(), o.database)
		if err != nil {
			return err
		}
		defer d.Close()
		if !o.noCheckins {
			so.Devices = d
		}
		if o.console {
			so.Operator = operator.New(operator.Options{Fleet: &fleet.Local{DB: d, Store: st}, Accounts: operator.NewAccounts(d), SecureCookies: o.secureCookies, Logf: so.Logf,
				Bundles: func(context.Context) ([]string, error) { return bundleRefs(st) }})
		}
	}
	so.Refreshed = func(res *tufrepo.Status, err error) {
		if err != nil {
			fmt.Fprintf(s.err, "ferry: warning: re-signing the TUF metadata failed (devices refuse it once it expires): %v\n", err)
			return
		}
		printWarnings(s, res.Warnings)
	}
	ln, err := server.Listen(o.listen)
	if err != nil {
		return err
	}
	if o.console && o.cert == "" && !o.plainConsole && !server.Private(ln) {
		ln.Close()
		return cliexit.UsageError{Err: fmt.Errorf("--console on %s over plain http would send operators' passwords and tokens in clear", o.listen),
			Hint: "serve https (--tls-cert, --tls-key), or listen on 127.0.0.1 or unix:PATH behind a TLS proxy (with --secure-cookies), or accept the risk with --console-over-http"}
	}
	so.Serving = func() {
		where := server.Where(ln, o.cert != "")
		fmt.Fprintf(s.err, "ferry: serving mirror %s on %s\n", st.Dir(), where)
		if o.relay {
			fmt.Fprintf(s.err, "ferry: relaying for the upstream mirror: its metadata under /tuf/, its devices' check-ins kept in %s\n", st.RelayDir())
		}
		if o.console {
			fmt.Fprintf(s.err, "ferry: console at %s/console/, fleet API at %s/api/v1/\n", where, where)
		}
	}
	return server.Serve(ctx, ln, so)
}

// printWarnings prints warnings on stderr.
func printWarnings(s *streams, warnings []string) {
	for _, w := range warnings {
		fmt.Fprintf(s.err, "ferry: warning: %s\n", w)
	}
}

// mirrorRefreshOptions are the flags of 'ferry mirror refresh'.
type mirrorRefreshOptions struct {
	tsExpiry, rootKey string
	asJSON            bool
}

func newMirrorRefreshCommand(s *streams) *cobra.Command {
	var o mirrorRefreshOptions
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
		RunE: func(_ *cobra.Command, a []string) error { return runMirrorRefresh(s, o, a[0]) },
	}
	cmd.Flags().StringVar(&o.tsExpiry, "timestamp-expiry", "", "set how long TUF timestamps are valid (a duration such as 24h, or Nd)")
	cmd.Flags().StringVar(&o.rootKey, "root-key", "", "renew the mirror TUF root with this key (the mirror's root key)")
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print the result as JSON")
	return cmd
}

// runMirrorRefresh re-signs the TUF metadata of the mirror in dir.
func runMirrorRefresh(s *streams, o mirrorRefreshOptions, dir string) error {
	var ro tufrepo.RefreshOptions
	if o.tsExpiry != "" {
		d, err := display.ParseDuration(o.tsExpiry)
		if err != nil {
			return cliexit.UsageError{Err: fmt.Errorf("--timestamp-expiry: %w", err)}
		}
		ro.TimestampExpiry = d
	}
	st, err := openMirror(dir)
	if err != nil {
		return err
	}
	if o.rootKey != "" {
		if ro.RootKey, err = s.loadPrivateKey(o.rootKey); err != nil {
			return err
		}
	}
	res, err := st.Refresh(ro)
	if err != nil {
		return err
	}
	printWarnings(s, res.Warnings)
	if o.asJSON {
		return writeJSON(s.out, res)
	}
	printTUFStatus(s, res)
	return nil
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

// mirrorIngestOptions are the flags of 'ferry mirror ingest'.
type mirrorIngestOptions struct {
	asJSON   bool
	database string
	enroll   bool
}

func newMirrorIngestCommand(s *streams) *cobra.Command {
	var o mirrorIngestOptions
	cmd := &cobra.Command{
		Use:   "ingest DIR IMAGE|DEVICE|STICKDIR [--enroll] [--database postgres://...] [--json]",
		Short: "Record the install reports devices wrote onto a stick as their check-ins",
		Long: `Read the reports in a stick's ferry/reports/ (from an image, a device, a
mounted stick or a copy of one, as 'ferry media reports' does) and record
each in the mirror's device records (DIR/devices.db, or the PostgreSQL
database of --database or FERRY_DATABASE, as 'ferry mirror serve' uses
it) as a check-in of its device: the bundle, the version
after the install, the result, the time it finished and the error, filed
under the device type the report names. Reports of older agents name none:
they get the type the device last checked in with, else "unknown". A report
recorded before (the same device, time and bundle) is not recorded again,
so a stick may be ingested twice. A file that is not a valid report is
listed as rejected and recorded nowhere.

A report that carries its device's signed check-in is judged as one over
the network: a device the mirror has not enrolled is listed as pending and
nothing of it recorded. With --enroll, the operator who carried the stick
from the devices vouches for it: each device whose signed check-in verifies
for this mirror, and each listed in the stick's ferry/identities.jsonl
('ferry-agent identity --json' lines, read as 'ferry mirror devices enroll
--file' reads them: one bad line enrolls nothing), is enrolled (by
"stick"), and its report recorded. A rejected or revoked device stays
refused.
'ferry mirror devices DIR' then lists the devices.`,
		Args: args(2, "a mirror DIR and a stick IMAGE, DEVICE or directory"),
		RunE: func(cmd *cobra.Command, a []string) error { return runMirrorIngest(cmd.Context(), s, o, a[0], a[1]) },
	}
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print the result as JSON")
	cmd.Flags().BoolVar(&o.enroll, "enroll", false, "enroll the devices the stick carries (signed check-ins, ferry/identities.jsonl): you vouch for the stick")
	addDatabaseFlag(cmd, &o.database)
	return cmd
}

// runMirrorIngest records the reports on the stick at src in the mirror
// in dir.
func runMirrorIngest(ctx context.Context, s *streams, o mirrorIngestOptions, dir, src string) error {
	st, err := openMirror(dir)
	if err != nil {
		return err
	}
	d, err := openDeviceStore(ctx, dir, o.database)
	if err != nil {
		return err
	}
	defer d.Close()
	res, err := media.IngestReports(st, d, src, media.IngestOptions{Enroll: o.enroll})
	if err != nil {
		return err
	}
	if o.asJSON {
		return writeJSON(s.out, res)
	}
	for _, r := range res.Rejected {
		fmt.Fprintf(s.out, "rejected  %s: %s\n", display.Untrusted(r.Source), display.Untrusted(r.Reason))
	}
	for _, id := range res.Enrolled {
		fmt.Fprintf(s.out, "enrolled  %s\n", id)
	}
	fmt.Fprintf(s.out, "%d reports: %d new, %d recorded before\n", res.Reports, res.New, res.Known)
	if len(res.Enrolled) > 0 {
		fmt.Fprintf(s.out, "%d devices enrolled now (by %s)\n", len(res.Enrolled), media.EnrolledBy)
	}
	if len(res.Pending) > 0 {
		fmt.Fprintf(s.out, "%d devices not enrolled, listed as pending: if this stick came from them, ingest it again with --enroll (enrolls them, records their reports); or 'ferry fleet enroll %s ID...'\n", len(res.Pending), dir)
	}
	if res.Relayed > 0 {
		fmt.Fprintf(s.out, "%d reports of an upstream mirror's devices kept for it in %s ('ferry mirror ingest UPSTREAM %s' there)\n", res.Relayed, st.RelayDir(), st.RelayDir())
	}
	if res.Signed > 0 {
		fmt.Fprintf(s.out, "%d signed check-ins recorded as the devices' own (they count toward deployments)\n", res.Signed)
	}
	return nil
}

// bundleRefs lists the mirror's bundles as NAME:VERSION.
func bundleRefs(st *mirror.Store) ([]string, error) {
	es, err := st.List()
	refs := make([]string, 0, len(es))
	for _, e := range es {
		refs = append(refs, e.Name+":"+e.Version)
	}
	return refs, err
}
