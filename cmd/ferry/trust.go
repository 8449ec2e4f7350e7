package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-update/ferry/internal/atomicfile"
	"github.com/ferry-update/ferry/internal/cliexit"
	"github.com/ferry-update/ferry/internal/display"
	"github.com/ferry-update/ferry/signing"
	"github.com/ferry-update/ferry/verify"
)

func newTrustCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "trust",
		Short: "Make, change and check ferry trust roots: keys, roles, thresholds, revocation",
		Long: `A ferry trust root is a signed JSON document (verify/TRUST.md) naming the keys a
device trusts, the role of each (root, release, mirror), how many must sign
(the threshold), a version and an expiry. Each change makes the next version,
which devices accept only when it is signed by a threshold of the previous
version's root keys and of its own.

Keys are given as files: a public key (.pub) or a private key (.key), whose
public half is used. --sign takes private keys; passphrases come from
FERRY_KEY_PASSPHRASE or the terminal. A key argument (KEY) is a public key
file, a key id, or a unique prefix of one (at least 8 hex digits).`,
	}
}

// rejected marks an error as a refusal: exit 3, like a refused bundle.
type rejected struct{ error }

func (r rejected) Unwrap() error      { return r.error }
func (rejected) Is(target error) bool { return target == errRejected }

// refusal wraps trust-root errors that are verdicts (expired, below
// threshold, rollback, ...) so they exit 3; malformed input stays a failure.
func refusal(err error) error {
	var re *verify.RootError
	if errors.As(err, &re) && re.Kind != verify.RootMalformed {
		return rejected{err}
	}
	return err
}

// rootFileError is an error about the trust root in file Path, so that a
// hint can name the file (an expired root: the command that renews it).
type rootFileError struct {
	Path string
	Err  error
}

func (e *rootFileError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *rootFileError) Unwrap() error { return e.Err }

// trustPolicy is `ferry verify --trust ROOT`: the keys, threshold and
// revoked keys of the root's release role.
func (o *policyOptions) trustPolicy() (verify.Policy, error) {
	if len(o.keys) > 0 {
		return verify.Policy{}, cliexit.UsageError{Err: errors.New("--trust and --key exclude each other: with --trust the keys come from the trust root")}
	}
	if o.threshold != 1 {
		return verify.Policy{}, cliexit.UsageError{Err: errors.New("--trust and --threshold exclude each other: with --trust the threshold comes from the trust root's release role")}
	}
	root, err := readRoot(o.trust)
	if err != nil {
		return verify.Policy{}, err
	}
	now := time.Now()
	if err := root.Verify(now); err != nil {
		return verify.Policy{}, refusal(&rootFileError{o.trust, err})
	}
	p, err := root.Policy(verify.RoleRelease, now)
	if err != nil {
		return verify.Policy{}, refusal(&rootFileError{o.trust, err})
	}
	p.DeviceType, p.Deep = o.deviceType, o.deep
	return p, nil
}

