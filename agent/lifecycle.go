package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/ferry-update/ferry/agent/bootenv"
)

// reconcile brings the journal and the boot state into agreement after an
// interruption, deterministically (doc.go, "Recovery"): an install that was
// not activated is undone and marked failed; one whose activation reached
// the boot environment goes on; a commit or rollback that was under way is
// finished; a trial the bootloader gave up on is rolled back.
//
// Update modules run from here too (Cleanup, ArtifactRollback, ...), within
// their own timeout.
func (a *Agent) reconcile() error {
	ctx := context.Background()
	j := a.j
	for j != nil {
		switch j.State {
		case StateVerifying, StateWriting:
			a.discard(j)
			return a.finish(j, StateFailed, fmt.Sprintf("interrupted while %s; nothing was activated, the old system is untouched", j.State))
		case StateWritten:
			resume, err := a.activationReachedBootEnv(j)
			if err != nil {
				return fmt.Errorf("recover %s: %w", j.name(), err)
			}
			if !resume {
				note, err := a.undoActivation(ctx, j)
				if err != nil {
					return fmt.Errorf("recover %s: undo activation: %w", j.name(), err)
				}
				return a.finish(j, StateFailed, withNote("interrupted before activation; undone, the old system is untouched", note))
			}
			for _, ts := range j.Trees {
				if err := setLink(ts.Dir, currentLink, ts.New); err != nil {
					return fmt.Errorf("recover %s: %w", j.name(), err)
				}
			}
			if err := a.transition(j, StateTentative); err != nil {
				return err
			}
		case StateTentative, StateRebooting, StateBooted:
			if j.ToSlot == "" {
				return nil
			}
			st, err := a.boot.State()
			if err != nil {
				return fmt.Errorf("recover %s: %w", j.name(), err)
			}
			switch {
			case st.Slot == j.ToSlot && st.FallbackDetected:
				return a.rollBack(ctx, j, byBootloader(st))
			case st.Slot == j.ToSlot && st.UpgradeAvailable:
				return nil // the trial is on: boot-check decides
			case st.Slot == j.ToSlot:
				a.logf("the boot environment was committed to slot %s outside ferry; recording the install", j.ToSlot)
				if err := a.transition(j, StateCommitting); err != nil {
					return err
				}
			default:
				return a.rollBack(ctx, j, fmt.Sprintf("the boot environment selects slot %s again (changed outside ferry); rolled back", st.Slot))
			}
		case StateCommitting:
			return a.finishCommit(ctx, j)
		case StateRollingBack:
			return a.finishRollback(ctx, j)
		default:
			return nil
		}
	}
	return nil
}

// activationReachedBootEnv tells, for an install interrupted in state
// written, whether its activation got as far as the boot environment.
// Files-only installs have no such point: their activation is undone.
func (a *Agent) activationReachedBootEnv(j *Journal) (bool, error) {
	if j.ToSlot == "" {
		return false, nil
	}
	st, err := a.boot.State()
	if err != nil {
		return false, err
	}
	return st.Slot == j.ToSlot && st.UpgradeAvailable, nil
}

func byBootloader(st bootenv.BootState) string {
	return fmt.Sprintf("rolled back by the bootloader: slot %s failed to boot (%d attempts, limit %d)", st.Slot, st.BootCount, st.BootLimit)
}

// rollBack records why j is being rolled back, then rolls it back.
func (a *Agent) rollBack(ctx context.Context, j *Journal, why string) error {
	j.Result = why
	if err := a.transition(j, StateRollingBack); err != nil {
		return err
	}
	return a.finishRollback(ctx, j)
}

// finishRollback selects the old slot, update modules' previous state
// (ArtifactRollback, ArtifactFailure, Cleanup) and trees again; every step
// is idempotent, so an interrupted rollback is finished by running it
// again. What a module could not undo is added to the result.
func (a *Agent) finishRollback(ctx context.Context, j *Journal) error {
	if j.ToSlot != "" {
		if err := a.boot.Rollback(j.FromSlot); err != nil {
			return fmt.Errorf("roll back %s: %w", j.name(), err)
		}
		a.reached("env-rolled-back")
	}
	if note := a.undoModules(ctx, j); note != "" {
		j.Result = withNote(j.Result, note)
	}
	if err := a.restoreTrees(j); err != nil {
		return fmt.Errorf("roll back %s: %w", j.name(), err)
	}
	a.logf("%s", j.Result)
	if err := a.finish(j, StateRolledBack, j.Result); err != nil {
		return err
	}
	a.settleStickReport(nil)
	return nil
}

func withNote(msg, note string) string {
	if note == "" {
		return msg
	}
	return msg + "; " + note
}

