package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/cliexit"
	"github.com/ferry-update/ferry/internal/display"
	"github.com/ferry-update/ferry/verify"
)

func newBundleCommand() *cobra.Command {
	return &cobra.Command{Use: "bundle", Short: "Create, sign, inspect and extract update bundles"}
}

type signOptions struct {
	keys   []string
	signer string
	ref    string
}

func (o *signOptions) addFlags(cmd *cobra.Command, keyHelp string) {
	cmd.Flags().StringArrayVarP(&o.keys, "key", "k", nil, keyHelp)
	cmd.Flags().StringVar(&o.signer, "signer", "", "signer name recorded in the signature (e.g. release@example.com)")
	cmd.Flags().StringVar(&o.ref, "ref", "", "repository the signature names (cosign's docker-reference); default: the bundle name")
}

// load reads every key before anything is written, so a wrong passphrase
// fails fast.
func (o *signOptions) load(s *streams) ([]*verify.Signer, error) {
	return s.loadSigners(o.keys, o.signer)
}

func (o *signOptions) sign(signers []*verify.Signer, d digest.Digest, name string) ([]bundle.Signature, error) {
	ref := o.ref
	if ref == "" {
		ref = name
	}
	var sigs []bundle.Signature
	for _, sg := range signers {
		sig, err := sg.Sign(d, ref, time.Now())
		if err != nil {
			return nil, err
		}
		sigs = append(sigs, sig)
	}
	return sigs, nil
}

// createOptions are the flags of the command Create (runs runCreate).
type createOptions struct {
	opts     bundle.Options
	typ      string
	target   string
	out      string
	partSize string
	sign     signOptions
	asJSON   bool
	sboms    []string
	roots    []string
	provides []string
	force    bool
	unsigned bool
	encrypt  encryptOptions
	delta    bool
	chunk    string
}

func newCreateCommand(s *streams) *cobra.Command {
	var co createOptions
	cmd := &cobra.Command{
		Use:   "create SOURCE --device-type T --version V --out FILE (--key KEY... | --unsigned)",
		Short: "Pack an image file (rootfs) or a directory tree (files) into a signed bundle",
		Long: `Pack SOURCE into a bundle and sign it with every --key while it is made.
A bundle without signatures is made only when asked for with --unsigned: to
sign it later, maybe on another machine (ferry bundle sign). Devices refuse
a bundle until enough trusted keys have signed it.

FILE is never one of the command's inputs, and an existing FILE is replaced
only with --force.`,
		Args: args(1, "a SOURCE image file or directory"),
		RunE: func(_ *cobra.Command, a []string) error { return runCreate(s, co, a) },
	}
	f := cmd.Flags()
	f.StringVarP(&co.typ, "type", "t", "", "payload type: rootfs (an image file) or files (a directory); default: by SOURCE")
	f.StringArrayVarP(&co.opts.DeviceTypes, "device-type", "d", nil, "device type the bundle fits (repeatable)")
	f.StringVarP(&co.opts.Version, "version", "V", "", "semantic version of the update, e.g. 1.4.2")
	f.StringVarP(&co.out, "out", "o", "", "bundle file to write")
	f.BoolVar(&co.force, "force", false, "replace --out if it exists (never an input of the command)")
	f.StringVarP(&co.opts.Name, "name", "n", "", "bundle name (default: from SOURCE)")
	f.StringVar(&co.target, "target", "", "install target on the device (default: the payload type)")
	f.StringVar(&co.opts.Description, "description", "", "free text shown by inspect")
	f.StringVar(&co.partSize, "part-size", "2GiB", "split payloads into blobs of at most this size (FAT32 needs < 4GiB)")
	f.IntVar(&co.opts.Workers, "workers", 0, "compression threads (0: all CPUs)")
	f.BoolVar(&co.delta, "delta", false, "chunk a rootfs payload with a signed chunk index, so devices holding an earlier chunked version fetch only the chunks they lack")
	f.StringVar(&co.chunk, "chunk-size", "16KiB", "with --delta: average chunk size, a power of two from 4KiB to 4MiB")
	f.BoolVar(&co.asJSON, "json", false, "print JSON")
	f.StringArrayVar(&co.sboms, "sbom", nil, "attach an SPDX or CycloneDX JSON document, signed with the bundle (repeatable)")
	f.StringArrayVar(&co.roots, "trust-root", nil, "attach a trust root (N.root.json), which devices apply before judging the bundle's signatures (repeatable)")
	f.StringArrayVar(&co.provides, "provides", nil, "another component the bundle installs, NAME=VERSION (repeatable; the bundle itself is always provided)")
	f.StringArrayVar(&co.opts.Depends, "depends", nil, "a constraint on the device's installed components, e.g. 'gw-os >= 1.4' or 'gw-os >= 1.4, < 2' (repeatable)")
	f.BoolVar(&co.unsigned, "unsigned", false, "make the bundle without signatures, to sign later with 'ferry bundle sign' (instead of --key)")
	co.sign.addFlags(cmd, "private key to sign with: a PEM file, or a pkcs11:/hashivault:// URI (repeatable; or --unsigned)")
	co.encrypt.addFlags(cmd)
	return cmd
}

