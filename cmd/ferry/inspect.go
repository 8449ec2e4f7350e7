package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/cliexit"
	"github.com/ferry-update/ferry/internal/display"
	"github.com/ferry-update/ferry/verify"
)

// inspectOptions are the flags of the command newInspectCommand builds; runInspect does its work.
type inspectOptions struct {
	asJSON bool
}

func newInspectCommand(s *streams) *cobra.Command {
	var opts inspectOptions
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Show what a bundle holds (reads only its head; use 'ferry verify' to judge it)",
		Args:  args(1, "a bundle FILE or - for stdin"),
		RunE:  func(_ *cobra.Command, a []string) error { return runInspect(s, opts, a) },
	}
	cmd.Flags().BoolVar(&opts.asJSON, "json", false, "print JSON")
	return cmd
}

// runInspect runs the command once cobra has parsed its flags.
func runInspect(s *streams, opts inspectOptions, a []string) error {
	r, done, err := s.openBundle("inspect", a[0])
	if err != nil {
		return err
	}
	defer done()
	var claims []verify.Claims
	for _, sig := range r.Signatures() {
		claims = append(claims, verify.ReadClaims(sig))
	}
	if opts.asJSON {
		return writeJSON(s.out, map[string]any{
			"manifest": r.ManifestDigest(), "tag": r.Config().Tag(), "config": r.Config(),
			"layers": r.Manifest().Layers, "signatures": claims, "attachments": attachmentSummaries(r.Attachments()),
			"encryption": r.Encryption(),
		})
	}
	printConfig(s.out, r.ManifestDigest(), r.Config())
	if e := r.Encryption(); e != nil {
		fmt.Fprintf(s.out, "encrypted   %s to %d recipient(s): %s (age header %s)\n", e.Method, e.Recipients, strings.Join(e.Payloads, ", "), display.Bytes(e.HeaderSize))
	}
	printAttachments(s.out, r.Attachments())
	fmt.Fprintf(s.out, "signatures  %d (not checked here: run ferry verify)\n", len(claims))
	for i, c := range claims {
		if c.Error != "" {
			fmt.Fprintf(s.out, "  %d. malformed: %s\n", i+1, display.Untrusted(c.Error))
			continue
		}
		fmt.Fprintf(s.out, "  %d. key %s  signer %s  at %s\n", i+1, display.OrDash(display.Untrusted(display.ShortID(c.KeyID))), display.OrDash(display.Untrusted(c.Signer)), display.OrDash(display.Time(c.SignedAt)))
	}
	return nil
}

func printConfig(w io.Writer, d digest.Digest, c *bundle.Config) {
	fmt.Fprintf(w, "bundle      %s %s\n", display.Untrusted(c.Name), display.Untrusted(c.Version))
	fmt.Fprintf(w, "manifest    %s\n", d)
	fmt.Fprintf(w, "created     %s\n", display.Time(c.Created))
	fmt.Fprintf(w, "devices     %s\n", display.Untrusted(strings.Join(c.DeviceTypes, ", ")))
	if c.Description != "" {
		fmt.Fprintf(w, "description %s\n", display.Untrusted(c.Description))
	}
	if len(c.Provides) > 0 || len(c.Depends) > 0 {
		fmt.Fprintf(w, "provides    %s\n", componentList(c))
		for _, d := range c.Depends {
			fmt.Fprintf(w, "depends     %s\n", d)
		}
	}
	fmt.Fprintf(w, "payloads    %d\n", len(c.Payloads))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, p := range c.Payloads {
		fmt.Fprintf(tw, "  %s\t%s -> %s\t%s\t%s %s\t%d part(s)\t%s\n", display.Untrusted(p.Name), display.Untrusted(string(p.Type)), display.Untrusted(p.Target), display.Bytes(p.Size), display.Bytes(p.CompressedSize), p.Encoding(), p.Parts, p.Digest)
	}
	tw.Flush()
}

// attachmentSummary is an attachment as inspect shows it: what the config
// says, and what an SBOM says of itself.
type attachmentSummary struct {
	bundle.Attachment
	SBOM *bundle.SBOM `json:"sbom,omitempty"`
}

