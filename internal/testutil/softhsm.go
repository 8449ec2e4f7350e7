package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ferry-update/ferry/internal/testtool"
)

// SoftHSM PINs of the tokens InitSoftHSM makes.
const (
	SoftHSMPIN   = "1234"
	SoftHSMSOPIN = "5678"
)

// softHSMModules are where Debian and other distributions install
// SoftHSM2's PKCS#11 module; SOFTHSM2_MODULE overrides them.
var softHSMModules = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib64/pkcs11/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
}

// SoftHSM is a SoftHSM2 token store in a test's directory.
type SoftHSM struct {
	Module string // the PKCS#11 module to load
	Conf   string // the SOFTHSM2_CONF file naming the token directory
}

// NewSoftHSM makes an empty SoftHSM2 token store under dir. It needs
// softhsm2 (Debian package softhsm2): missing, the test is skipped, or
// failed in CI.
func NewSoftHSM(t testing.TB, dir string) SoftHSM {
	t.Helper()
	testtool.Require(t, "softhsm2-util", "softhsm2")
	h, err := MakeSoftHSM(dir)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// MakeSoftHSM is NewSoftHSM without a testing.TB, for testscript commands.
func MakeSoftHSM(dir string) (SoftHSM, error) {
	module := os.Getenv("SOFTHSM2_MODULE")
	for _, m := range softHSMModules {
		if module != "" {
			break
		}
		if _, err := os.Stat(m); err == nil {
			module = m
		}
	}
	if module == "" {
		return SoftHSM{}, fmt.Errorf("libsofthsm2.so not found in %v (set SOFTHSM2_MODULE)", softHSMModules)
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return SoftHSM{}, err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", tokens)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return SoftHSM{}, err
	}
	return SoftHSM{Module: module, Conf: conf}, nil
}

// Env is the environment softhsm2-util and the module need.
func (h SoftHSM) Env() []string { return []string{"SOFTHSM2_CONF=" + h.Conf} }

// InitToken makes a token labelled label with PIN SoftHSMPIN, as an
// administrator does with softhsm2-util --init-token.
func (h SoftHSM) InitToken(label string) error {
	cmd := exec.Command("softhsm2-util", "--init-token", "--free", "--label", label, "--pin", SoftHSMPIN, "--so-pin", SoftHSMSOPIN)
	cmd.Env = append(os.Environ(), h.Env()...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	return nil
}

// URI is the PKCS#11 URI of object in token label, with the module and
// PIN in it.
func (h SoftHSM) URI(token, object string) string {
	return fmt.Sprintf("pkcs11:token=%s;object=%s?module-path=%s&pin-value=%s", token, object, h.Module, SoftHSMPIN)
}