// finishCommit makes the update permanent, then records the installed
// version: the update modules' ArtifactCommit first (a module that fails
// it is rolled back with the rest), then the boot environment (the commit
// point), then the record, the trees and the modules' Cleanup, so an
// interrupted commit is finished by running it again.
func (a *Agent) finishCommit(ctx context.Context, j *Journal) error {
	if err := a.commitModules(ctx, j); err != nil {
		return a.rollBack(ctx, j, "update module commit failed, rolled back: "+oneLine(err))
	}
	slot := j.FromSlot
	if j.ToSlot != "" {
		slot = j.ToSlot
		if err := a.boot.Commit(); errors.Is(err, bootenv.ErrFallbackDetected) {
			st, serr := a.boot.State()
			if serr != nil {
				return fmt.Errorf("commit %s: %w", j.name(), errors.Join(err, serr))
			}
			return a.rollBack(ctx, j, byBootloader(st))
		} else if err != nil {
			return fmt.Errorf("commit %s: %w", j.name(), err)
		}
		a.reached("env-committed")
	}
	in, err := a.installed()
	if err != nil {
		return fmt.Errorf("commit %s: read installed components: %w", j.name(), err)
	}
	if in == nil {
		in = &Installed{}
	}
	in.record(j, slot, a.now().UTC())
	if err := writeJSON(a.path(installedFile), in); err != nil {
		return fmt.Errorf("commit %s: record installed version: %w", j.name(), err)
	}
	a.reached("recorded")
	for _, ts := range j.Trees {
		err := setLink(ts.Dir, currentLink, ts.New)
		if err == nil {
			err = setLink(ts.Dir, previousLink, ts.Old)
		}
		if err != nil {
			return fmt.Errorf("commit %s: %s: %w", j.name(), ts.Dir, err)
		}
		if err := pruneReleases(ts.Dir, ts.New, ts.Old); err != nil {
			a.logf("warning: pruning old releases in %s: %v", ts.Dir, err)
		}
	}
	a.closeModules(ctx, j)
	a.logf("committed %s", j.name())
	if err := a.finish(j, StateCommitted, "committed"); err != nil {
		return err
	}
	a.settleStickReport(nil)
	return nil
}

// check runs the health checks on the new system and commits it, or rolls
// it back and, when the new slot runs, reboots into the old one.
func (a *Agent) check(ctx context.Context, j *Journal, booted string) (*Result, error) {
	if err := a.transition(j, StateBooted); err != nil {
		return nil, err
	}
	if j.NeedsReboot {
		if verr := a.verifyModules(ctx, j); verr != nil {
			if err := a.rollBack(ctx, j, "update module failed to verify the reboot, rolled back: "+oneLine(verr)); err != nil {
				return nil, errors.Join(verr, err)
			}
			return a.rebootIfOn(ctx, j, booted, verr)
		}
	}
	if herr := a.healthCheck(ctx, j); herr != nil {
		if err := a.rollBack(ctx, j, "health check failed, rolled back: "+oneLine(herr)); err != nil {
			return nil, errors.Join(herr, err)
		}
		return a.rebootIfOn(ctx, j, booted, herr)
	}
	if err := a.transition(j, StateCommitting); err != nil {
		return nil, err
	}
	if err := a.finishCommit(ctx, j); err != nil {
		return nil, err
	}
	if j.State != StateCommitted {
		return a.rebootIfOn(ctx, j, booted, fmt.Errorf("install %s: %s", j.name(), j.Result))
	}
	return a.result(j, j.Result), nil
}

// rebootIfOn runs the reboot command after a rollback when the device runs
// the slot that was rolled back, or an update module's change that took
// effect through a reboot. cause is the error to report.
func (a *Agent) rebootIfOn(ctx context.Context, j *Journal, booted string, cause error) (*Result, error) {
	r := a.result(j, j.Result)
	if j.State != StateRolledBack {
		return r, cause
	}
	switch {
	case j.ToSlot != "" && booted == j.ToSlot:
		r.Message += fmt.Sprintf("; rebooting into slot %s", j.FromSlot)
	case j.moduleRebooted():
		r.Message += "; rebooting"
	default:
		return r, cause
	}
	if err := a.reboot(ctx); err != nil {
		return r, errors.Join(cause, err)
	}
	r.Rebooting = true
	return r, cause
}