func readRoot(path string) (*verify.Root, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read trust root: %w", err)
	}
	r, err := verify.ParseRoot(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// trustWriteOptions are the flags of the commands that write a root.
type trustWriteOptions struct {
	sign           []string
	expires        string
	out            string
	partial        bool
	owner, purpose []string // KEY=TEXT
}

func (o *trustWriteOptions) addFlags(cmd *cobra.Command, outHelp string) {
	f := cmd.Flags()
	f.StringArrayVar(&o.sign, "sign", nil, "private key to sign the new root with (repeatable)")
	f.StringVar(&o.expires, "expires", "365d", "how long the new root is valid: Nd (days) or a Go duration such as 720h")
	f.StringVarP(&o.out, "out", "o", "", outHelp)
	f.BoolVar(&o.partial, "partial", false, "write the root even if it lacks signatures, for others to add with 'ferry trust sign'")
	f.StringArrayVar(&o.owner, "owner", nil, "KEY=NAME: the person or team who holds KEY (a key file, URI or id prefix); empty NAME removes it (repeatable)")
	f.StringArrayVar(&o.purpose, "purpose", nil, "KEY=TEXT: what KEY is for, e.g. 'root key, HSM in safe 2' (repeatable)")
}

// applyNames sets the --owner and --purpose names on the keys of signed.
// A root that names a key is spec version 2 (TRUST.md §2.1).
func (s *streams) applyNames(signed *verify.RootSigned, o *trustWriteOptions) error {
	for _, n := range []struct {
		flag   string
		values []string
	}{{"--owner", o.owner}, {"--purpose", o.purpose}} {
		for _, v := range n.values {
			key, text, ok := strings.Cut(v, "=")
			if !ok || key == "" {
				return cliexit.UsageError{Err: fmt.Errorf("%s %q: want KEY=TEXT", n.flag, v)}
			}
			id, err := s.resolveKey(*signed, key)
			if err != nil {
				return err
			}
			k, ok := signed.Keys[id]
			if !ok {
				return cliexit.UsageError{Err: fmt.Errorf("%s: key %s is not in the root", n.flag, display.ShortID(id))}
			}
			owner, purpose := k.Owner, k.Purpose
			if n.flag == "--owner" {
				owner = text
			} else {
				purpose = text
			}
			if err := signed.SetKeyNames(id, owner, purpose); err != nil {
				return cliexit.UsageError{Err: fmt.Errorf("%s %s: %w", n.flag, key, err)}
			}
		}
	}
	return nil
}

func (o *trustWriteOptions) expiry(now time.Time) (time.Time, error) {
	d, err := display.ParseDuration(o.expires)
	if err != nil {
		return time.Time{}, cliexit.UsageError{Err: fmt.Errorf("--expires: %w", err)}
	}
	return now.Add(d), nil
}

// loadKeyFile reads a public key, or the public half of a private key; for
// a private key it also returns a signer.
func (s *streams) loadKeyFile(path string) (*verify.PublicKey, *verify.Signer, error) {
	if signing.IsReference(path) {
		sg, err := s.loadSigner(path, "")
		if err != nil {
			return nil, nil, err
		}
		return sg.PublicKey(), sg, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read key: %w", err)
	}
	if pub, err := verify.ParsePublicKey(b); err == nil {
		return pub, nil, nil
	}
	sg, err := s.loadSigner(path, "")
	if err != nil {
		return nil, nil, fmt.Errorf("%s is neither a public nor a usable private key: %w", path, err)
	}
	return sg.PublicKey(), sg, nil
}

// resolveKey turns a KEY argument into a key id: a public key file, a
// full key id, or a unique prefix of the id of a key in signed.
func (s *streams) resolveKey(signed verify.RootSigned, arg string) (string, error) {
	if verify.LooksLikeKeyID(arg) {
		id, err := signed.KeyIDByPrefix(arg)
		if err != nil {
			return "", cliexit.UsageError{Err: err}
		}
		return id, nil
	}
	pub, _, err := s.loadKeyFile(arg)
	if err != nil {
		return "", err
	}
	return pub.ID, nil
}

// writeRoot writes a root durably: a reader sees the old file or the new one.
func writeRoot(path string, data []byte) error {
	return atomicfile.WriteFile(path, data, 0o644)
}

// The options of the trust commands: their flags, filled by cobra.
type (
	trustInitOptions struct {
		o                            trustWriteOptions
		rootKeys, releaseKeys, mKeys []string
		tRoot, tRelease, tMirror     int
	}
	trustAddKeyOptions struct {
		o         trustWriteOptions
		role, key string
		threshold int
	}
	trustRevokeOptions struct{ o trustWriteOptions }
	trustRenewOptions  struct{ o trustWriteOptions }
	trustRotateOptions struct {
		o             trustWriteOptions
		role          string
		remove, add   []string
		threshold     int
		revokeRemoved bool
	}
	trustSignOptions struct {
		sign      []string
		out, prev string
		partial   bool
	}
	jsonOptions struct{ asJSON bool }
)

func newTrustInitCommand(s *streams) *cobra.Command {
	var opts trustInitOptions
	cmd := &cobra.Command{
		Use:   "init --root-key K… --release-key K… [--mirror-key K…] [--threshold-root N] [--threshold-release N] [--expires 365d] [--out root.json]",
		Short: "Make version 1 of a ferry trust root",
		Long: `Make version 1 of a trust root. Each --root-key, --release-key and
--mirror-key is a public or a private key file; the private keys given as
--root-key sign the root (a root needs a threshold of its own root keys'
signatures). Root keys held elsewhere are given as .pub and sign later with
'ferry trust sign' (use --partial). The file is never overwritten.`,
		Args: args(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error { return runTrustInit(s, opts) },
	}
	f := cmd.Flags()
	f.StringArrayVar(&opts.rootKeys, "root-key", nil, "key of the root role, which signs new roots (repeatable; a private key also signs this one)")
	f.StringArrayVar(&opts.releaseKeys, "release-key", nil, "key of the release role, which signs bundles (repeatable)")
	f.StringArrayVar(&opts.mKeys, "mirror-key", nil, "key of the mirror role, which signs mirror metadata (repeatable)")
	f.IntVar(&opts.tRoot, "threshold-root", 1, "root keys that must sign the next root")
	f.IntVar(&opts.tRelease, "threshold-release", 1, "release keys that must sign a bundle")
	f.IntVar(&opts.tMirror, "threshold-mirror", 1, "mirror keys that must sign mirror metadata")
	opts.o.addFlags(cmd, "file to write (default root.json; never overwritten)")
	return cmd
}

// runTrustInit makes version 1 of a trust root.
func runTrustInit(s *streams, opts trustInitOptions) error {
	if len(opts.rootKeys) == 0 || len(opts.releaseKeys) == 0 {
		return cliexit.UsageError{Err: errors.New("at least one --root-key and one --release-key are required")}
	}
	for _, c := range []struct {
		flag string
		n    int
		keys []string
	}{{"--threshold-root", opts.tRoot, opts.rootKeys}, {"--threshold-release", opts.tRelease, opts.releaseKeys}, {"--threshold-mirror", opts.tMirror, opts.mKeys}} {
		if len(c.keys) > 0 && (c.n < 1 || c.n > len(c.keys)) {
			return cliexit.UsageError{Err: fmt.Errorf("%s %d: want 1 to the number of keys of the role (%d)", c.flag, c.n, len(c.keys))}
		}
	}
	now := time.Now()
	expires, err := opts.o.expiry(now)
	if err != nil {
		return err
	}
	signed := verify.NewRootSigned(expires)
	signers, err := s.loadSigners(opts.o.sign, "")
	if err != nil {
		return err
	}
	for _, r := range []struct {
		role      string
		files     []string
		threshold int
	}{{verify.RoleRoot, opts.rootKeys, opts.tRoot}, {verify.RoleRelease, opts.releaseKeys, opts.tRelease}, {verify.RoleMirror, opts.mKeys, opts.tMirror}} {
		for _, path := range r.files {
			pub, sg, err := s.loadKeyFile(path)
			if err != nil {
				return err
			}
			if err := signed.AddKey(r.role, pub); err != nil {
				return cliexit.UsageError{Err: fmt.Errorf("%s: %w", path, err)}
			}
			if sg != nil && r.role == verify.RoleRoot {
				signers = append(signers, sg)
			}
		}
		if len(r.files) > 0 {
			if err := signed.SetThreshold(r.role, r.threshold); err != nil {
				return err
			}
		}
	}
	if err := s.applyNames(&signed, &opts.o); err != nil {
		return err
	}
	root, err := verify.SignRoot(signed, signers...)
	if err != nil {
		return err
	}
	if err := opts.o.complete(s, root.Verify(now)); err != nil {
		return err
	}
	out := opts.o.out
	if out == "" {
		out = "root.json"
	}
	if err := writeNew(out, root.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "wrote %s: trust root v%d, expires %s\n", out, root.Version(), display.Time(root.Expires()))
	return nil
}

// complete decides, from the verdict on a new root's signatures, whether
// to write it: a root short of signatures is written only with --partial.
func (o *trustWriteOptions) complete(s *streams, verdict error) error {
	var re *verify.RootError
	if verdict == nil {
		return nil
	}
	if errors.As(verdict, &re) && re.Kind == verify.RootBelowThreshold {
		if o.partial {
			fmt.Fprintf(s.err, "ferry: warning: %v; add signatures with 'ferry trust sign'\n", verdict)
			return nil
		}
		return fmt.Errorf("%w; sign with more keys (--sign), or write it with --partial and add signatures with 'ferry trust sign'", verdict)
	}
	return verdict
}

// changeRoot reads the root at path, makes its next version with edit,
// signs it, checks that devices holding the old root would accept it, and
// writes it to --out or in place.
func (s *streams) changeRoot(path string, o *trustWriteOptions, edit func(*verify.RootSigned) error) error {
	old, err := readRoot(path)
	if err != nil {
		return err
	}
	now := time.Now()
	if err := old.CheckEditable(now); err != nil {
		return refusal(fmt.Errorf("%s: %w", path, err))
	}
	expires, err := o.expiry(now)
	if err != nil {
		return err
	}
	signed, err := old.Next(expires, func(rs *verify.RootSigned) error {
		if err := edit(rs); err != nil {
			return err
		}
		return s.applyNames(rs, o)
	})
	if err != nil {
		return err
	}
	signers, err := s.loadSigners(o.sign, "")
	if err != nil {
		return err
	}
	next, verdict, err := old.SignNext(signed, now, signers...)
	if err != nil {
		return err
	}
	if err := o.complete(s, verdict); err != nil {
		return err
	}
	out := o.out
	if out == "" {
		out = path
	}
	if err := writeRoot(out, next.Bytes()); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "wrote %s: trust root v%d, expires %s\n", out, next.Version(), display.Time(next.Expires()))
	if verdict == nil {
		fmt.Fprintf(s.out, "devices holding v%d accept it: signed by a threshold of v%d's root keys and of its own\n", old.Version(), old.Version())
	}
	return nil
}

const outInPlace = "file to write the new version to (default: replace ROOT)"

func newTrustAddKeyCommand(s *streams) *cobra.Command {
	var opts trustAddKeyOptions
	cmd := &cobra.Command{
		Use:   "add-key ROOT --role R --key PUB [--threshold N] --sign K…",
		Short: "Make the next root version with one more key in a role",
		Args:  args(1, "a trust ROOT file"),
		RunE:  func(_ *cobra.Command, a []string) error { return runTrustAddKey(s, opts, a) },
	}
	cmd.Flags().StringVar(&opts.role, "role", "", "role to add the key to: root, release or mirror")
	cmd.Flags().StringVar(&opts.key, "key", "", "the key to add (public or private key file)")
	cmd.Flags().IntVar(&opts.threshold, "threshold", 0, "new threshold of the role (default: unchanged)")
	opts.o.addFlags(cmd, outInPlace)
	return cmd
}

// runTrustAddKey makes the next version of root a[0] with one more key.
func runTrustAddKey(s *streams, opts trustAddKeyOptions, a []string) error {
	if opts.role == "" || opts.key == "" {
		return cliexit.UsageError{Err: errors.New("--role and --key are required")}
	}
	pub, _, err := s.loadKeyFile(opts.key)
	if err != nil {
		return err
	}
	return s.changeRoot(a[0], &opts.o, func(r *verify.RootSigned) error {
		if err := r.AddKey(opts.role, pub); err != nil {
			return cliexit.UsageError{Err: err}
		}
		return setThreshold(r, opts.role, opts.threshold)
	})
}

func setThreshold(r *verify.RootSigned, role string, n int) error {
	if n == 0 {
		return nil
	}
	if keys := len(r.Roles[role].KeyIDs); n < 0 || n > keys {
		return cliexit.UsageError{Err: fmt.Errorf("--threshold %d: want 1 to the %d key(s) role %s will have", n, keys, role)}
	}
	return r.SetThreshold(role, n)
}

func newTrustRevokeCommand(s *streams) *cobra.Command {
	var opts trustRevokeOptions
	cmd := &cobra.Command{
		Use:   "revoke ROOT KEY… --sign K…",
		Short: "Make the next root version with keys revoked",
		Long: `Make the next root version with keys revoked. A revoked key stays listed in
its roles, so audits can name it, but its signatures never count again, on
bundles or on later roots, and it cannot be added back. Bundles signed only by
it are refused until re-signed by another key ('ferry trust rotate' adds one).`,
		Args: func(_ *cobra.Command, a []string) error {
			if len(a) < 2 {
				return cliexit.UsageError{Err: fmt.Errorf("want a trust ROOT file and at least one KEY, got %d argument(s)", len(a))}
			}
			return nil
		},
		RunE: func(_ *cobra.Command, a []string) error { return runTrustRevoke(s, opts, a) },
	}
	opts.o.addFlags(cmd, outInPlace)
	return cmd
}

// runTrustRevoke makes the next version of root a[0] with the keys a[1:] revoked.
func runTrustRevoke(s *streams, opts trustRevokeOptions, a []string) error {
	return s.changeRoot(a[0], &opts.o, func(r *verify.RootSigned) error {
		for _, k := range a[1:] {
			id, err := s.resolveKey(*r, k)
			if err != nil {
				return err
			}
			if err := r.Revoke(id); err != nil {
				return cliexit.UsageError{Err: err}
			}
		}
		return nil
	})
}

func newTrustRotateCommand(s *streams) *cobra.Command {
	var opts trustRotateOptions
	cmd := &cobra.Command{
		Use:   "rotate ROOT --role R [--remove KEY…] [--add PUB…] [--threshold N] [--revoke] --sign K…",
		Short: "Make the next root version with keys of a role replaced",
		Long: `Make the next root version with keys of a role replaced: --add first, then
--remove, then --threshold. Rotating root keys needs signatures by a threshold
of the old root keys and of the new ones, so --sign both. --revoke also
revokes the removed keys (a compromised key, rather than a retired one).`,
		Args: args(1, "a trust ROOT file"),
		RunE: func(_ *cobra.Command, a []string) error { return runTrustRotate(s, opts, a) },
	}
	cmd.Flags().StringVar(&opts.role, "role", "", "role whose keys change: root, release or mirror")
	cmd.Flags().StringArrayVar(&opts.remove, "remove", nil, "key to take out of the role (repeatable)")
	cmd.Flags().StringArrayVar(&opts.add, "add", nil, "key to put into the role (public or private key file; repeatable)")
	cmd.Flags().IntVar(&opts.threshold, "threshold", 0, "new threshold of the role (default: unchanged)")
	cmd.Flags().BoolVar(&opts.revokeRemoved, "revoke", false, "also revoke the removed keys")
	opts.o.addFlags(cmd, outInPlace)
	return cmd
}

// runTrustRotate makes the next version of root a[0] with keys of a role replaced.
func runTrustRotate(s *streams, opts trustRotateOptions, a []string) error {
	if opts.role == "" || len(opts.remove)+len(opts.add) == 0 {
		return cliexit.UsageError{Err: errors.New("--role and at least one --remove or --add are required")}
	}
	var pubs []*verify.PublicKey
	for _, path := range opts.add {
		pub, _, err := s.loadKeyFile(path)
		if err != nil {
			return err
		}
		pubs = append(pubs, pub)
	}
	return s.changeRoot(a[0], &opts.o, func(r *verify.RootSigned) error {
		for _, pub := range pubs {
			if err := r.AddKey(opts.role, pub); err != nil {
				return cliexit.UsageError{Err: err}
			}
		}
		for _, k := range opts.remove {
			id, err := s.resolveKey(*r, k)
			if err != nil {
				return err
			}
			if err := r.RemoveKey(opts.role, id); err != nil {
				return cliexit.UsageError{Err: err}
			}
			if opts.revokeRemoved && !slices.Contains(r.Revoked, id) {
				if err := r.Revoke(id); err != nil {
					return err
				}
			}
		}
		if opts.threshold == 0 && r.Roles[opts.role].Threshold > len(r.Roles[opts.role].KeyIDs) {
			return cliexit.UsageError{Err: fmt.Errorf("role %s keeps %d key(s) for threshold %d: lower it with --threshold", opts.role, len(r.Roles[opts.role].KeyIDs), r.Roles[opts.role].Threshold)}
		}
		return setThreshold(r, opts.role, opts.threshold)
	})
}

func newTrustRenewCommand(s *streams) *cobra.Command {
	var opts trustRenewOptions
	cmd := &cobra.Command{
		Use:   "renew ROOT --sign K… [--expires 365d]",
		Short: "Make the next root version with a new expiry and the same keys",
		Long: `Make the next root version of ROOT with the same keys, roles, thresholds and
revoked keys, valid for --expires from now. Like every root change it must be
signed by a threshold of the root role's keys (--sign, or --partial and
'ferry trust sign'); devices holding ROOT accept it, even once ROOT has
expired. Give it to devices as the other roots: a mirror, a stick, a bundle
attachment or 'ferry-agent trust update'.`,
		Args: args(1, "a trust ROOT file"),
		RunE: func(_ *cobra.Command, a []string) error { return runTrustRenew(s, opts, a) },
	}
	opts.o.addFlags(cmd, outInPlace)
	return cmd
}

// runTrustRenew makes the next version of root a[0] with a new expiry.
func runTrustRenew(s *streams, opts trustRenewOptions, a []string) error {
	return s.changeRoot(a[0], &opts.o, func(*verify.RootSigned) error { return nil })
}

func newTrustSignCommand(s *streams) *cobra.Command {
	var opts trustSignOptions
	cmd := &cobra.Command{
		Use:   "sign ROOT --sign K… [--prev OLD] [--partial]",
		Short: "Add signatures to a root written with --partial",
		Long: `Add signatures to a root, for roots that need the keys of several people:
each of them runs 'ferry trust sign ROOT --sign KEY --partial' on their own
machine (or at the ceremony) and passes the file on. ferry says, for each
root role the root needs (its own; with --prev OLD also the previous
version's, as devices holding OLD judge it), how many of the threshold have
signed, who, and who may still sign. The root becomes valid when every
threshold is met.

Without --partial the root must be complete after this signature: one that
is still short is not written (exit 1).`,
		Args: args(1, "a trust ROOT file"),
		RunE: func(_ *cobra.Command, a []string) error { return runTrustSign(s, opts, a) },
	}
	cmd.Flags().StringArrayVar(&opts.sign, "sign", nil, "private key to sign with (repeatable)")
	cmd.Flags().StringVarP(&opts.out, "out", "o", "", outInPlace)
	cmd.Flags().StringVar(&opts.prev, "prev", "", "the previous root version, to check the chain rule")
	cmd.Flags().BoolVar(&opts.partial, "partial", false, "write the root even if its thresholds are not met yet, for others to sign")
	return cmd
}

// runTrustSign adds signatures to root a[0] and says how far it is from
// being accepted.
func runTrustSign(s *streams, opts trustSignOptions, a []string) error {
	if len(opts.sign) == 0 {
		return cliexit.UsageError{Err: errors.New("at least one --sign is required")}
	}
	root, err := readRoot(a[0])
	if err != nil {
		return err
	}
	var prev *verify.Root
	if opts.prev != "" {
		if prev, err = readRoot(opts.prev); err != nil {
			return err
		}
	}
	signers, err := s.loadSigners(opts.sign, "")
	if err != nil {
		return err
	}
	if root, err = root.AddSignatures(signers...); err != nil {
		return err
	}
	now := time.Now()
	verdict := root.Verify(now)
	if prev != nil {
		_, verdict = verify.UpdateRoot(prev, root.Bytes(), now)
	}
	var re *verify.RootError
	if verdict != nil && !(errors.As(verdict, &re) && re.Kind == verify.RootBelowThreshold) {
		return refusal(fmt.Errorf("%s: %w", a[0], verdict)) // more signatures would not help
	}
	if verdict != nil && !opts.partial {
		printSignatureProgress(s, root.RootSignatures(prev))
		return fmt.Errorf("%s: %w; not written: add --partial to write it for others to sign", a[0], verdict)
	}
	if opts.out == "" {
		opts.out = a[0]
	}
	if err := writeRoot(opts.out, root.Bytes()); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "wrote %s: trust root v%d with %d signature(s)\n", opts.out, root.Version(), len(root.Signatures()))
	printSignatureProgress(s, root.RootSignatures(prev))
	if verdict != nil {
		fmt.Fprintf(s.out, "not yet accepted: %v\n", verdict)
		return nil
	}
	fmt.Fprintln(s.out, "complete: its signatures meet the thresholds")
	return nil
}

