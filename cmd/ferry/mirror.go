package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-update/ferry/mirror"
	"github.com/ferry-update/ferry/verify"
)

func newMirrorCommand(s *streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mirror",
		Short: "Keep bundles in a local mirror directory and serve it to devices",
		Long: `A mirror is a directory (an OCI image layout) holding bundles, their
signatures and referrers. Fill it with 'add' and 'sync', look at it with
'list', and serve it read-only over the OCI distribution API with 'serve':
devices, skopeo and crane pull from it as from any registry.`,
	}
	cmd.AddCommand(newMirrorInitCommand(s), newMirrorAddCommand(s), newMirrorSyncCommand(s), newMirrorListCommand(s), newMirrorServeCommand(s))
	return cmd
}

func openMirror(dir string) (*mirror.Store, error) {
	st, err := mirror.Open(dir)
	if errors.Is(err, mirror.ErrNotStore) {
		return nil, usageError{err}
	}
	return st, err
}

func newMirrorInitCommand(s *streams) *cobra.Command {
	var key string
	cmd := &cobra.Command{
		Use:   "init DIR --key KEY",
		Short: "Make DIR an empty mirror that signs its metadata with KEY",
		Args:  args(1, "a mirror DIR"),
		RunE: func(_ *cobra.Command, a []string) error {
			if key == "" {
				return usageError{errors.New("--key KEY (the mirror's private key, PEM) is required")}
			}
			pemBytes, err := os.ReadFile(key)
			if err != nil {
				return fmt.Errorf("read mirror key: %w", err)
			}
			if verify.IsEncryptedPEM(pemBytes) {
				return usageError{fmt.Errorf("mirror key %s is encrypted: the mirror signs unattended, give it a key of its own without a passphrase (ferry key generate --out mirror)", key)}
			}
			k, err := verify.ParsePrivateKey(pemBytes, nil)
			if err != nil {
				return fmt.Errorf("mirror key %s: %w", key, err)
			}
			pub, err := verify.NewPublicKey(k.Public())
			if err != nil {
				return err
			}
			if _, err := mirror.Init(a[0], pemBytes); err != nil {
				return err
			}
			fmt.Fprintf(s.out, "mirror      %s\n", a[0])
			fmt.Fprintf(s.out, "key id      %s (%s)\n", pub.ID, pub.Algorithm)
			return nil
		},
	}
	cmd.Flags().StringVarP(&key, "key", "k", "", "the mirror's private key (PEM, unencrypted)")
	return cmd
}

func newMirrorAddCommand(s *streams) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "add DIR FILE...",
		Short: "Copy bundle files into the mirror",
		Args: func(_ *cobra.Command, a []string) error {
			if len(a) < 2 {
				return usageError{fmt.Errorf("want a mirror DIR and at least one bundle FILE, got %d argument(s)", len(a))}
			}
			return nil
		},
		RunE: func(_ *cobra.Command, a []string) error {
			st, err := openMirror(a[0])
			if err != nil {
				return err
			}
			var results []*mirror.AddResult
			for _, f := range a[1:] {
				r, err := st.Add(f)
				if err != nil {
					return err
				}
				results = append(results, r)
				if !asJSON {
					printAdded(s, r)
				}
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
		Short: "Bring the mirror up to date from a registry, a bundle file or a directory of bundles",
		Long: `Bring the mirror up to date from SOURCE:
  oci://HOST/REPO       every tag of the repository that is a ferry bundle
  oci://HOST/REPO:TAG   that bundle
  FILE                  a bundle file
  DIR                   every bundle file in DIR and below
Only missing blobs move. A sync that is interrupted leaves no half-written
blob in the mirror, and the next sync continues where it stopped.`,
		Args: args(1, "a mirror DIR"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if from == "" {
				return usageError{errors.New("--from SOURCE is required")}
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
			res, err := st.Sync(cmd.Context(), from, mirror.SyncOptions{Registry: reg.options()})
			if asJSON && res != nil {
				if jerr := writeJSON(s.out, res); jerr != nil && err == nil {
					err = jerr
				}
			} else if res != nil {
				for _, r := range res.Bundles {
					printAdded(s, r)
				}
				for _, sk := range res.Skipped {
					fmt.Fprintf(s.out, "skipped   %s: %s\n", sk.Source, sk.Reason)
				}
				for _, f := range res.Failed {
					fmt.Fprintf(s.out, "FAILED    %s: %s\n", f.Source, f.Reason)
				}
			}
			return err
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "oci://HOST/REPO[:TAG], a bundle file or a directory")
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
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", e.Repository, e.Tag, e.Digest.Encoded()[:12], humanBytes(e.Size), e.Signatures, strings.Join(e.DeviceTypes, ","))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newMirrorServeCommand(s *streams) *cobra.Command {
	var listen, cert, key string
	cmd := &cobra.Command{
		Use:   "serve DIR --listen ADDR [--tls-cert C --tls-key K]",
		Short: "Serve the mirror read-only over the OCI distribution API",
		Long: `Serve the mirror read-only over the OCI distribution API (pull, tags list,
referrers): devices, skopeo and crane pull oci://ADDR/<bundle name>:<version>.
Bundles added or synced while it runs are served at once. Stop it with
Ctrl-C or SIGTERM.`,
		Args: args(1, "a mirror DIR"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if (cert == "") != (key == "") {
				return usageError{errors.New("--tls-cert and --tls-key go together")}
			}
			st, err := openMirror(a[0])
			if err != nil {
				return err
			}
			return runServe(cmd.Context(), s, st, listen, cert, key)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:5000", "address to listen on")
	cmd.Flags().StringVar(&cert, "tls-cert", "", "TLS certificate (PEM); serves https")
	cmd.Flags().StringVar(&key, "tls-key", "", "TLS private key (PEM)")
	return cmd
}

func runServe(ctx context.Context, s *streams, st *mirror.Store, listen, cert, key string) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mirror.NewServer(st), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	scheme := "http"
	if cert != "" {
		scheme = "https"
	}
	fmt.Fprintf(s.err, "ferry: serving mirror %s on %s://%s\n", st.Dir(), scheme, ln.Addr())
	errc := make(chan error, 1)
	go func() {
		if cert != "" {
			errc <- srv.ServeTLS(ln, cert, key)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shutdown)
	}
}