// runCreate does the command's work once cobra has parsed its flags.
func runCreate(s *streams, co createOptions, a []string) error {
	src := a[0]
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	if co.typ == "" {
		co.typ = string(bundle.DefaultPayloadType(st.IsDir()))
	}
	typ := bundle.PayloadType(co.typ)
	if !typ.Valid() {
		return cliexit.UsageError{Err: fmt.Errorf("--type %q: want rootfs, files or module", co.typ)}
	}
	if st.IsDir() != typ.FromDirectory() {
		return cliexit.UsageError{Err: fmt.Errorf("--type %s wants %s, and %s is not one", co.typ, map[bool]string{true: "a directory", false: "an image file"}[typ.FromDirectory()], src)}
	}
	if co.out == "" || co.opts.Version == "" || len(co.opts.DeviceTypes) == 0 {
		return cliexit.UsageError{Err: errors.New("--out, --version and at least one --device-type are required")}
	}
	if err := checkOutput("--out", co.out, co.force, append(append(append(append([]string{src}, co.sboms...), co.roots...), co.sign.keys...), co.encrypt.files...)...); err != nil {
		return err
	}
	if co.opts.Name == "" {
		co.opts.Name = bundle.NameFromPath(src)
	}
	if co.opts.PartSize, err = parseSize(co.partSize); err != nil {
		return cliexit.UsageError{Err: fmt.Errorf("--part-size: %w", err)}
	}
	if co.opts.Created, err = sourceDateEpoch(); err != nil {
		return cliexit.UsageError{Err: err}
	}
	if co.delta {
		if typ != bundle.Rootfs {
			return cliexit.UsageError{Err: fmt.Errorf("--delta chunks rootfs payloads only, not %s", typ)}
		}
		if co.opts.ChunkAvgBits, err = chunkBits(co.chunk); err != nil {
			return cliexit.UsageError{Err: fmt.Errorf("--chunk-size: %w", err)}
		}
	}
	if co.opts.Provides, err = parseProvides(co.provides); err != nil {
		return cliexit.UsageError{Err: err}
	}
	if err := checkCreateOptions(&co.opts); err != nil {
		return cliexit.UsageError{Err: err}
	}
	switch {
	case co.unsigned && len(co.sign.keys) > 0:
		return cliexit.UsageError{Err: errors.New("--unsigned and --key exclude each other")}
	case !co.unsigned && len(co.sign.keys) == 0:
		return cliexit.UsageError{Err: errUnsigned}
	}
	if co.opts.Attachments, err = loadAttachments(co.sboms, co.roots); err != nil {
		return err
	}
	if co.opts.EncryptTo, err = co.encrypt.recipients(); err != nil {
		return err
	}
	if co.delta && len(co.opts.EncryptTo) > 0 {
		return cliexit.UsageError{Err: errors.New("--delta and encryption exclude each other: a device cannot read a chunk of ciphertext by range")}
	}
	if len(co.sign.keys) > 0 {
		signers, err := co.sign.load(s)
		if err != nil {
			return err
		}
		co.opts.Sign = func(d digest.Digest) ([]bundle.Signature, error) { return co.sign.sign(signers, d, co.opts.Name) }
	}
	var content io.ReadCloser
	total := int64(-1)
	if st.IsDir() {
		content = bundle.TarTree(src, co.opts.Created)
	} else {
		if content, err = os.Open(src); err != nil {
			return err
		}
		total = st.Size()
	}
	defer content.Close()
	var done func()
	co.opts.Progress, done = s.progress(total, "packing")
	res, err := bundle.Create(co.out, co.opts, bundle.Source{Name: string(co.typ), Type: bundle.PayloadType(co.typ), Target: co.target, Content: content, Size: max(total, 0)})
	done()
	if err != nil {
		return err
	}
	if co.asJSON {
		return writeJSON(s.out, map[string]any{"file": co.out, "manifest": res.ManifestDigest, "size": res.Size, "config": res.Config})
	}
	p := res.Config.Payloads[0]
	fmt.Fprintf(s.out, "created %s: %s %s for %s\n  manifest %s\n  payload  %s %s -> %s %s (%d part(s))\n",
		co.out, res.Config.Name, res.Config.Version, strings.Join(res.Config.DeviceTypes, ", "), res.ManifestDigest,
		p.Name, display.Bytes(p.Size), display.Bytes(p.CompressedSize), p.Encoding(), p.Parts)
	if n := len(co.opts.EncryptTo); n > 0 {
		fmt.Fprintf(s.out, "  encrypted to %d recipient(s) (age)\n", n)
	}
	if p.Chunks != nil {
		fmt.Fprintf(s.out, "  chunks   %d of about %s (index %s)\n", p.Chunks.Count, display.Bytes(1<<p.Chunks.AvgBits), p.Chunks.Index)
	}
	if co.unsigned {
		fmt.Fprintf(s.out, "  signed   no (--unsigned): sign it with 'ferry bundle sign %s --key KEY'\n", co.out)
	} else {
		fmt.Fprintf(s.out, "  signed   by %d key(s)\n", len(co.sign.keys))
	}
	if c := res.Config; len(c.Provides) > 0 || len(c.Depends) > 0 {
		fmt.Fprintf(s.out, "  provides %s\n", componentList(c))
		if len(c.Depends) > 0 {
			fmt.Fprintf(s.out, "  depends  %s\n", strings.Join(c.Depends, "; "))
		}
	}
	for _, a := range res.Config.Attachments {
		what := "sbom"
		switch a.MediaType {
		case bundle.TrustRootMediaType:
			what = "root"
		case bundle.AgeHeaderMediaType:
			continue // the encrypted line above
		case bundle.ChunkIndexMediaType, bundle.ChunkIndexV1MediaType:
			what = "index"
		}
		fmt.Fprintf(s.out, "  %-8s %s %s %s\n", what, a.Name, a.MediaType, display.Bytes(a.Size))
	}
	return nil
}

