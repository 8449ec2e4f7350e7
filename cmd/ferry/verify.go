package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ferry-update/ferry/audit"
	"github.com/ferry-update/ferry/internal/cliexit"
	"github.com/ferry-update/ferry/internal/display"
	"github.com/ferry-update/ferry/verify"
)

type policyOptions struct {
	keys       []string
	trust      string // a trust root: keys and threshold from its release role
	threshold  int
	deviceType string
	deep       bool
}

func (o *policyOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringArrayVarP(&o.keys, "key", "k", nil, "trusted public key (PEM; repeatable)")
	f.StringVar(&o.trust, "trust", "", "trust root (JSON) instead of --key: its release role's keys and threshold; revoked keys never count")
	f.IntVar(&o.threshold, "threshold", 1, "distinct trusted keys that must have signed")
	f.StringVarP(&o.deviceType, "device-type", "d", "", "refuse the bundle unless it fits this device type")
}

func (o *policyOptions) policy() (verify.Policy, error) {
	if o.trust != "" {
		return o.trustPolicy()
	}
	if len(o.keys) == 0 {
		return verify.Policy{}, cliexit.UsageError{Err: errors.New("at least one --key is required")}
	}
	if o.threshold < 1 || o.threshold > len(o.keys) {
		return verify.Policy{}, cliexit.UsageError{Err: fmt.Errorf("--threshold %d: want 1 to the number of --key (%d)", o.threshold, len(o.keys))}
	}
	keys, err := loadPublicKeys(o.keys)
	if err != nil {
		return verify.Policy{}, err
	}
	return verify.Policy{Keys: keys, Threshold: o.threshold, DeviceType: o.deviceType, Deep: o.deep}, nil
}

// verifyOptions are the flags of the command newVerifyCommand builds; runVerify does its work.
type verifyOptions struct {
	policy     policyOptions
	asJSON     bool
	identities []string
}

func newVerifyCommand(s *streams) *cobra.Command {
	var opts verifyOptions
	cmd := &cobra.Command{
		Use:   "verify FILE (--key PUB [--threshold N] | --trust ROOT) [--device-type T]",
		Short: "Check a bundle's signatures, device type and every payload digest in one pass",
		Long: `Check a bundle in one streaming pass: the signatures over the manifest against
the trusted keys and threshold, the device type, then every payload part
against its signed digest (with --deep, also the decompressed content;
encrypted payloads are then decrypted with --identity).
Exit 0 only when all of it holds; 3 when the bundle is refused.`,
		Args: args(1, "a bundle FILE or - for stdin"),
		RunE: func(_ *cobra.Command, a []string) error { return runVerify(s, opts, a) },
	}
	opts.policy.addFlags(cmd)
	cmd.Flags().BoolVar(&opts.policy.deep, "deep", false, "also decompress every payload and check its content digest")
	cmd.Flags().StringArrayVarP(&opts.identities, "identity", "i", nil, "age identity file that decrypts encrypted payloads for --deep (repeatable)")
	cmd.Flags().BoolVar(&opts.asJSON, "json", false, "print JSON (also when the bundle is refused)")
	return cmd
}

// runVerify runs the command once cobra has parsed its flags.
func runVerify(s *streams, opts verifyOptions, a []string) error {
	p, err := opts.policy.policy()
	if err != nil {
		return err
	}
	if len(opts.identities) > 0 && !p.Deep {
		return cliexit.UsageError{Err: errors.New("--identity decrypts payloads for --deep; without --deep the parts are checked as ciphertext")}
	}
	if p.Identities, err = loadIdentities(opts.identities); err != nil {
		return err
	}
	in, done, err := s.openInput(a[0])
	if err != nil {
		return err
	}
	defer done()
	rep, verr := verify.Bundle(in, p)
	if opts.asJSON {
		out := map[string]any{"file": a[0], "ok": verr == nil, "report": rep}
		if verr != nil {
			out["error"] = verr.Error()
		}
		if err := writeJSON(s.out, out); err != nil {
			return err
		}
	} else if rep != nil {
		printReport(s, rep, p)
	}
	if verr != nil {
		return fmt.Errorf("verify %s: %w", a[0], verr)
	}
	if !opts.asJSON {
		fmt.Fprintf(s.out, "OK          %s %s verified\n", display.Untrusted(rep.Config.Name), display.Untrusted(rep.Config.Version))
	}
	return nil
}

func printReport(s *streams, rep *verify.Report, p verify.Policy) {
	printConfig(s.out, rep.Manifest, rep.Config)
	if res := rep.Signatures; res != nil {
		fmt.Fprintf(s.out, "signatures  %d, %d of %d required trusted key(s) valid\n", len(res.Signatures), res.ValidKeys, res.Threshold)
		for i, sr := range res.Signatures {
			fmt.Fprintf(s.out, "  %d. %s\n", i+1, audit.SignatureLine(sr))
		}
	}
	if p.DeviceType != "" {
		fmt.Fprintf(s.out, "device      %s: %s\n", p.DeviceType, map[bool]string{true: "fits", false: "does NOT fit"}[rep.Config.Fits(p.DeviceType)])
	}
	var checked []string
	for _, pl := range rep.Payloads {
		if pl.Verified {
			checked = append(checked, display.Untrusted(pl.Name))
		}
	}
	fmt.Fprintf(s.out, "payloads    %d of %d checked %s\n", len(checked), len(rep.Payloads), strings.Join(checked, ", "))
	fmt.Fprintf(s.out, "checked     %s\n", display.OrDash(strings.Join(rep.Checked, ", ")))
}