// BootCheck is run at every boot. When the device runs an install on
// trial it runs the health checks and commits, or rolls back and reboots.
// A rollback the bootloader already made is recorded (by the reconcile
// every command starts with). Otherwise there is nothing to do.
func (a *Agent) BootCheck(ctx context.Context) (*Result, error) {
	if err := a.reconcile(); err != nil {
		return nil, fmt.Errorf("boot-check: %w", err)
	}
	j := a.j
	if j == nil {
		return &Result{State: StateIdle, Message: "no install: nothing to check"}, nil
	}
	st, err := a.boot.State()
	if err != nil {
		return nil, fmt.Errorf("boot-check: %w", err)
	}
	booted, _, err := a.bootedSlot(st)
	if err != nil {
		return nil, fmt.Errorf("boot-check: %w", err)
	}
	if !j.State.Pending() {
		if j.State == StateRolledBack && j.ToSlot != "" && booted == j.ToSlot && st.Slot == j.FromSlot {
			return a.rebootIfOn(ctx, j, booted, nil)
		}
		return a.result(j, fmt.Sprintf("last install %s: %s", j.name(), j.Result)), nil
	}
	if j.ToSlot != "" && booted != j.ToSlot {
		return a.result(j, fmt.Sprintf("slot %s has not been booted yet; reboot to try %s", j.ToSlot, j.name())), nil
	}
	return a.check(ctx, j, booted)
}

// Commit makes a pending install permanent without running the health
// checks. The new slot must be the one running.
func (a *Agent) Commit() (*Result, error) {
	j, booted, err := a.pending("commit")
	if err != nil {
		return nil, err
	}
	if j.ToSlot != "" && booted != j.ToSlot {
		return nil, fmt.Errorf("commit %s: %w: slot %s runs, reboot into slot %s first", j.name(), ErrNotBooted, booted, j.ToSlot)
	}
	if err := a.transition(j, StateCommitting); err != nil {
		return nil, err
	}
	if err := a.finishCommit(context.Background(), j); err != nil {
		return nil, err
	}
	if j.State != StateCommitted {
		return a.result(j, j.Result), fmt.Errorf("commit %s: %s", j.name(), j.Result)
	}
	return a.result(j, j.Result), nil
}

// Rollback abandons a pending install: the old slot and trees are
// selected again, and when the new slot runs, the device is rebooted.
func (a *Agent) Rollback(ctx context.Context) (*Result, error) {
	j, booted, err := a.pending("rollback")
	if err != nil {
		return nil, err
	}
	if err := a.rollBack(ctx, j, "rolled back on request"); err != nil {
		return nil, err
	}
	return a.rebootIfOn(ctx, j, booted, nil)
}

func (a *Agent) pending(what string) (*Journal, string, error) {
	if err := a.reconcile(); err != nil {
		return nil, "", fmt.Errorf("%s: %w", what, err)
	}
	j := a.j
	if j == nil || !j.State.Pending() {
		msg := "nothing was installed"
		if j != nil {
			msg = fmt.Sprintf("last install %s is %s", j.name(), j.State)
		}
		return nil, "", fmt.Errorf("%s: %w (%s)", what, ErrNothingPending, msg)
	}
	st, err := a.boot.State()
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", what, err)
	}
	booted, _, err := a.bootedSlot(st)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", what, err)
	}
	return j, booted, nil
}

// healthCheck runs the configured commands one by one, each within the
// timeout, with FERRY_SLOT, FERRY_BUNDLE and FERRY_VERSION set.
func (a *Agent) healthCheck(ctx context.Context, j *Journal) error {
	slot := j.ToSlot
	if slot == "" {
		slot = j.FromSlot
	}
	env := append(os.Environ(), "FERRY_SLOT="+slot, "FERRY_BUNDLE="+j.Bundle, "FERRY_VERSION="+j.Version)
	for _, c := range a.cfg.Health.Commands {
		a.logf("health check: %s", c)
		if err := a.shell(ctx, c, a.cfg.Health.Timeout.Duration, env); err != nil {
			return &HealthCheckError{Command: c, Err: err}
		}
	}
	return nil
}

// reboot runs the reboot command. It returns once the command has; the
// reboot itself happens later.
// Reboot runs the reboot command, for an install made with
// InstallOptions.DeferReboot once its result is reported.
func (a *Agent) Reboot(ctx context.Context) error { return a.reboot(ctx) }

func (a *Agent) reboot(ctx context.Context) error {
	a.logf("rebooting: %s", a.cfg.RebootCommand)
	if err := a.shell(ctx, a.cfg.RebootCommand, 5*time.Minute, nil); err != nil {
		return fmt.Errorf("reboot command %q: %w", a.cfg.RebootCommand, err)
	}
	return nil
}

// shell runs command through /bin/sh -c in a process group of its own,
// killed whole when timeout passes or ctx ends.
func (a *Agent) shell(ctx context.Context, command string, timeout time.Duration, env []string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = a.log, a.log
	cmd.WaitDelay = time.Second
	ownProcessGroup(cmd)
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("timed out after %s", timeout)
	}
	return err
}