// errUnsigned refuses to make a bundle nobody signs without being asked.
var errUnsigned = errors.New("no --key: a bundle is signed when it is made")

// parseProvides reads the --provides NAME=VERSION flags.
func parseProvides(flags []string) (map[string]string, error) {
	if len(flags) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, f := range flags {
		name, version, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("--provides %q: want NAME=VERSION, e.g. gw-os.kernel=6.1.0", f)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("--provides: %s given twice", name)
		}
		out[name] = version
	}
	return out, nil
}

// componentList shows what a bundle provides: "NAME VERSION, ...", the
// bundle itself first.
func componentList(c *bundle.Config) string {
	var parts []string
	for _, n := range c.ComponentNames() {
		parts = append(parts, n+" "+c.Components()[n])
	}
	return strings.Join(parts, ", ")
}

// loadAttachments reads the --sbom files, then the --trust-root files,
// into the bundle's attachments. Each SBOM must be SPDX or CycloneDX JSON
// within the attachment size limit; each root a well-formed trust root
// (verify/TRUST.md). Whether the roots chain is for devices to judge.
func loadAttachments(sboms, roots []string) ([]bundle.AttachmentData, error) {
	var set bundle.AttachmentSet
	for _, p := range sboms {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("--sbom: %w", err)
		}
		if st.Size() > bundle.MaxAttachmentSize {
			return nil, cliexit.UsageError{Err: fmt.Errorf("--sbom %s: %s exceeds the limit of %s", p, display.Bytes(st.Size()), display.Bytes(bundle.MaxAttachmentSize))}
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("--sbom: %w", err)
		}
		var ne *bundle.AttachmentNameError
		switch err := set.AddSBOM(p, data); {
		case errors.As(err, &ne):
			return nil, cliexit.UsageError{Err: fmt.Errorf("--sbom %w: rename one", err)}
		case err != nil:
			return nil, cliexit.UsageError{Err: fmt.Errorf("--sbom %s: %w", p, err)}
		}
	}
	for _, p := range roots {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("--trust-root: %w", err)
		}
		r, err := verify.ParseRoot(data)
		if err != nil {
			return nil, cliexit.UsageError{Err: fmt.Errorf("--trust-root %s: %w", p, err)}
		}
		var ne *bundle.AttachmentNameError
		if err := set.AddTrustRoot(p, r.Version(), data); errors.As(err, &ne) {
			first := ne.First
			if ne.FirstMediaType != bundle.TrustRootMediaType {
				first = "--sbom " + ne.Name
			}
			return nil, cliexit.UsageError{Err: fmt.Errorf("--trust-root %s and %s would both be attached as %q", first, ne.Second, ne.Name)}
		} else if err != nil {
			return nil, err
		}
	}
	return set.List(), nil
}