// printSignatureProgress says, per root role, how many of its threshold
// have signed, who, and who may still sign.
func printSignatureProgress(s *streams, roles []verify.RoleSignatures) {
	names := func(keys []verify.KeyInfo) string {
		n := make([]string, len(keys))
		for i, k := range keys {
			n[i] = display.KeyName(k.ID, k.Owner, k.Purpose)
		}
		return display.OrDash(strings.Join(n, ", "))
	}
	for _, rs := range roles {
		state := "threshold met"
		if !rs.Met() {
			state = fmt.Sprintf("%d more needed", rs.Threshold-len(rs.Signed))
		}
		fmt.Fprintf(s.out, "root role of v%d: %d of %d required signature(s), %s\n", rs.Of, len(rs.Signed), rs.Threshold, state)
		fmt.Fprintf(s.out, "  signed     %s\n", names(rs.Signed))
		if !rs.Met() {
			fmt.Fprintf(s.out, "  may sign   %s\n", names(rs.Unsigned))
		}
	}
}

// trustRootInfo is what 'ferry trust show --json' prints: the file, then
// what verify says of the root in it.
type trustRootInfo struct {
	File string `json:"file"`
	verify.RootInfo
}

func newTrustShowCommand(s *streams) *cobra.Command {
	var opts jsonOptions
	cmd := &cobra.Command{
		Use:   "show ROOT [--json]",
		Short: "Print a trust root: version, expiry, roles, keys, revoked keys, signatures",
		Args:  args(1, "a trust ROOT file"),
		RunE:  func(_ *cobra.Command, a []string) error { return runTrustShow(s, opts, a) },
	}
	cmd.Flags().BoolVar(&opts.asJSON, "json", false, "print JSON")
	return cmd
}

