package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/cliexit"
	"github.com/ferry-update/ferry/internal/display"
	"github.com/ferry-update/ferry/registry"
	"github.com/ferry-update/ferry/transport/oci"
)

// registryFlags are the flags of every command that talks to a registry.
type registryFlags struct {
	plainHTTP bool
}

func (o *registryFlags) addFlags(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&o.plainHTTP, "plain-http", false, "talk http:// to the registry (loopback and test registries; credentials still come from the Docker config file)")
}

func (o *registryFlags) options() registry.Options {
	return registry.Options{PlainHTTP: o.plainHTTP}
}

// parseOCIRef checks an oci:// argument as a usage error.
func parseOCIRef(s string) (oci.Reference, error) {
	r, err := oci.ParseReference(s)
	if err != nil {
		return r, cliexit.UsageError{Err: err}
	}
	return r, nil
}

// pushOptions are the flags of 'ferry push'.
type pushOptions struct {
	reg    registryFlags
	asJSON bool
}

func newPushCommand(s *streams) *cobra.Command {
	var o pushOptions
	cmd := &cobra.Command{
		Use:   "push FILE oci://HOST/REPO[:TAG]",
		Short: "Upload a bundle and its signatures to an OCI registry",
		Long: `Upload a bundle to an OCI registry: every payload layer and the config as
blobs (skipped when the registry has them), the manifest byte for byte as
signed, under TAG (default: the bundle's version), and its signatures under
the cosign tag sha256-<digest>.sig, merged with any already there. Where the
registry has the OCI 1.1 referrers API the signatures are pushed as
referrers too. Credentials come from the Docker config file.`,
		Args: args(2, "a bundle FILE and an oci://HOST/REPO[:TAG] reference"),
		RunE: func(cmd *cobra.Command, a []string) error { return runPush(cmd.Context(), s, o, a[0], a[1]) },
	}
	o.reg.addFlags(cmd)
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print the result as JSON")
	return cmd
}

// runPush pushes the bundle file to the registry reference ref.
func runPush(ctx context.Context, s *streams, o pushOptions, file, ref string) error {
	r, err := parseOCIRef(ref)
	if err != nil {
		return err
	}
	if r.Digest != "" {
		return cliexit.UsageError{Err: errors.New("push to a tag (oci://HOST/REPO:TAG), not a digest")}
	}
	opts := o.reg.options()
	done := func() {}
	if st, err := os.Stat(file); err == nil {
		opts.Progress, done = s.progress(st.Size(), "push")
	}
	res, err := registry.Push(ctx, file, ref, opts)
	done()
	if err != nil {
		return err
	}
	if o.asJSON {
		return writeJSON(s.out, res)
	}
	fmt.Fprintf(s.out, "pushed      %s %s to %s\n", res.Name, res.Version, res.Reference)
	fmt.Fprintf(s.out, "digest      %s\n", res.Digest)
	fmt.Fprintf(s.out, "blobs       %d uploaded (%s), %d already there\n", res.BlobsUploaded, display.Bytes(res.BytesUploaded), res.BlobsPresent)
	if res.Signatures > 0 {
		fmt.Fprintf(s.out, "signatures  %d under tag %s (%d new)\n", res.Signatures, res.SignatureTag, res.SignaturesAdded)
	} else {
		fmt.Fprintf(s.out, "signatures  none: sign the bundle (ferry bundle sign) and push again\n")
	}
	switch res.Referrers {
	case registry.ReferrersPushed:
		fmt.Fprintf(s.out, "referrers   pushed (OCI 1.1)\n")
	case registry.ReferrersUnsupported:
		fmt.Fprintf(s.out, "referrers   not supported by this registry: signatures are found through the tag\n")
	}
	return nil
}

// pullOptions are the flags of 'ferry pull'.
type pullOptions struct {
	reg           registryFlags
	out           string
	force, asJSON bool
}

func newPullCommand(s *streams) *cobra.Command {
	var o pullOptions
	cmd := &cobra.Command{
		Use:   "pull oci://HOST/REPO:TAG --out FILE [--force]",
		Short: "Download a bundle and its signatures from an OCI registry into a bundle file",
		Long: `Download a bundle from an OCI registry and write it as a bundle file, with
the signatures found under its cosign tag. Every layer is checked against
its digest while it streams; FILE appears only once the whole bundle has
been written and reads back as a bundle. Pulling does not judge
signatures: run 'ferry verify' on the result.`,
		Args: args(1, "an oci://HOST/REPO:TAG reference"),
		RunE: func(cmd *cobra.Command, a []string) error { return runPull(cmd.Context(), s, o, a[0]) },
	}
	o.reg.addFlags(cmd)
	cmd.Flags().StringVarP(&o.out, "out", "o", "", "bundle file to write")
	cmd.Flags().BoolVar(&o.force, "force", false, "replace --out if it exists")
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print the result as JSON")
	return cmd
}

// runPull pulls the bundle ref names into the file o.out.
func runPull(ctx context.Context, s *streams, o pullOptions, ref string) error {
	if o.out == "" {
		return cliexit.UsageError{Err: errors.New("--out FILE is required")}
	}
	if err := checkOutput("--out", o.out, o.force); err != nil {
		return err
	}
	out := o.out
	r, err := parseOCIRef(ref)
	if err != nil {
		return err
	}
	if r.Identifier() == "" {
		return cliexit.UsageError{Err: fmt.Errorf("%s names no bundle: add :TAG or @DIGEST", ref)}
	}
	opts := o.reg.options()
	var done func()
	opts.Progress, done = s.progress(-1, "pull")
	res, err := registry.PullFile(ctx, ref, out, opts)
	done()
	if err != nil {
		return err
	}
	if o.asJSON {
		return writeJSON(s.out, map[string]any{"file": out, "pull": res})
	}
	fmt.Fprintf(s.out, "pulled      %s %s from %s\n", res.Name, res.Version, res.Reference)
	fmt.Fprintf(s.out, "digest      %s\n", res.Digest)
	fmt.Fprintf(s.out, "signatures  %d\n", res.Signatures)
	fmt.Fprintf(s.out, "file        %s\n", out)
	if res.Signatures == 0 {
		fmt.Fprintf(s.err, "ferry: warning: no signatures under tag %s (a copy made without them?): verify will refuse this bundle until they are pushed\n", bundle.SignatureTag(res.Digest))
	}
	return nil
}
