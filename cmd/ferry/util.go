package main

import (
	"bufio"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/term"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/cliexit"
	"github.com/ferry-update/ferry/internal/display"
	"github.com/ferry-update/ferry/internal/filekind"
	"github.com/ferry-update/ferry/internal/outpath"
	"github.com/ferry-update/ferry/signing"
	"github.com/ferry-update/ferry/verify"
)

// passphraseEnv carries a private key's passphrase in scripts and CI.
const passphraseEnv = "FERRY_KEY_PASSPHRASE"

// writeJSON writes --json output.
var writeJSON = display.WriteJSON

// progress draws a bar on stderr when it is a terminal; see display.Progress.
func (s *streams) progress(total int64, what string) (func(int64), func()) {
	return display.Progress(s.err, total, what)
}

// passphraseFunc returns how a command gets a key's passphrase: from
// FERRY_KEY_PASSPHRASE, else by asking on the terminal, else not at all.
func (s *streams) passphraseFunc(path string, confirm bool) func() ([]byte, error) {
	if p, ok := os.LookupEnv(passphraseEnv); ok {
		return func() ([]byte, error) { return []byte(p), nil }
	}
	if !display.IsTerminal(s.in) {
		return nil
	}
	ask := s.askSecret("passphrase for " + path)
	return sync.OnceValues(func() ([]byte, error) {
		p, err := ask()
		if err != nil || !confirm {
			return p, err
		}
		p2, err := s.askSecret("again")()
		if err != nil {
			return nil, err
		}
		if string(p) != string(p2) {
			return nil, errors.New("the passphrases differ")
		}
		return p, nil
	})
}

// askSecret asks for a secret on the terminal (s.in must be one), without
// echo.
func (s *streams) askSecret(prompt string) func() ([]byte, error) {
	return func() ([]byte, error) {
		fmt.Fprintf(s.err, "%s: ", prompt)
		p, err := term.ReadPassword(int(s.in.(*os.File).Fd()))
		fmt.Fprintln(s.err)
		return p, err
	}
}

// loadPrivateKey opens a signing key (signing.Open): a PEM file, asking
// for its passphrase when it is encrypted (FERRY_KEY_PASSPHRASE or the
// terminal); a PKCS#11 URI, asking for the token's PIN when the URI gives
// none (FERRY_PKCS11_PIN or the terminal); or a KMS URI. The key is
// closed when the command ends.
func (s *streams) loadPrivateKey(ref string) (crypto.Signer, error) {
	k, err := signing.Open(context.Background(), ref, s.keyOptions("signing key", ref))
	if err != nil {
		return nil, err
	}
	s.keys = append(s.keys, k)
	return k, nil
}

// keyOptions say how signing unlocks the key ref names: the environment
// (signing.ModuleEnv, signing.PINEnv) first, else the terminal.
func (s *streams) keyOptions(what, ref string) signing.Options {
	o := signing.Options{What: what, Passphrase: s.passphraseFunc(ref, false)}
	if display.IsTerminal(s.in) {
		o.PIN = s.askSecret("PIN of the token")
	}
	return o
}

func (s *streams) loadSigner(path, name string) (*verify.Signer, error) {
	key, err := s.loadPrivateKey(path)
	if err != nil {
		return nil, err
	}
	return verify.NewSigner(key, name)
}

// loadSigners reads every key before anything is written, so a wrong
// passphrase fails fast; name is recorded as the signer in signatures.
func (s *streams) loadSigners(paths []string, name string) ([]*verify.Signer, error) {
	var signers []*verify.Signer
	for _, p := range paths {
		sg, err := s.loadSigner(p, name)
		if err != nil {
			return nil, err
		}
		signers = append(signers, sg)
	}
	return signers, nil
}

func loadPublicKeys(paths []string) ([]*verify.PublicKey, error) {
	var keys []*verify.PublicKey
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read public key: %w", err)
		}
		k, err := verify.ParsePublicKey(b)
		if err != nil {
			return nil, fmt.Errorf("public key %s: %w", p, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// checkOutput applies outpath's rule to the file a command is about to
// write (flag names it in the message): never one of inputs, and an
// existing file only with --force. Either is a usage error; the hint
// says what to do (see hint).
func checkOutput(flag, out string, force bool, inputs ...string) error {
	if err := outpath.Check(out, force, inputs...); err != nil {
		return cliexit.UsageError{Err: fmt.Errorf("%s: %w", flag, err)}
	}
	return nil
}

// openInput opens a bundle argument: a file, or "-" for stdin.
func (s *streams) openInput(path string) (io.Reader, func(), error) {
	if path == "-" {
		return bufio.NewReaderSize(s.in, 1<<20), func() {}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	if err := filekind.CheckFile(path, filekind.Bundle, nil); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, func() { f.Close() }, nil
}

// The display helpers under the names cmd/ferry's commands use.

// openBundle opens a bundle argument (openInput) and reads its head; op
// names the command in the error. done closes both.
func (s *streams) openBundle(op, path string) (*bundle.Reader, func(), error) {
	in, done, err := s.openInput(path)
	if err != nil {
		return nil, nil, err
	}
	r, err := bundle.NewReader(in)
	if err != nil {
		done()
		return nil, nil, fmt.Errorf("%s %s: %w", op, path, err)
	}
	return r, func() { r.Close(); done() }, nil
}
