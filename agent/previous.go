package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/ferry-update/ferry/agent/bootenv"
	"github.com/ferry-update/ferry/internal/verifyio"
)

// ErrNoPrevious is wrapped by a *PreviousError: the other slot does not
// hold the previous committed release (any more).
var ErrNoPrevious = errors.New("no previous release to roll back to")

// PreviousError says why RollbackPrevious refused: the other slot holds no
// release ferry committed, or no longer holds it byte for byte. Nothing was
// changed. It wraps ErrNoPrevious and, for a slot that does not match, the
// *verifyio.DigestError or *verifyio.SizeError of the check.
type PreviousError struct {
	Slot string
	// Release is the release recorded for the slot ("name version"), ""
	// when none is.
	Release string
	// Reason says what the slot holds instead, for people.
	Reason string
	Err    error
}

func (e *PreviousError) Error() string {
	what := "slot " + e.Slot
	if e.Release != "" {
		what += " (" + e.Release + ")"
	}
	msg := fmt.Sprintf("%v: %s %s", ErrNoPrevious, what, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *PreviousError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrNoPrevious}
	}
	return []error{ErrNoPrevious, e.Err}
}

// RollbackPrevious goes back to the release committed before the running
// one, which is still in the other A/B slot: for a problem found after the
// commit. The slot must hold that release byte for byte: each of its A/B
// payloads is read back from the slot device and checked against the size
// and digest its signatures covered, recorded when it was committed
// (Installed.Releases). A slot that was written since (an install that
// failed or was rolled back, one interrupted while writing), or that does
// not match, is refused with a *PreviousError and nothing changes.
//
// Then it goes on as an install whose payloads are written: the journal
// records it (Journal.Previous), the boot environment marks the slot on
// trial, the reboot command runs, and boot-check commits it or the
// bootloader falls back, as for any install. Files targets and update
// modules are not touched: they stay as they are.
//
// The version policy is not applied: an operator's explicit rollback to the
// previous committed release is not a downgrade attack. The downgrade
// refusal stops an old signed bundle being fed to the device (by a mirror
// or a stick) to bring back a vulnerable release; this release was already
// trusted, installed and committed on this device, its bytes are checked
// against the digests its signatures covered, and the command is run on
// the device itself, by whoever may also rewrite its slots. After it, the
// installed components are the previous release's, so the release rolled
// away from may be installed again. The signatures themselves are not
// checked again (the bundle is not kept on the device): a release whose
// key was revoked since can still be rolled back to.
func (a *Agent) RollbackPrevious(ctx context.Context) (*Result, error) {
	booted, err := a.idleBootedSlot()
	if err != nil {
		return nil, fmt.Errorf("rollback --previous: %w", err)
	}
	other := bootenv.OtherSlot(booted)
	in, err := a.installed()
	if err != nil {
		return nil, fmt.Errorf("rollback --previous: read installed components: %w", err)
	}
	var rel *SlotRelease
	if in != nil {
		rel = in.Releases[other]
	}
	if err := a.checkPrevious(other, rel); err != nil {
		return nil, fmt.Errorf("rollback --previous: %w", err)
	}

	j := newJournal("rollback --previous", booted)
	j.Bundle, j.Version, j.Manifest, j.Provides, j.Types = rel.Bundle, rel.Version, rel.Manifest, rel.Provides, rel.Types
	j.ToSlot, j.NeedsReboot, j.Images, j.Previous = other, true, rel.Images, true
	a.logf("slot %s holds %s %s as committed; rolling back to it", other, rel.Bundle, rel.Version)
	// The slot holds the release, verified: the install's written state.
	if err := a.transition(j, StateWritten); err != nil {
		return nil, fmt.Errorf("rollback --previous: %w", err)
	}
	if err := a.activate(ctx, j); err != nil {
		_, uerr := a.undoActivation(ctx, j)
		return nil, a.fail(j, fmt.Errorf("activate: %w", errors.Join(err, uerr)))
	}
	if err := a.transition(j, StateTentative); err != nil {
		return nil, fmt.Errorf("rollback --previous %s: %w", j.name(), err)
	}
	if err := a.transition(j, StateRebooting); err != nil {
		return nil, fmt.Errorf("rollback --previous %s: %w", j.name(), err)
	}
	msg := fmt.Sprintf("rolling back to the previous release %s in slot %s; rebooting to try it", j.name(), other)
	if err := a.reboot(ctx); err != nil {
		return a.result(j, "rolled back; the reboot command failed, reboot to try the previous release"), fmt.Errorf("rollback --previous %s: %w", j.name(), err)
	}
	return withReboot(a.result(j, msg)), nil
}

// checkPrevious checks that slot still holds rel, the release last
// committed into it, byte for byte. The bytes decide; the journal of the
// last install only explains a mismatch.
func (a *Agent) checkPrevious(slot string, rel *SlotRelease) error {
	if rel == nil || len(rel.Images) == 0 {
		return &PreviousError{Slot: slot, Reason: "holds no release ferry committed (nothing was committed there, or only by an agent that kept no record of its payloads)"}
	}
	name := rel.Bundle + " " + rel.Version
	fail := func(reason string, err error) error {
		if j := a.j; j != nil && j.ToSlot == slot && !j.Previous && j.State != StateCommitted && j.wrote() {
			reason = fmt.Sprintf("was overwritten by the install of %s, which did not commit (%s: %s)", j.name(), j.State, j.Result)
			if j.State == StateFailed {
				reason = fmt.Sprintf("was partly written by the install of %s, which failed (%s)", j.name(), j.Result)
			}
		}
		return &PreviousError{Slot: slot, Release: name, Reason: reason, Err: err}
	}
	for _, img := range rel.Images {
		pair, ok := a.cfg.Slots[img.Target]
		if !ok || !pair.isPair() {
			return fail(fmt.Sprintf("cannot be checked: its payload's target %q is no A/B pair in the configuration", img.Target), nil)
		}
		dev := pair.Device(slot)
		if err := checkSlotImage(dev, img); err != nil {
			var de *verifyio.DigestError
			var se *verifyio.SizeError
			if errors.As(err, &de) || errors.As(err, &se) {
				return fail(fmt.Sprintf("does not hold it any more: %s does not match the digest signed for it", dev), err)
			}
			return fail(fmt.Sprintf("cannot be checked: %s", dev), err)
		}
	}
	return nil
}

// wrote reports whether the install got as far as writing payloads.
func (j *Journal) wrote() bool {
	return slices.ContainsFunc(j.History, func(t Transition) bool { return t.State == StateWriting })
}

// checkSlotImage reads img's bytes back from a slot device: its first
// img.Size bytes must hash to img.Digest, and a regular file must hold no
// more (an install writes one at the payload's size).
func checkSlotImage(dev string, img SlotImage) error {
	f, err := os.Open(dev)
	if err != nil {
		return err
	}
	defer f.Close()
	var src io.Reader = f
	if fi, err := f.Stat(); err == nil && !fi.Mode().IsRegular() {
		src = io.LimitReader(f, img.Size)
	}
	v, err := verifyio.NewReader(src, img.Size, img.Digest)
	if err != nil {
		return err
	}
	return v.Finish()
}
