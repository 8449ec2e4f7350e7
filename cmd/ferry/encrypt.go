package main

import (
	"errors"
	"fmt"
	"os"

	"filippo.io/age"
	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/cliexit"
)

// encryptOptions are the flags that name age recipients.
type encryptOptions struct {
	to    []string
	files []string
}

func (o *encryptOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&o.to, "encrypt-to", nil, "encrypt the payloads to this age X25519 recipient, age1… as 'ferry-agent identity' prints it (repeatable)")
	cmd.Flags().StringArrayVar(&o.files, "encrypt-to-file", nil, "encrypt to every recipient in FILE: one per line, age1… or a line of 'ferry-agent identity --json'; # comments (repeatable)")
}

func (o *encryptOptions) set() bool { return len(o.to)+len(o.files) > 0 }

// recipients parses every recipient given; a malformed one is a usage
// error naming the flag (and the file's line).
func (o *encryptOptions) recipients() ([]age.Recipient, error) {
	var out []age.Recipient
	seen := map[string]bool{}
	add := func(rs ...age.Recipient) {
		for _, r := range rs {
			if s := r.(*age.X25519Recipient).String(); !seen[s] {
				seen[s] = true
				out = append(out, r)
			}
		}
	}
	for _, s := range o.to {
		r, err := bundle.ParseRecipient(s)
		if err != nil {
			return nil, cliexit.UsageError{Err: fmt.Errorf("--encrypt-to: %w", err)}
		}
		add(r)
	}
	for _, path := range o.files {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("--encrypt-to-file: %w", err)
		}
		rs, err := bundle.ParseRecipients(f)
		f.Close()
		if err != nil {
			return nil, cliexit.UsageError{Err: fmt.Errorf("--encrypt-to-file %s: %w", path, err)}
		}
		add(rs...)
	}
	return out, nil
}

// loadIdentities reads age identity files (as age-keygen writes them, or
// a device's identity/device.age).
func loadIdentities(paths []string) ([]age.Identity, error) {
	var ids []age.Identity
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("--identity: %w", err)
		}
		got, err := age.ParseIdentities(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("--identity %s: not an age identity file: %w", p, err)
		}
		ids = append(ids, got...)
	}
	return ids, nil
}

// errNoIdentity: the payloads are encrypted and no identity was given.
var errNoIdentity = errors.New("the payloads are encrypted: --identity is required to decrypt them")

// unlock unwraps an encrypted bundle's file key with the identities in
// paths; a bundle without encrypted payloads needs none.
func unlock(r *bundle.Reader, paths []string) error {
	if !r.Encrypted() {
		return nil
	}
	if len(paths) == 0 {
		return errNoIdentity
	}
	ids, err := loadIdentities(paths)
	if err != nil {
		return err
	}
	return r.Unlock(ids...)
}

// reencryptOptions are the flags of 'ferry bundle reencrypt'.
type reencryptOptions struct {
	identities []string
	encrypt    encryptOptions
	out        string
	force      bool
	unsigned   bool
	sign       signOptions
	asJSON     bool
}

func newReencryptCommand(s *streams) *cobra.Command {
	var o reencryptOptions
	cmd := &cobra.Command{
		Use:   "reencrypt FILE --identity KEY --encrypt-to RECIPIENT... --out NEW (--key KEY... | --unsigned)",
		Short: "Encrypt a bundle's payloads to new recipients, without decrypting them",
		Long: `Wrap the file key of FILE's encrypted payloads for a new set of recipients
(all of them: the old list is replaced) and write the bundle to NEW. --identity
is an age identity that is one of FILE's recipients (a device's
identity/device.age, or a key kept for this). No payload is decrypted: the
ciphertext is copied as it is, each part checked against its signed digest,
and nothing in plaintext is ever written.

The age header is signed with the bundle, so the manifest changes and FILE's
signatures do not cover NEW: sign it with --key (or make it --unsigned and
run 'ferry bundle sign' later). Recipients left out can still decrypt FILE
itself, which holds the same ciphertext (bundle/FORMAT.md §6.3).`,
		Args: args(1, "a bundle FILE"),
		RunE: func(_ *cobra.Command, a []string) error { return runReencrypt(s, o, a) },
	}
	cmd.Flags().StringArrayVarP(&o.identities, "identity", "i", nil, "age identity file of one of FILE's recipients (repeatable)")
	o.encrypt.addFlags(cmd)
	cmd.Flags().StringVarP(&o.out, "out", "o", "", "bundle file to write")
	cmd.Flags().BoolVar(&o.force, "force", false, "replace --out if it exists (never an input of the command)")
	cmd.Flags().BoolVar(&o.unsigned, "unsigned", false, "write NEW without signatures, to sign later with 'ferry bundle sign' (instead of --key)")
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print JSON")
	o.sign.addFlags(cmd, "private key to sign NEW with (repeatable; or --unsigned)")
	return cmd
}

// runReencrypt does the command's work once cobra has parsed its flags.
func runReencrypt(s *streams, o reencryptOptions, a []string) error {
	switch {
	case o.out == "" || len(o.identities) == 0 || !o.encrypt.set():
		return cliexit.UsageError{Err: errors.New("--out, --identity and --encrypt-to or --encrypt-to-file are required")}
	case o.unsigned && len(o.sign.keys) > 0:
		return cliexit.UsageError{Err: errors.New("--unsigned and --key exclude each other")}
	case !o.unsigned && len(o.sign.keys) == 0:
		return cliexit.UsageError{Err: errUnsigned}
	}
	if err := checkOutput("--out", o.out, o.force, append(append(append([]string{a[0]}, o.identities...), o.encrypt.files...), o.sign.keys...)...); err != nil {
		return err
	}
	recipients, err := o.encrypt.recipients()
	if err != nil {
		return err
	}
	ids, err := loadIdentities(o.identities)
	if err != nil {
		return err
	}
	opts := bundle.ReencryptOptions{Identities: ids, Recipients: recipients}
	if len(o.sign.keys) > 0 {
		signers, err := o.sign.load(s)
		if err != nil {
			return err
		}
		opts.Sign = func(d digest.Digest, c *bundle.Config) ([]bundle.Signature, error) {
			return o.sign.sign(signers, d, c.Name)
		}
	}
	res, err := bundle.Reencrypt(a[0], o.out, opts)
	if err != nil {
		return err
	}
	if o.asJSON {
		return writeJSON(s.out, map[string]any{"file": o.out, "manifest": res.ManifestDigest, "size": res.Size, "recipients": len(recipients), "signatures": len(o.sign.keys)})
	}
	fmt.Fprintf(s.out, "re-encrypted %s to %d recipient(s): %s\n  manifest %s (the ciphertext is unchanged)\n", a[0], len(recipients), o.out, res.ManifestDigest)
	if o.unsigned {
		fmt.Fprintf(s.out, "  signed   no (--unsigned): sign it with 'ferry bundle sign %s --key KEY'\n", o.out)
	} else {
		fmt.Fprintf(s.out, "  signed   by %d key(s)\n", len(o.sign.keys))
	}
	return nil
}