// runTrustShow prints root a[0].
func runTrustShow(s *streams, opts jsonOptions, a []string) error {
	r, err := readRoot(a[0])
	if err != nil {
		return err
	}
	info := trustRootInfo{File: a[0], RootInfo: r.Info(time.Now())}
	if opts.asJSON {
		return writeJSON(s.out, info)
	}
	expiry := ""
	if info.Expired {
		expiry = " (EXPIRED)"
	}
	fmt.Fprintf(s.out, "trust root  v%d (spec %s), expires %s%s\n", info.Version, display.Untrusted(info.SpecVersion), display.Time(info.Expires), expiry)
	for _, name := range verify.RootRoles {
		role, ok := info.Roles[name]
		if !ok {
			continue
		}
		fmt.Fprintf(s.out, "role        %s: %d of %d key(s)\n", name, role.Threshold, len(role.Keys))
		for _, k := range role.Keys {
			mark := ""
			if k.Revoked {
				mark = "  REVOKED"
			}
			fmt.Fprintf(s.out, "  %s  %s%s\n", display.KeyName(k.ID, k.Owner, k.Purpose), display.Untrusted(string(k.Algorithm)), mark)
		}
	}
	revoked := make([]string, len(info.Revoked))
	for i, id := range info.Revoked {
		revoked[i] = display.Untrusted(display.ShortID(id))
	}
	fmt.Fprintf(s.out, "revoked     %s\n", display.OrDash(strings.Join(revoked, ", ")))
	sigs := make([]string, len(info.Signatures))
	for i, id := range info.Signatures {
		sigs[i] = display.Untrusted(display.ShortID(id))
	}
	fmt.Fprintf(s.out, "signatures  %d by %s\n", len(sigs), display.OrDash(strings.Join(sigs, ", ")))
	if info.Valid {
		fmt.Fprintln(s.out, "valid       signed by a threshold of its own root keys, not expired")
	} else {
		fmt.Fprintf(s.out, "NOT valid   %s\n", display.Untrusted(info.Error))
	}
	return nil
}

