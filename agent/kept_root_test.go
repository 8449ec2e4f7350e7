package agent

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ferry-update/ferry/verify"
)

// keep writes roots into the state directory as an attacker with write
// access to it (or a damaged disk) could: root.json is the last one, and
// roots/N.root.json holds those listed in chain.
func (e *trustEnv) keep(last *verify.Root, chain ...*verify.Root) {
	e.t.Helper()
	if err := os.MkdirAll(filepath.Join(e.cfg.StateDir, rootsDir), 0o700); err != nil {
		e.t.Fatal(err)
	}
	for _, r := range chain {
		if err := os.WriteFile(filepath.Join(e.cfg.StateDir, rootsDir, strconv.FormatInt(r.Version(), 10)+".root.json"), r.Bytes(), 0o600); err != nil {
			e.t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(e.cfg.StateDir, rootFile), last.Bytes(), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// TestKeptRootReproved: at each start the agent re-proves the root kept in
// its state directory from the provisioned one by the chain rule, and
// falls back, loudly, to the highest root it can prove.
func TestKeptRootReproved(t *testing.T) {
	mallory := newSigner(t)
	// malloryRoot is root version v whose root and release roles are
	// mallory's key alone, signed by signers.
	malloryRoot := func(e *trustEnv, prev *verify.Root, signers ...*verify.Signer) *verify.Root {
		s := e.next(prev, func(s *verify.RootSigned) {
			for _, role := range []string{verify.RoleRoot, verify.RoleRelease} {
				if err := s.AddKey(role, mallory.PublicKey()); err != nil {
					t.Fatal(err)
				}
				for _, id := range s.Roles[role].KeyIDs {
					if id != mallory.PublicKey().ID {
						if err := s.RemoveKey(role, id); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
		})
		return e.sign(s, signers...)
	}
	tests := []struct {
		name string
		// setup writes the state directory and returns the version the
		// agent must hold and whether it must fall back.
		setup     func(e *trustEnv) (int64, bool)
		malloryOK bool // a bundle signed by mallory alone installs
	}{
		{"unsigned higher version", func(e *trustEnv) (int64, bool) {
			r5 := malloryRoot(e, e.root1)
			s := r5.Signed()
			s.Version = 5
			e.keep(e.sign(s))
			return 1, true
		}, false},
		{"higher version signed only by its own key", func(e *trustEnv) (int64, bool) {
			e.keep(malloryRoot(e, e.root1, mallory))
			return 1, true
		}, false},
		{"chain broken in the middle", func(e *trustEnv) (int64, bool) {
			r2 := e.rotateRelease(e.root1, e.rel3, e.rootKey)
			r3 := malloryRoot(e, r2, mallory)
			r4 := e.sign(e.next(r3, nil), mallory)
			e.keep(r4, r2, r3, r4)
			return 2, true
		}, false},
		{"gap in the chain", func(e *trustEnv) (int64, bool) {
			r2 := e.rotateRelease(e.root1, e.rel3, e.rootKey)
			r3 := e.sign(e.next(r2, nil), e.rootKey)
			e.keep(r3)
			return 1, true
		}, false},
		{"not a root", func(e *trustEnv) (int64, bool) {
			e.write("state/root.json", `{"signed": {"version": 9}}`)
			return 1, true
		}, false},
		{"valid chain", func(e *trustEnv) (int64, bool) {
			r2 := e.rotateRelease(e.root1, e.rel3, e.rootKey)
			r3 := e.sign(e.next(r2, nil), e.rootKey)
			e.keep(r3, r2, r3)
			return 3, false
		}, false},
		{"root.json alone, one above the provisioned root", func(e *trustEnv) (int64, bool) {
			e.keep(e.rotateRelease(e.root1, e.rel3, e.rootKey))
			return 2, false
		}, false},
		{"a legitimate chain to mallory's keys", func(e *trustEnv) (int64, bool) {
			r2 := malloryRoot(e, e.root1, e.rootKey, mallory)
			e.keep(r2, r2)
			return 2, false
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTrustEnv(t)
			if err := os.MkdirAll(e.cfg.StateDir, 0o700); err != nil {
				t.Fatal(err)
			}
			want, fallback := tt.setup(e)
			var log bytes.Buffer
			e.cfg.Log = &log
			before := e.deviceHash()
			err := e.install(rootsBundle(t, "1.0.0", mallory))
			var re *RefusedError
			if tt.malloryOK {
				if err != nil {
					t.Fatalf("install: %v", err)
				}
			} else {
				if !errors.As(err, &re) {
					t.Fatalf("bundle signed only by mallory: %v, want refused", err)
				}
				if e.deviceHash() != before {
					t.Error("a refused install changed the device")
				}
			}
			if got := strings.Contains(log.String(), "WARNING: ") && strings.Contains(log.String(), "is not proven from the provisioned root"); got != fallback {
				t.Errorf("fallback logged: %v, want %v; log:\n%s", got, fallback, log.String())
			}
			if fallback && !strings.Contains(err.Error(), "kept in the state directory is not proven") {
				t.Errorf("the refusal does not tell the fallback: %v", err)
			}
			var st *Status
			if err := e.do(func(a *Agent) (err error) { st, err = a.Status(); return err }); err != nil {
				t.Fatal(err)
			}
			if got := st.Trust.KeptRootRefused != ""; got != fallback {
				t.Errorf("status tells a refused kept root: %q, want %v", st.Trust.KeptRootRefused, fallback)
			}
			if v := e.heldRoot(); v != want {
				t.Errorf("device holds root v%d, want v%d", v, want)
			}
			// The state directory now holds the proven chain only, so the
			// next start proves it without a warning.
			log.Reset()
			if v := e.heldRoot(); v != want || log.Len() > 0 {
				t.Errorf("second start: root v%d, log %q", v, log.String())
			}
			keptDoc, err := os.ReadFile(filepath.Join(e.cfg.StateDir, rootFile))
			if err != nil {
				t.Fatal(err)
			}
			r, err := verify.ParseRoot(keptDoc)
			if err != nil || r.Version() != want {
				t.Errorf("state root.json: %v, v%d; want v%d", err, r.Version(), want)
			}
			ents, _ := os.ReadDir(filepath.Join(e.cfg.StateDir, rootsDir))
			if len(ents) != int(want-1) {
				t.Errorf("state roots/ holds %d file(s), want %d", len(ents), want-1)
			}
		})
	}
}

// TestKeptChainSurvivesRestart: roots the agent accepts are kept as a
// chain, so the next start proves the newest from the provisioned root.
func TestKeptChainSurvivesRestart(t *testing.T) {
	e := newTrustEnv(t)
	r2 := e.rotateRelease(e.root1, e.rel3, e.rootKey)
	r3 := e.sign(e.next(r2, nil), e.rootKey)
	if err := e.do(func(a *Agent) error {
		_, err := a.ApplyRoots([][]byte{r2.Bytes()})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := e.do(func(a *Agent) error {
		_, err := a.ApplyRoots([][]byte{r3.Bytes()})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	e.cfg.Log = &log
	if v := e.heldRoot(); v != 3 || log.Len() > 0 {
		t.Fatalf("after restart: root v%d, log %q", v, log.String())
	}
	e.signer = e.rel3
	if err := e.install(rootsBundle(t, "1.0.0", e.rel3)); err != nil {
		t.Fatalf("bundle signed by the key root v3 names: %v", err)
	}
}
