package main

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/secure-systems-lab/go-securesystemslib/cjson"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/signing"
)

// cmdSoftHSM (softhsm LABEL...) makes a SoftHSM2 token store in $WORK/hsm
// with a token per LABEL (user PIN testutil.SoftHSMPIN), and points the
// script's environment at it: SOFTHSM2_CONF, and FERRY_PKCS11_MODULE so
// that URIs need no module-path.
func cmdSoftHSM(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: softhsm LABEL...")
	}
	h, err := testutil.MakeSoftHSM(ts.MkAbs("hsm"))
	ts.Check(err)
	ts.Setenv("SOFTHSM2_CONF", h.Conf)
	ts.Setenv(signing.ModuleEnv, h.Module)
	os.Setenv("SOFTHSM2_CONF", h.Conf) // for InitToken's softhsm2-util
	for _, label := range args {
		ts.Check(h.InitToken(label))
	}
}

// cmdSigFiles (sigfiles KIND FILE DIR) writes what each signature of FILE
// signs and the signature, as DIR/N.payload and DIR/N.sig (DER or raw
// bytes), so that openssl can check them with the public key alone.
// KIND is bundle (the simple-signing payloads of a bundle), or json for a
// ferry trust root or TUF metadata (the canonical JSON of "signed"; ferry
// roots carry base64 signatures, TUF metadata hex).
func cmdSigFiles(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: sigfiles bundle|json FILE DIR")
	}
	dir := ts.MkAbs(args[2])
	ts.Check(os.MkdirAll(dir, 0o755))
	write := func(i int, payload, sig []byte) {
		ts.Check(os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.payload", i)), payload, 0o644))
		ts.Check(os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.sig", i)), sig, 0o644))
	}
	f, err := os.Open(ts.MkAbs(args[1]))
	ts.Check(err)
	defer f.Close()
	switch args[0] {
	case "bundle":
		r, err := bundle.NewReader(f)
		ts.Check(err)
		for i, s := range r.Signatures() {
			write(i, s.Payload, s.Sig)
		}
	case "json":
		var doc struct {
			Signed     json.RawMessage `json:"signed"`
			Signatures []struct {
				Sig string `json:"sig"`
			} `json:"signatures"`
		}
		ts.Check(json.NewDecoder(f).Decode(&doc))
		canonical, err := cjson.EncodeCanonical(doc.Signed)
		ts.Check(err)
		for i, s := range doc.Signatures {
			sig, err := hex.DecodeString(s.Sig)
			if err != nil {
				sig, err = base64.StdEncoding.DecodeString(s.Sig)
			}
			ts.Check(err)
			write(i, canonical, sig)
		}
	default:
		ts.Fatalf("sigfiles: unknown kind %q", args[0])
	}
}

// TestBuildWithoutPKCS11: the pure-Go build of ferry (CGO_ENABLED=0; the
// nopkcs11 tag leaves PKCS#11 out the same way, see signing's
// pkcs11_none_test.go) builds, and says that PKCS#11 is not in it when
// given a token key, with a hint; key files still work.
func TestBuildWithoutPKCS11(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "k")
	if code := run([]string{"key", "generate", "--out", key}, nil, io.Discard, io.Discard); code != 0 {
		t.Fatalf("key generate: exit %d", code)
	}
	bin := filepath.Join(dir, "ferry")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "key", "show", "pkcs11:token=ferry;object=release").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "PKCS#11 keys: not in this build of ferry") || !strings.Contains(string(out), "ferry: hint: this ferry was built without cgo") {
		t.Errorf("ferry key show pkcs11:…: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "key", "show", key+".pub").CombinedOutput(); err != nil {
		t.Errorf("ferry key show FILE: %v\n%s", err, out)
	}
}