// chainStep is one root of 'ferry trust verify-chain': its file and
// what verify.CheckChain says of it.
type chainStep struct {
	File    string             `json:"file"`
	Version int64              `json:"version,omitempty"`
	Expires time.Time          `json:"expires,omitzero"`
	Status  verify.ChainStatus `json:"status"`
}

func newTrustVerifyChainCommand(s *streams) *cobra.Command {
	var opts jsonOptions
	cmd := &cobra.Command{
		Use:   "verify-chain OLD NEW… [--json]",
		Short: "Check that a device holding root OLD accepts the roots NEW…, one version at a time",
		Long: `Check that a device holding trust root OLD accepts the roots NEW… in turn, as
the agent does: each exactly one version above the last, signed by a threshold
of the last one's root keys and of its own (revoked keys not counting), still
revoking what the last one revoked. A root in the middle may have expired, the
last may not. OLD is trusted as given. Exit 0 when the last root is accepted,
3 when the chain is refused.`,
		Args: func(_ *cobra.Command, a []string) error {
			if len(a) < 2 {
				return cliexit.UsageError{Err: fmt.Errorf("want the trusted root OLD and at least one NEW root, got %d argument(s)", len(a))}
			}
			return nil
		},
		RunE: func(_ *cobra.Command, a []string) error { return runTrustVerifyChain(s, opts, a) },
	}
	cmd.Flags().BoolVar(&opts.asJSON, "json", false, "print JSON")
	return cmd
}

