package bootenv

import (
	"errors"
	"maps"
	"testing"
)

// memStore is a Store in memory that counts saves.
type memStore struct {
	vars  map[string]string
	err   error
	saves int
}

func (m *memStore) Load() (map[string]string, error) {
	if m.err != nil {
		return nil, m.err
	}
	return maps.Clone(m.vars), nil
}

func (m *memStore) Save(vars map[string]string) error {
	m.saves++
	m.vars = maps.Clone(vars)
	return nil
}

func mustState(t *testing.T, b Boot) BootState {
	t.Helper()
	s, err := b.State()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestBootUpdateCommit walks an update that comes up: the bootloader counts
// one attempt, and the agent commits.
func TestBootUpdateCommit(t *testing.T) {
	m := &memStore{vars: map[string]string{"bootcmd": "run x", DefaultSlotVar: "a"}}
	b := Boot{Store: m}
	if err := b.MarkTentative(SlotB); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"bootcmd": "run x", "ferry_slot": "b", "upgrade_available": "1", "bootcount": "0", "bootlimit": "1"}
	if !maps.Equal(m.vars, want) {
		t.Fatalf("vars = %q, want %q", m.vars, want)
	}
	m.vars[BootCountVar] = "1" // the bootloader's attempt
	if s := mustState(t, b); s != (BootState{Slot: "b", UpgradeAvailable: true, BootCount: 1, BootLimit: 1}) || s.BootedSlot() != "b" {
		t.Fatalf("state = %+v", s)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if s := mustState(t, b); s != (BootState{Slot: "b", BootLimit: 1}) {
		t.Fatalf("after commit: %+v", s)
	}
	saves := m.saves
	if err := b.Commit(); err != nil || m.saves != saves {
		t.Errorf("second commit: %v, %d saves; want no write", err, m.saves-saves)
	}
}

// TestBootFallback walks an update that does not come up: the bootloader
// falls back, Commit refuses, Rollback cleans up.
func TestBootFallback(t *testing.T) {
	m := &memStore{vars: map[string]string{DefaultSlotVar: "a", BootLimitVar: "3"}}
	b := Boot{Store: m}
	if err := b.MarkTentative(SlotB); err != nil {
		t.Fatal(err)
	}
	if m.vars[BootLimitVar] != "3" {
		t.Errorf("bootlimit = %q, want the configured 3 kept", m.vars[BootLimitVar])
	}
	m.vars[BootCountVar] = "4"
	s := mustState(t, b)
	if !s.FallbackDetected || s.Slot != "b" || s.BootedSlot() != "a" {
		t.Fatalf("state = %+v, booted %s", s, s.BootedSlot())
	}
	if err := b.Commit(); !errors.Is(err, ErrFallbackDetected) {
		t.Fatalf("commit after fallback: %v, want ErrFallbackDetected", err)
	}
	if err := b.Rollback(s.BootedSlot()); err != nil {
		t.Fatal(err)
	}
	if s := mustState(t, b); s != (BootState{Slot: "a", BootLimit: 3}) {
		t.Fatalf("after rollback: %+v", s)
	}
}

func TestBootErrors(t *testing.T) {
	m := &memStore{vars: map[string]string{"slot": "A"}}
	b := Boot{Store: m, SlotVar: "slot"}
	if _, err := b.State(); !errors.Is(err, ErrInvalidSlot) {
		t.Errorf("state with slot A: %v, want ErrInvalidSlot", err)
	}
	if err := b.MarkTentative("c"); !errors.Is(err, ErrInvalidSlot) {
		t.Errorf("mark c: %v, want ErrInvalidSlot", err)
	}
	if err := b.Rollback(""); !errors.Is(err, ErrInvalidSlot) {
		t.Errorf("rollback to empty: %v, want ErrInvalidSlot", err)
	}
	// Garbled values stop State and Commit, but not the operations that
	// overwrite them.
	m.vars = map[string]string{"slot": "x", UpgradeAvailableVar: "yes", BootCountVar: "-1"}
	if err := b.Commit(); err == nil {
		t.Error("commit of garbled state succeeded")
	}
	if err := b.Rollback(SlotA); err != nil {
		t.Fatal(err)
	}
	m.vars[BootLimitVar] = "lots"
	if err := b.MarkTentative(SlotB); err == nil {
		t.Error("mark tentative with bootlimit=lots succeeded")
	}

	// A store with no valid environment is never overwritten.
	m = &memStore{err: ErrNoValidEnv}
	b = Boot{Store: m}
	for _, op := range []func() error{func() error { return b.MarkTentative(SlotA) }, b.Commit, func() error { return b.Rollback(SlotA) }} {
		if err := op(); !errors.Is(err, ErrNoValidEnv) || m.saves != 0 {
			t.Errorf("got %v and %d saves, want ErrNoValidEnv and none", err, m.saves)
		}
	}
}
