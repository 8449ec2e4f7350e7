package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/ferry-update/ferry/agent"
	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/testtool"
	"github.com/ferry-update/ferry/internal/testutil"
	"github.com/ferry-update/ferry/verify"
)

// Environment variables that make the test build of ferry-agent die by
// SIGKILL, as a power cut would stop it: at a named point (a state name or
// one of the points agent.Faults documents), or once a number of payload
// bytes were written.
const (
	crashAtEnv    = "FERRY_AGENT_CRASH_AT"
	crashAfterEnv = "FERRY_AGENT_CRASH_AFTER_BYTES"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"ferry-agent": func() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, crashFaults)) },
		"mkkey":       func() { os.Exit(toolMain(mkkey)) },
		"mkbundle":    func() { os.Exit(toolMain(mkbundle)) },
		"mkroot":      func() { os.Exit(toolMain(mkroot)) },
	})
}

// TestScripts runs testdata/*.txtar; [have:NAME] is testtool.Condition.
func TestScripts(t *testing.T) {
	testtool.CheckScripts(t, "testdata")
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata",
		RequireExplicitExec: true,
		Cmds:                map[string]func(*testscript.TestScript, bool, []string){"exits": testutil.ExitCode},
		Condition:           testtool.Condition,
		Setup: func(env *testscript.Env) error {
			// $EXAMPLES is the repository's examples directory.
			dir, err := filepath.Abs("../../examples")
			env.Setenv("EXAMPLES", dir)
			return err
		},
	})
}

// crashFaults installs the crash points the environment asks for.
func crashFaults(cfg *agent.Config) {
	at, after := os.Getenv(crashAtEnv), os.Getenv(crashAfterEnv)
	if at == "" && after == "" {
		return
	}
	limit, _ := strconv.ParseInt(after, 10, 64)
	cfg.Faults = &agent.Faults{
		At: func(point string) {
			if point == at {
				kill()
			}
		},
		Wrote: func(total int64) {
			if after != "" && total >= limit {
				kill()
			}
		},
	}
}

func kill() {
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

func toolMain(fn func(args []string) error) int {
	if err := fn(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", os.Args[0], err)
		return 1
	}
	return 0
}

// mkkey NAME writes NAME.key (PEM private key) and NAME.pub.
func mkkey(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: mkkey NAME")
	}
	key, err := verify.GenerateKey(verify.ECDSAP256)
	if err != nil {
		return err
	}
	priv, err := verify.MarshalPrivateKey(key, nil)
	if err != nil {
		return err
	}
	pk, err := verify.NewPublicKey(key.Public())
	if err != nil {
		return err
	}
	pub, err := pk.PEM()
	if err != nil {
		return err
	}
	if err := os.WriteFile(args[0]+".key", priv, 0o600); err != nil {
		return err
	}
	return os.WriteFile(args[0]+".pub", pub, 0o644)
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// mkbundle makes a signed bundle:
//
//	mkbundle -o OUT -version V [-key K.key]... [-device T]... [-rootfs FILE] [-files DIR]
//	         [-module DIR [-module-target NAME]] [-corrupt] [-flip N]
//	         [-name NAME] [-provides NAME=VERSION]... [-depends CONSTRAINT]...
//	         [-chunk]
func mkbundle(args []string) error {
	fs := flag.NewFlagSet("mkbundle", flag.ContinueOnError)
	var keys, devices, provides, depends, encryptTo listFlag
	name := fs.String("name", "sim-os", "bundle name")
	fs.Var(&encryptTo, "encrypt-to", "encrypt the payloads to this age recipient (repeatable)")
	encryptFile := fs.String("encrypt-to-file", "", "encrypt the payloads to the recipients in this file")
	fs.Var(&provides, "provides", "another component, NAME=VERSION (repeatable)")
	fs.Var(&depends, "depends", "a dependency, e.g. 'gw-os >= 1.4' (repeatable)")
	out := fs.String("o", "", "output bundle")
	version := fs.String("version", "", "bundle version")
	rootfs := fs.String("rootfs", "", "rootfs payload content file")
	files := fs.String("files", "", "files payload tree (target app)")
	mod := fs.String("module", "", "module payload: a directory of plain files")
	modTarget := fs.String("module-target", "single-file", "the module payload's update module")
	corrupt := fs.Bool("corrupt", false, "flip a byte of the last payload after signing")
	flip := fs.Int64("flip", -1, "flip byte N of the last payload part after signing (instead of its middle)")
	chunk := fs.Bool("chunk", false, "chunk the rootfs payload (4 KiB chunks) for delta installs")
	fs.Var(&keys, "key", "signing key (repeatable)")
	fs.Var(&devices, "device", "device type (repeatable; default sim-board)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(devices) == 0 {
		devices = listFlag{"sim-board"}
	}
	var srcs []bundle.Source
	if *rootfs != "" {
		f, err := os.Open(*rootfs)
		if err != nil {
			return err
		}
		defer f.Close()
		srcs = append(srcs, bundle.Source{Name: "rootfs", Type: bundle.Rootfs, Content: f})
	}
	if *files != "" {
		srcs = append(srcs, bundle.Source{Name: "app", Type: bundle.Files, Target: "app", Content: bundle.TarTree(*files, time.Time{})})
	}
	if *mod != "" {
		srcs = append(srcs, bundle.Source{Name: "conf", Type: bundle.Module, Target: *modTarget, Content: bundle.TarTree(*mod, time.Time{})})
	}
	var signers []*verify.Signer
	for _, k := range keys {
		b, err := os.ReadFile(k)
		if err != nil {
			return err
		}
		key, err := verify.ParsePrivateKey(b, nil)
		if err != nil {
			return err
		}
		s, err := verify.NewSigner(key, k)
		if err != nil {
			return err
		}
		signers = append(signers, s)
	}
	at := time.Unix(1700000000, 0)
	opts := bundle.Options{Name: *name, Version: *version, DeviceTypes: devices, Created: at, Depends: depends}
	for _, r := range encryptTo {
		rec, err := bundle.ParseRecipient(r)
		if err != nil {
			return err
		}
		opts.EncryptTo = append(opts.EncryptTo, rec)
	}
	if *encryptFile != "" {
		f, err := os.Open(*encryptFile)
		if err != nil {
			return err
		}
		rs, err := bundle.ParseRecipients(f)
		f.Close()
		if err != nil {
			return err
		}
		opts.EncryptTo = append(opts.EncryptTo, rs...)
	}
	if *chunk {
		opts.ChunkAvgBits = bundle.MinChunkAvgBits
	}
	for _, p := range provides {
		n, v, _ := strings.Cut(p, "=")
		if opts.Provides == nil {
			opts.Provides = map[string]string{}
		}
		opts.Provides[n] = v
	}
	opts.Sign = func(m digest.Digest) ([]bundle.Signature, error) {
		var sigs []bundle.Signature
		for _, s := range signers {
			sig, err := s.Sign(m, "example.com/sim-os", at)
			if err != nil {
				return nil, err
			}
			sigs = append(sigs, sig)
		}
		return sigs, nil
	}
	if _, err := bundle.Create(*out, opts, srcs...); err != nil {
		return err
	}
	if *corrupt || *flip >= 0 {
		return corruptLastPayload(*out, *flip)
	}
	return nil
}

// corruptLastPayload flips byte at of the last payload part (its middle if
// at < 0), which ends the archive before its 1024-byte end marker.
func corruptLastPayload(path string, at int64) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	r, err := bundle.NewReader(bytes.NewReader(b))
	if err != nil {
		return err
	}
	layers := r.Manifest().Layers
	size := layers[len(layers)-1].Size
	end := int64(len(b)) - 1024 - (512-size%512)%512
	if at < 0 || at >= size {
		at = size / 2
	}
	b[end-size+at] ^= 0xff
	return os.WriteFile(path, b, 0o644)
}

