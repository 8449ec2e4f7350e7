package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferry-update/ferry/internal/cliexit"
	"github.com/ferry-update/ferry/verify"
)

// writeKey writes NAME.key and NAME.pub into dir and returns the signer.
func writeKey(t *testing.T, dir, name string) *verify.Signer {
	t.Helper()
	key, err := verify.GenerateKey(verify.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := verify.MarshalPrivateKey(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	sg, err := verify.NewSigner(key, name)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := sg.PublicKey().PEM()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".key"), priv, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".pub"), pub, 0o644); err != nil {
		t.Fatal(err)
	}
	return sg
}

func runFerry(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, strings.NewReader(""), &stdout, &stderr)
	return code, stderr.String()
}

// TestExpiredRootHintRenews: the hint printed for an expired root is a
// command that, run as printed (KEY given), renews the root so that the
// same check passes.
func TestExpiredRootHintRenews(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "release keys")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rootKey := writeKey(t, dir, "root")
	rel := writeKey(t, dir, "rel")
	s := verify.NewRootSigned(time.Now().Add(-time.Hour).UTC().Truncate(time.Second))
	for _, k := range []struct {
		role string
		s    *verify.Signer
	}{{verify.RoleRoot, rootKey}, {verify.RoleRelease, rel}} {
		if err := s.AddKey(k.role, k.s.PublicKey()); err != nil {
			t.Fatal(err)
		}
	}
	root, err := verify.SignRoot(s, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	rootPath := filepath.Join(dir, "root.json")
	if err := os.WriteFile(rootPath, root.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	payload := filepath.Join(dir, "rootfs.img")
	if err := os.WriteFile(payload, []byte("system"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := filepath.Join(dir, "b.ferry")
	if code, stderr := runFerry(t, "bundle", "create", payload, "-d", "board-a", "-V", "1.0.0", "-o", b, "--key", filepath.Join(dir, "rel.key")); code != 0 {
		t.Fatalf("bundle create: %s", stderr)
	}

	code, stderr := runFerry(t, "verify", b, "--trust", rootPath)
	if code != cliexit.Refused {
		t.Fatalf("verify with an expired root: exit %d, want %d; %s", code, cliexit.Refused, stderr)
	}
	m := regexp.MustCompile(`(?m)^ferry: hint: .*: (ferry trust renew .*)$`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no renew command in the hint:\n%s", stderr)
	}
	hinted := shellSplit(t, m[1])
	for i, a := range hinted {
		if a == "KEY" {
			hinted[i] = filepath.Join(dir, "root.key")
		}
	}
	t.Logf("running the hint: %q", hinted)
	if code, stderr := runFerry(t, hinted[1:]...); code != 0 {
		t.Fatalf("the hint's command failed: %s", stderr)
	}
	if code, stderr := runFerry(t, "verify", b, "--trust", rootPath); code != 0 {
		t.Fatalf("verify after running the hint: exit %d: %s", code, stderr)
	}
	renewed, err := readRoot(rootPath)
	if err != nil {
		t.Fatal(err)
	}
	if renewed.Version() != 2 || !renewed.Expires().After(time.Now().Add(300*24*time.Hour)) {
		t.Errorf("renewed root v%d expires %s", renewed.Version(), renewed.Expires())
	}
	if _, err := verify.UpdateRoot(root, renewed.Bytes(), time.Now()); err != nil {
		t.Errorf("a device holding the expired root refuses the renewal: %v", err)
	}
}

// shellSplit splits a command line as a POSIX shell does for plain words
// and single-quoted ones (what display.ShellQuote makes).
func shellSplit(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	in, any, escaped := false, false, false
	for _, c := range line {
		switch {
		case escaped:
			cur.WriteRune(c)
			escaped = false
		case c == '\\' && !in:
			escaped, any = true, true
		case c == '\'':
			in, any = !in, true
		case c == ' ' && !in:
			if any {
				words = append(words, cur.String())
			}
			cur.Reset()
			any = false
		default:
			cur.WriteRune(c)
			any = true
		}
	}
	if in {
		t.Fatalf("unbalanced quote in %q", line)
	}
	if any {
		words = append(words, cur.String())
	}
	return words
}