// checkCreateOptions checks flag values before any work, so that a typo is a
// usage error (exit 2) and not a failure to create the bundle.
func checkCreateOptions(opts *bundle.Options) error {
	if err := bundle.ValidateVersion(opts.Version); err != nil {
		return fmt.Errorf("--version: %w", err)
	}
	for _, t := range opts.DeviceTypes {
		if err := bundle.ValidateDeviceType(t); err != nil {
			return fmt.Errorf("--device-type: %w", err)
		}
	}
	if err := bundle.ValidateName(opts.Name); err != nil {
		return fmt.Errorf("--name: %w", err)
	}
	c := bundle.Config{FormatVersion: bundle.FormatVersion, Name: opts.Name, Version: opts.Version, Provides: opts.Provides, Depends: opts.Depends}
	if err := c.ValidateComponents(); err != nil {
		return fmt.Errorf("--provides/--depends: %w", err)
	}
	if opts.PartSize < 512 || opts.PartSize > bundle.MaxPartSize {
		return fmt.Errorf("--part-size %d: want 512 bytes to 4GiB minus one byte", opts.PartSize)
	}
	return nil
}

// chunkBits reads --chunk-size: a power of two within the format's
// bounds, returned as its exponent.
func chunkBits(s string) (int, error) {
	n, err := parseSize(s)
	if err != nil {
		return 0, err
	}
	bits := 0
	for int64(1)<<bits < n {
		bits++
	}
	if int64(1)<<bits != n {
		return 0, fmt.Errorf("%s is not a power of two", s)
	}
	if _, _, err := bundle.ChunkParams(bits); err != nil {
		return 0, err
	}
	return bits, nil
}

// parseSize reads --part-size with the same grammar as every other size
// ferry takes; "auto" and zero are not part sizes.
func parseSize(s string) (int64, error) {
	n, err := display.ParseSize(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("size %q: want a positive number with an optional KiB, MiB or GiB", s)
	}
	return n, nil
}

// sourceDateEpoch honours SOURCE_DATE_EPOCH for reproducible bundles.
func sourceDateEpoch() (time.Time, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a number of seconds", v)
	}
	return time.Unix(n, 0), nil
}

// bundleSignOptions are the flags of the command Sign (runs runSign).
type bundleSignOptions struct {
	sign   signOptions
	asJSON bool
}

func newSignCommand(s *streams) *cobra.Command {
	var o bundleSignOptions
	cmd := &cobra.Command{
		Use:   "sign FILE --key KEY",
		Short: "Add signatures to a bundle (rewrites it atomically)",
		Long: `Add one signature per --key. The payloads are checked first, so a damaged
bundle is never signed; a key that already signed the bundle is skipped.`,
		Args: args(1, "a bundle FILE"),
		RunE: func(_ *cobra.Command, a []string) error { return runSign(s, o, a) },
	}
	o.sign.addFlags(cmd, "private key to sign with: a PEM file, or a pkcs11:/hashivault:// URI (repeatable)")
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print JSON")
	return cmd
}

// runSign does the command's work once cobra has parsed its flags.
func runSign(s *streams, o bundleSignOptions, a []string) error {
	if len(o.sign.keys) == 0 {
		return cliexit.UsageError{Err: errors.New("--key is required")}
	}
	signers, err := o.sign.load(s)
	if err != nil {
		return err
	}
	var added, skipped []string
	r, err := bundle.AddSignatures(a[0], func(h *bundle.Reader) ([]bundle.Signature, error) {
		have := map[string]bool{}
		for _, old := range h.Signatures() {
			if p, err := bundle.ParseSimpleSigning(old.Payload); err == nil {
				have[p.OptionalString(verify.ClaimKeyID)] = true
			}
		}
		var todo []*verify.Signer
		for _, sg := range signers {
			if id := sg.PublicKey().ID; have[id] {
				skipped = append(skipped, id)
			} else {
				todo = append(todo, sg)
				added = append(added, id)
			}
		}
		return o.sign.sign(todo, h.ManifestDigest(), h.Config().Name)
	})
	if err != nil {
		return err
	}
	if o.asJSON {
		return writeJSON(s.out, map[string]any{"file": a[0], "manifest": r.ManifestDigest(), "added": added, "skipped": skipped, "signatures": len(r.Signatures())})
	}
	for _, id := range added {
		fmt.Fprintf(s.out, "signed %s with key %s\n", a[0], id[:16])
	}
	for _, id := range skipped {
		fmt.Fprintf(s.out, "key %s already signed %s; skipped\n", id[:16], a[0])
	}
	fmt.Fprintf(s.out, "%s now holds %d signature(s) over %s\n", a[0], len(r.Signatures()), r.ManifestDigest())
	return nil
}