// mkroot writes a trust root with any version, whose root and release
// roles are the given keys, signed by the -sign keys (none: unsigned), as
// an attacker could hand-write one; it does not follow any chain:
//
//	mkroot -o OUT -version N -root K.pub -release K.pub [-sign K.key]... [-expires DUR] [-owner K.pub=NAME]... [-revoke K.pub]...
func mkroot(args []string) error {
	fs := flag.NewFlagSet("mkroot", flag.ContinueOnError)
	var signKeys, owners, revoke listFlag
	fs.Var(&owners, "owner", "K.pub=NAME: the owner the root names for a key (repeatable)")
	fs.Var(&revoke, "revoke", "key to revoke (.pub; repeatable)")
	out := fs.String("o", "", "output root")
	version := fs.Int64("version", 1, "root version")
	rootKey := fs.String("root", "", "root role key (.pub)")
	releaseKey := fs.String("release", "", "release role key (.pub)")
	expires := fs.Duration("expires", 24*time.Hour, "validity from now")
	fs.Var(&signKeys, "sign", "signing key (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s := verify.NewRootSigned(time.Now().Add(*expires))
	s.Version = *version
	for _, k := range []struct{ role, path string }{{verify.RoleRoot, *rootKey}, {verify.RoleRelease, *releaseKey}} {
		pub, err := readPub(k.path)
		if err != nil {
			return err
		}
		if err := s.AddKey(k.role, pub); err != nil {
			return err
		}
	}
	for _, o := range owners {
		path, name, _ := strings.Cut(o, "=")
		pub, err := readPub(path)
		if err != nil {
			return err
		}
		if err := s.SetKeyNames(pub.ID, name, ""); err != nil {
			return err
		}
	}
	for _, path := range revoke {
		pub, err := readPub(path)
		if err != nil {
			return err
		}
		if err := s.Revoke(pub.ID); err != nil {
			return err
		}
	}
	var signers []*verify.Signer
	for _, k := range signKeys {
		b, err := os.ReadFile(k)
		if err != nil {
			return err
		}
		key, err := verify.ParsePrivateKey(b, nil)
		if err != nil {
			return err
		}
		sg, err := verify.NewSigner(key, k)
		if err != nil {
			return err
		}
		signers = append(signers, sg)
	}
	r, err := verify.SignRoot(s, signers...)
	if err != nil {
		return err
	}
	return os.WriteFile(*out, r.Bytes(), 0o644)
}

func readPub(path string) (*verify.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return verify.ParsePublicKey(b)
}

// TestREADMECommands: the README's command table names every command.
func TestREADMECommands(t *testing.T) {
	testutil.CommandsDocumented(t, newRootCommand(&streams{}), "../../README.md")
}

// TestDocsCommandLines: every command line the guides show (README,
// docs/, examples/) names a command and flags this program has.
func TestDocsCommandLines(t *testing.T) {
	files := testutil.GuideFiles(t, "../..")
	if n := testutil.CommandLinesValid(t, newRootCommand(&streams{}), files...); n < 10 {
		t.Errorf("checked only %d command lines in %v", n, files)
	} else {
		t.Logf("%d command lines checked", n)
	}
}
