package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"

	"github.com/spf13/cobra"

	"github.com/ferry-update/ferry/internal/atomicfile"
	"github.com/ferry-update/ferry/internal/cliexit"
	"github.com/ferry-update/ferry/signing"
	"github.com/ferry-update/ferry/signing/pkcs11uri"
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
	// Token is the PKCS#11 URI of a key in a token (its PIN hidden).
	Token string `json:"token,omitempty"`
}

// keyGenerateOptions are the flags of the command newKeyGenerateCommand builds; runKeyGenerate does its work.
type keyGenerateOptions struct {
	alg    string
	out    string
	token  string
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
verify ed25519 signatures on registry artifacts.

With --token URI the key pair is made inside a PKCS#11 token (an HSM, a
smart card, SoftHSM2), named by an RFC 7512 URI with its label:
'pkcs11:token=TOKEN;object=LABEL?module-path=MODULE&pin-source=FILE'. The
private key never leaves the token; only PREFIX.pub is written. Sign with
the same URI wherever a --key, --sign or --root-key is taken. Token keys
are ecdsa-p256, ecdsa-p384 or ed25519.`,
		Args: args(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error { return runKeyGenerate(s, opts) },
	}
	cmd.Flags().StringVarP(&opts.alg, "algorithm", "a", string(verify.ECDSAP256), fmt.Sprintf("key algorithm: %v", verify.Algorithms))
	cmd.Flags().StringVarP(&opts.out, "out", "o", "ferry", "file name prefix for PREFIX.key and PREFIX.pub")
	cmd.Flags().StringVar(&opts.token, "token", "", "make the key inside the PKCS#11 token this URI names (pkcs11:token=…;object=LABEL); writes only PREFIX.pub")
	cmd.Flags().BoolVar(&opts.asJSON, "json", false, "print JSON")
	return cmd
}

// runKeyGenerate runs the command once cobra has parsed its flags.
func runKeyGenerate(s *streams, opts keyGenerateOptions) error {
	if opts.token != "" {
		return runKeyGenerateInToken(s, opts)
	}
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

// runKeyGenerateInToken makes the key pair in a PKCS#11 token and writes
// its public key.
func runKeyGenerateInToken(s *streams, opts keyGenerateOptions) error {
	if !slices.Contains(verify.Algorithms, verify.Algorithm(opts.alg)) {
		return cliexit.UsageError{Err: fmt.Errorf("unknown key algorithm %q (want one of %v)", opts.alg, verify.Algorithms)}
	}
	if !pkcs11uri.Is(opts.token) {
		return cliexit.UsageError{Err: fmt.Errorf("--token %q: want a PKCS#11 URI (pkcs11:token=TOKEN;object=LABEL)", opts.token)}
	}
	pubPath := opts.out + ".pub"
	if _, err := os.Lstat(pubPath); err == nil {
		return fmt.Errorf("%s already exists; remove it or choose another --out", pubPath)
	}
	key, err := signing.Generate(opts.token, verify.Algorithm(opts.alg), s.keyOptions("token key", opts.token))
	if err != nil {
		return err
	}
	defer key.Close()
	pub, err := verify.NewPublicKey(key.Public())
	if err != nil {
		return err
	}
	pubPEM, err := pub.PEM()
	if err != nil {
		return err
	}
	if err := writeNew(pubPath, pubPEM, 0o644); err != nil {
		return err
	}
	u, _ := pkcs11uri.Parse(opts.token) // Generate parsed it
	info := keyInfo{ID: pub.ID, Algorithm: pub.Algorithm, PublicKey: pubPath, Token: u.String()}
	if opts.asJSON {
		return writeJSON(s.out, info)
	}
	fmt.Fprintf(s.out, "private key  in the token: %s (%s, never leaves it)\npublic key   %s\nkey id       %s\n", info.Token, opts.alg, info.PublicKey, info.ID)
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
	asJSON, pem bool
}

func newKeyShowCommand(s *streams) *cobra.Command {
	var opts keyShowOptions
	cmd := &cobra.Command{
		Use:   "show KEYFILE|URI",
		Short: "Print a public or private key's algorithm and id",
		Long: `Print a key's id and algorithm. KEYFILE is a public or private key file; a
key in a PKCS#11 token or a KMS is given by its URI. --pem prints the public
key instead (PEM), e.g. to export a token key's public half:
'ferry key show --pem URI > release.pub'.`,
		Args: args(1, "a key file or URI"),
		RunE: func(_ *cobra.Command, a []string) error { return runKeyShow(s, opts, a) },
	}
	cmd.Flags().BoolVar(&opts.asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&opts.pem, "pem", false, "print the public key as PEM")
	return cmd
}

// runKeyShow runs the command once cobra has parsed its flags.
func runKeyShow(s *streams, opts keyShowOptions, a []string) error {
	pub, info, err := s.showKey(a[0])
	if err != nil {
		return err
	}
	switch {
	case opts.pem:
		b, err := pub.PEM()
		if err != nil {
			return err
		}
		_, err = s.out.Write(b)
		return err
	case opts.asJSON:
		return writeJSON(s.out, info)
	}
	fmt.Fprintf(s.out, "%s  %s\n", pub.ID, pub.Algorithm)
	return nil
}

// showKey reads the key a names: a file or a URI.
func (s *streams) showKey(a string) (*verify.PublicKey, keyInfo, error) {
	if signing.IsReference(a) {
		k, err := s.loadPrivateKey(a)
		if err != nil {
			return nil, keyInfo{}, err
		}
		pub, err := verify.NewPublicKey(k.Public())
		if err != nil {
			return nil, keyInfo{}, err
		}
		token := ""
		if u, err := pkcs11uri.Parse(a); err == nil {
			token = u.String()
		}
		return pub, keyInfo{ID: pub.ID, Algorithm: pub.Algorithm, Token: token}, nil
	}
	b, err := os.ReadFile(a)
	if err != nil {
		return nil, keyInfo{}, err
	}
	pub, perr := verify.ParsePublicKey(b)
	encrypted := false
	if perr != nil {
		key, err := verify.ParsePrivateKey(b, s.passphraseFunc(a, false))
		if err != nil {
			return nil, keyInfo{}, fmt.Errorf("%s: neither a public key (%v) nor a private key (%w)", a, perr, err)
		}
		if pub, err = verify.NewPublicKey(key.Public()); err != nil {
			return nil, keyInfo{}, err
		}
		encrypted = verify.IsEncryptedPEM(b)
	}
	return pub, keyInfo{ID: pub.ID, Algorithm: pub.Algorithm, Encrypted: encrypted}, nil
}