func attachmentSummaries(as []bundle.AttachmentData) []attachmentSummary {
	out := []attachmentSummary{}
	for _, a := range as {
		sb, _ := bundle.DetectSBOM(a.Data)
		out = append(out, attachmentSummary{Attachment: a.Attachment, SBOM: sb})
	}
	return out
}

func printAttachments(w io.Writer, as []bundle.AttachmentData) {
	if len(as) == 0 {
		return
	}
	fmt.Fprintf(w, "attachments %d\n", len(as))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, a := range attachmentSummaries(as) {
		what := "-"
		switch {
		case a.SBOM != nil:
			what = fmt.Sprintf("%s, %d component(s)", display.Untrusted(a.SBOM.Spec), a.SBOM.Components)
		case bundle.IsChunkIndex(a.MediaType):
			what = "chunk index (ferry bundle create --delta)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", display.Untrusted(a.Name), display.Untrusted(a.MediaType), display.Bytes(a.Size), what, a.Digest)
	}
	tw.Flush()
}

// extractOptions are the flags of the command newExtractCommand builds; runExtract does its work.
type extractOptions struct {
	out        string
	policy     policyOptions
	identities []string
}

func newExtractCommand(s *streams) *cobra.Command {
	var opts extractOptions
	cmd := &cobra.Command{
		Use:   "extract FILE --out DIR",
		Short: "Write a bundle's payloads into DIR, each only once its digests check out",
		Long: `Write each payload into DIR: rootfs payloads as NAME.img, files payloads as the
tree NAME/, module payloads as NAME.tar. A payload appears only after all of it
matched its signed digests. With --key, the signatures are judged first and
nothing is written unless they meet the threshold. Encrypted payloads are
decrypted with --identity, an age identity of one of their recipients,
before anything is written.`,
		Args: args(1, "a bundle FILE or - for stdin"),
		RunE: func(_ *cobra.Command, a []string) error { return runExtract(s, opts, a) },
	}
	cmd.Flags().StringVarP(&opts.out, "out", "o", "", "directory to write payloads into")
	cmd.Flags().StringArrayVarP(&opts.identities, "identity", "i", nil, "age identity file to decrypt encrypted payloads with (repeatable)")
	opts.policy.addFlags(cmd)
	return cmd
}

// runExtract runs the command once cobra has parsed its flags.
func runExtract(s *streams, opts extractOptions, a []string) error {
	if opts.out == "" {
		return cliexit.UsageError{Err: errors.New("--out is required")}
	}
	r, done, err := s.openBundle("extract", a[0])
	if err != nil {
		return err
	}
	defer done()
	if len(opts.policy.keys) > 0 || opts.policy.trust != "" {
		p, err := opts.policy.policy()
		if err != nil {
			return err
		}
		if _, err := verify.CheckHead(r, p); err != nil {
			return fmt.Errorf("extract %s: %w", a[0], err)
		}
	} else {
		fmt.Fprintln(s.err, "ferry: warning: no --key or --trust given: payload digests are checked, signatures are not")
	}
	if err := unlock(r, opts.identities); err != nil {
		return fmt.Errorf("extract %s: %w", a[0], err)
	}
	if err := os.MkdirAll(opts.out, 0o755); err != nil {
		return err
	}
	for _, at := range r.Attachments() {
		if at.MediaType == bundle.AgeHeaderMediaType {
			continue // key material for the payloads, not a document
		}
		path, err := bundle.ExtractAttachment(at, opts.out)
		if err != nil {
			return fmt.Errorf("extract %s: %w", a[0], err)
		}
		fmt.Fprintf(s.out, "%s\t%s\t%s\n", at.Name, path, at.Digest)
	}
	extracted, err := bundle.Extract(r, opts.out)
	for _, x := range extracted {
		fmt.Fprintf(s.out, "%s\t%s\t%s\n", x.Name, x.Path, x.Digest)
	}
	if err != nil {
		return fmt.Errorf("extract %s: %w", a[0], err)
	}
	return nil
}
