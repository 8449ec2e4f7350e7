package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-update/ferry/audit"
	"github.com/ferry-update/ferry/internal/atomicfile"
	"github.com/ferry-update/ferry/internal/cliexit"
	"github.com/ferry-update/ferry/transport/oci"
	"github.com/ferry-update/ferry/verify"
)

// auditOptions are the flags of ferry audit.
type auditOptions struct {
	keys       []string
	trust      string
	threshold  int
	mirrorRoot string
	html       string
	force      bool
	asJSON     bool
	reg        registryFlags
}

func (o *auditOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.trust, "trust", "", "ferry trust root (N.root.json): its release role's keys and threshold; revoked keys never count")
	f.StringArrayVarP(&o.keys, "key", "k", nil, "trusted public key (PEM; repeatable), instead of --trust")
	f.IntVar(&o.threshold, "threshold", 1, "with --key: distinct trusted keys that must have signed")
	f.StringVar(&o.mirrorRoot, "mirror-root", "", "a mirror's TUF root.json to check its metadata against (default: the mirror's own first root, trusted on first use)")
	f.StringVar(&o.html, "html", "", "also write the report as one self-contained HTML file")
	f.BoolVar(&o.force, "force", false, "replace the --html file if it exists (never an input of the command)")
	f.BoolVar(&o.asJSON, "json", false, "print the report as JSON")
	o.reg.addFlags(cmd)
}

func newAuditCommand(s *streams) *cobra.Command {
	var o auditOptions
	cmd := &cobra.Command{
		Use:   "audit TARGET (--trust ROOT | --key PUB... [--threshold N]) [--json] [--html FILE]",
		Short: "Report who signed every bundle in a file, registry, mirror or stick, with a verdict",
		Long: `Audit every bundle TARGET holds:

  FILE                 a bundle file
  oci://HOST/REPO      every tag of the repository that is a ferry bundle
                       (oci://HOST/REPO:TAG for one)
  http(s)://HOST:PORT  a mirror ('ferry mirror serve'): the bundles its
                       signed TUF metadata lists
  DIR                  a mirror directory, or a mounted stick
  stick.img | /dev/sdX a stick image or device (read without mounting)

For each bundle: name, version, device types, manifest and payload digests
and sizes, every signature (key id, algorithm, signer, time, verdict),
whether the threshold is met, attached SBOMs, and the trust root's and the
mirror metadata's versions and expiries. A bundle passes when a device with
this trust would install it from there; every payload part is read and
checked against its signed digest.

Exit 0 when every bundle passes, 3 when one fails (or none is found), 1 when
TARGET cannot be read at all.`,
		Args: args(1, "a TARGET: a bundle FILE, oci://HOST/REPO, a mirror URL or directory"),
		RunE: func(cmd *cobra.Command, a []string) error {
			return runAudit(cmd.Context(), s, a[0], o)
		},
	}
	o.addFlags(cmd)
	return cmd
}

func runAudit(ctx context.Context, s *streams, target string, o auditOptions) error {
	now := time.Now()
	opts := audit.Options{Now: now, Tool: toolVersion()}
	if o.html != "" {
		if err := checkOutput("--html", o.html, o.force, append([]string{target, o.trust, o.mirrorRoot}, o.keys...)...); err != nil {
			return err
		}
	}
	switch {
	case o.trust != "" && len(o.keys) > 0:
		return cliexit.UsageError{Err: errors.New("--trust and --key exclude each other: with --trust the keys come from the trust root")}
	case o.trust != "" && o.threshold != 1:
		return cliexit.UsageError{Err: errors.New("--trust and --threshold exclude each other: with --trust the threshold comes from the trust root's release role")}
	case o.trust != "":
		root, err := readRoot(o.trust)
		if err != nil {
			return err
		}
		// An expired root is reported (and fails every bundle); a root
		// that does not verify otherwise cannot judge anything.
		var re *verify.RootError
		if err := root.Verify(now); err != nil && !(errors.As(err, &re) && re.Kind == verify.RootExpired) {
			return refusal(&rootFileError{o.trust, err})
		}
		opts.Root = root
	case len(o.keys) > 0:
		if o.threshold < 1 || o.threshold > len(o.keys) {
			return cliexit.UsageError{Err: fmt.Errorf("--threshold %d: want 1 to the number of --key (%d)", o.threshold, len(o.keys))}
		}
		keys, err := loadPublicKeys(o.keys)
		if err != nil {
			return err
		}
		opts.Keys, opts.Threshold = keys, o.threshold
	default:
		return cliexit.UsageError{Err: errors.New("--trust ROOT or at least one --key is required: the verdict is what a device with that trust would decide")}
	}
	if strings.HasPrefix(target, oci.Scheme) {
		if _, err := parseOCIRef(target); err != nil {
			return err
		}
	}
	src, err := audit.Open(target, audit.SourceOptions{Registry: o.reg.options(), MirrorRoot: o.mirrorRoot, Now: now})
	if err != nil {
		return fmt.Errorf("audit %s: %w", target, err)
	}
	rep, err := audit.Run(ctx, src, opts)
	if err != nil {
		return err
	}
	if o.html != "" {
		if err := writeHTMLReport(o.html, rep); err != nil {
			return fmt.Errorf("audit %s: HTML report: %w", target, err)
		}
	}
	if o.asJSON {
		if err := writeJSON(s.out, rep); err != nil {
			return err
		}
	} else if err := rep.WriteText(s.out); err != nil {
		return err
	}
	if rep.OK() {
		return nil
	}
	if len(rep.Bundles) == 0 {
		return rejected{fmt.Errorf("audit %s: no bundle passed: none was found", target)}
	}
	return rejected{fmt.Errorf("audit %s: %d of %d bundle(s) failed the audit", target, rep.Failed, len(rep.Bundles))}
}

// writeHTMLReport writes the report durably: beside path, then renamed
// into place.
func writeHTMLReport(path string, rep *audit.Report) error {
	f, err := atomicfile.CreateTempPerm(path, 0o644)
	if err != nil {
		return err
	}
	if err := rep.WriteHTML(f); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	return atomicfile.Commit(f, path)
}

// toolVersion names this ferry in reports, as ferry version does.
func toolVersion() string {
	v := cliexit.BuildVersion(program.Name)
	return v.Program + " " + v.Version
}