// runTrustVerifyChain checks that a device holding root a[0] accepts a[1:].
func runTrustVerifyChain(s *streams, opts jsonOptions, a []string) error {
	trusted, err := readRoot(a[0])
	if err != nil {
		return err
	}
	var chain [][]byte
	for _, path := range a[1:] {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read trust root: %w", err)
		}
		chain = append(chain, b)
	}
	now := time.Now()
	final, checked, verr := verify.CheckChain(trusted, chain, now)
	steps := make([]chainStep, len(checked))
	for i, c := range checked {
		steps[i] = chainStep{File: a[i], Version: c.Version, Expires: c.Expires, Status: c.Status}
		if c.Status == verify.ChainRefused {
			verr = rejected{&rootFileError{a[i], verr}}
		}
	}
	if opts.asJSON {
		out := map[string]any{"ok": verr == nil, "steps": steps}
		if verr != nil {
			out["error"] = verr.Error()
		} else {
			out["version"] = final.Version()
		}
		if err := writeJSON(s.out, out); err != nil {
			return err
		}
		return verr
	}
	for _, st := range steps {
		v, note := "-", ""
		if st.Version > 0 {
			v = fmt.Sprintf("v%d", st.Version)
		}
		if st.Status == verify.ChainAccepted && !st.Expires.IsZero() && !now.Before(st.Expires) {
			note = " (expired: allowed in the middle of a chain)"
		}
		fmt.Fprintf(s.out, "%-11s %-4s %s%s\n", st.Status, v, st.File, note)
	}
	if verr != nil {
		return verr
	}
	release := final.Signed().Roles[verify.RoleRelease]
	fmt.Fprintf(s.out, "OK          trust root v%d, expires %s; release role: %d of %d key(s)\n", final.Version(), display.Time(final.Expires()), release.Threshold, len(release.KeyIDs))
	return nil
}
