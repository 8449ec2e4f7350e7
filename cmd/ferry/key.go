package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/ferry-update/ferry/internal/atomicfile"
	"github.com/ferry-update/ferry/internal/cliexit"
	"github.com/ferry-update/ferry/verify"
)

func newKeyCommand() *cobra.Command {
	return &cobra.Command{Use: "key", Short: "Make and show signing keys"}
}

type keyInfo struct {
	ID         string           `json:"id"`
	Algorithm  verify.Algorithm `json:"algorithm"`
	PublicKey  string           `json:"publicKey,omitempty"`
	PrivateKey string           `json:"privateKey,omitempty"`
	Encrypted  bool             `json:"encrypted"`
}

// keyGenerateOptions are the flags of the command newKeyGenerateCommand builds; runKeyGenerate does its work.
type keyGenerateOptions struct {
	alg    string
	out    string
	asJSON bool
}

func newKeyGenerateCommand(s *streams) *cobra.Command {
	var opts keyGenerateOptions
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Generate a key pair: PREFIX.key (private, PEM) and PREFIX.pub",
		Long: `Generate a key pair. The private key is encrypted with a passphrase taken from
FERRY_KEY_PASSPHRASE or asked on the terminal; an empty passphrase leaves it
unencrypted. ecdsa-p256 (the default) is what cosign verifies; cosign does not
verify ed25519 signatures on registry artifacts.`,
		Args: args(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error { return runKeyGenerate(s, opts) },
	}
	cmd.Flags().StringVarP(&opts.alg, "algorithm", "a", string(verify.ECDSAP256), fmt.Sprintf("key algorithm: %v", verify.Algorithms))
	cmd.Flags().StringVarP(&opts.out, "out", "o", "ferry", "file name prefix for PREFIX.key and PREFIX.pub")
	cmd.Flags().BoolVar(&opts.asJSON, "json", false, "print JSON")
	return cmd
}

// runKeyGenerate runs the command once cobra has parsed its flags.
func runKeyGenerate(s *streams, opts keyGenerateOptions) error {
	key, err := verify.GenerateKey(verify.Algorithm(opts.alg))
	if err != nil {
		return cliexit.UsageError{Err: err}
	}
	var pass []byte
	if pf := s.passphraseFunc(opts.out+".key", true); pf != nil {
		if pass, err = pf(); err != nil {
			return err
		}
	}
	priv, err := verify.MarshalPrivateKey(key, pass)
	if err != nil {
		return err
	}
	pub, err := verify.NewPublicKey(key.Public())
	if err != nil {
		return err
	}
	pubPEM, err := pub.PEM()
	if err != nil {
		return err
	}
	info := keyInfo{ID: pub.ID, Algorithm: pub.Algorithm, PublicKey: opts.out + ".pub", PrivateKey: opts.out + ".key", Encrypted: len(pass) > 0}
	if err := writeNew(info.PrivateKey, priv, 0o600); err != nil {
		return err
	}
	if err := writeNew(info.PublicKey, pubPEM, 0o644); err != nil {
		os.Remove(info.PrivateKey)
		return err
	}
	if opts.asJSON {
		return writeJSON(s.out, info)
	}
	state := "encrypted"
	if !info.Encrypted {
		state = "NOT encrypted"
	}
	fmt.Fprintf(s.out, "private key  %s (%s, %s)\npublic key   %s\nkey id       %s\n", info.PrivateKey, opts.alg, state, info.PublicKey, info.ID)
	return nil
}

// writeNew writes a file that must not exist yet (atomicfile.WriteNew):
// keys are never overwritten by accident.
func writeNew(path string, data []byte, perm fs.FileMode) error {
	err := atomicfile.WriteNew(path, data, perm)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists; remove it or choose another --out", path)
	}
	return err
}

// keyShowOptions are the flags of the command newKeyShowCommand builds; runKeyShow does its work.
type keyShowOptions struct {
	asJSON bool
}

func newKeyShowCommand(s *streams) *cobra.Command {
	var opts keyShowOptions
	cmd := &cobra.Command{
		Use:   "show KEYFILE",
		Short: "Print a public or private key's algorithm and id",
		Args:  args(1, "a key file"),
		RunE:  func(_ *cobra.Command, a []string) error { return runKeyShow(s, opts, a) },
	}
	cmd.Flags().BoolVar(&opts.asJSON, "json", false, "print JSON")
	return cmd
}

// runKeyShow runs the command once cobra has parsed its flags.
func runKeyShow(s *streams, opts keyShowOptions, a []string) error {
	b, err := os.ReadFile(a[0])
	if err != nil {
		return err
	}
	pub, perr := verify.ParsePublicKey(b)
	encrypted := false
	if perr != nil {
		key, err := verify.ParsePrivateKey(b, s.passphraseFunc(a[0], false))
		if err != nil {
			return fmt.Errorf("%s: neither a public key (%v) nor a private key (%w)", a[0], perr, err)
		}
		if pub, err = verify.NewPublicKey(key.Public()); err != nil {
			return err
		}
		encrypted = verify.IsEncryptedPEM(b)
	}
	info := keyInfo{ID: pub.ID, Algorithm: pub.Algorithm, Encrypted: encrypted}
	if opts.asJSON {
		return writeJSON(s.out, info)
	}
	fmt.Fprintf(s.out, "%s  %s\n", pub.ID, pub.Algorithm)
	return nil
}
