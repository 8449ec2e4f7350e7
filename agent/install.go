package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/display"
	"github.com/ferry-update/ferry/transport/assign"
	"github.com/ferry-update/ferry/transport/tufclient"
	"github.com/ferry-update/ferry/verify"
)

// Result says where an install, commit, rollback or boot check left the
// device.
type Result struct {
	Bundle  string `json:"bundle,omitempty"`
	Version string `json:"version,omitempty"`
	State   State  `json:"state"`
	// Slot is the slot the boot environment now selects ("" without A/B
	// payloads).
	Slot string `json:"slot,omitempty"`
	// Rebooting is set when the reboot command was run.
	Rebooting bool `json:"rebooting"`
	// Message says what happened, for people.
	Message string `json:"message"`
}

func (a *Agent) result(j *Journal, msg string) *Result {
	r := &Result{Bundle: j.Bundle, Version: j.Version, State: j.State, Message: msg}
	if j.ToSlot != "" {
		r.Slot = j.FromSlot
		if j.State.Pending() || j.State == StateWritten || j.State == StateCommitted || j.State == StateCommitting {
			r.Slot = j.ToSlot
		}
	}
	return r
}

// Install installs the bundle read from src in one pass. origin names the
// source in the journal. The bundle's head is judged (signatures,
// threshold, device type, version policy, targets) before a payload byte is
// written; each payload then streams into the inactive slot or beside the
// files tree in use, hashed on the way; only when every payload is written,
// synced and verified is anything activated. A bundle with an A/B payload
// then asks for one try of the new slot and runs the reboot command; one
// without runs the health checks at once and commits or rolls back.
//
// A refused bundle fails with a *RefusedError; in every failure before
// activation nothing the device boots or runs has changed.
func (a *Agent) Install(ctx context.Context, src io.Reader, origin string) (*Result, error) {
	return a.InstallWith(ctx, src, origin, InstallOptions{})
}

// InstallOptions change how InstallWith installs.
type InstallOptions struct {
	// Listed, when set, are the bundles a mirror's verified TUF metadata
	// lists: a bundle whose name, version and manifest digest they do not
	// list is refused (mix-and-match).
	Listed *tufclient.Targets
	// DeferReboot leaves the reboot an A/B install needs to the caller
	// (Reboot), which reports the result first; Result.Rebooting is
	// still set.
	DeferReboot bool
	// Delta, set by InstallFrom, names the payloads the stream leaves
	// out and where their chunks come from.
	Delta *Delta
	// Stream, if set, wraps the archive stream InstallFrom reads (a
	// progress display).
	Stream func(io.Reader) io.Reader
	// Assignment, when set, is the mirror's assignment the install acts
	// on: the journal keeps its deployment and counter, and check-ins
	// report them with the install's result (checkin.Install).
	Assignment *assign.Assignment
}

// idleBootedSlot is the slot that runs, when nothing is under way: the
// journal is reconciled and over, and no slot is on trial. Whatever
// starts a new change of slots (an install, a rollback to the previous
// release) begins here.
func (a *Agent) idleBootedSlot() (string, error) {
	if err := a.reconcile(); err != nil {
		return "", err
	}
	if a.j != nil && !a.j.State.Terminal() {
		return "", fmt.Errorf("%w: %s is %s; run boot-check, commit or rollback first", ErrPending, a.j.name(), a.j.State)
	}
	st, err := a.boot.State()
	if err != nil {
		return "", err
	}
	if st.UpgradeAvailable {
		return "", fmt.Errorf("%w: slot %s is on trial (upgrade_available=1) but no install is pending; run rollback to end the trial", ErrUnknownBootState, st.Slot)
	}
	booted, _, err := a.bootedSlot(st)
	return booted, err
}

// InstallWith is Install with options.
func (a *Agent) InstallWith(ctx context.Context, src io.Reader, origin string, o InstallOptions) (*Result, error) {
	booted, err := a.idleBootedSlot()
	if err != nil {
		return nil, fmt.Errorf("install: %w", err)
	}
	j := newJournal(origin, booted)
	if asg := o.Assignment; asg != nil {
		j.Bundle, j.Version, j.Deployment, j.Assignment = asg.Bundle, asg.Version, asg.Deployment, asg.Counter
	}
	if err := a.transition(j, StateVerifying); err != nil {
		return nil, fmt.Errorf("install: %w", err)
	}
	targets, br, err := a.checkHead(src, j, o)
	if br != nil {
		defer br.Close()
	}
	if err != nil {
		return nil, a.fail(j, err)
	}
	if err := a.transition(j, StateWriting); err != nil {
		return nil, a.fail(j, err)
	}
	if err := a.writePayloads(ctx, j, br, targets, o.Delta); err != nil {
		a.discard(j)
		return nil, a.fail(j, err)
	}
	if err := a.transition(j, StateWritten); err != nil {
		a.discard(j)
		return nil, a.fail(j, err)
	}
	if err := a.activate(ctx, j); err != nil {
		note, uerr := a.undoActivation(ctx, j)
		if uerr != nil {
			err = errors.Join(err, uerr)
		}
		if note != "" {
			err = fmt.Errorf("%w; %s", err, note)
		}
		return nil, a.fail(j, fmt.Errorf("activate: %w", err))
	}
	if err := a.transition(j, StateTentative); err != nil {
		return nil, fmt.Errorf("install %s: %w", j.name(), err)
	}
	if j.NeedsReboot {
		if err := a.transition(j, StateRebooting); err != nil {
			return nil, fmt.Errorf("install %s: %w", j.name(), err)
		}
		where := "into slot " + j.ToSlot
		if j.ToSlot == "" {
			where = "(update modules ask for a reboot)"
		}
		msg := fmt.Sprintf("installed %s %s; rebooting to try it", j.name(), where)
		if err := a.rebootModules(ctx, j); err != nil {
			herr := fmt.Errorf("install %s: %w", j.name(), err)
			if rerr := a.rollBack(ctx, j, "update module reboot failed, rolled back: "+oneLine(err)); rerr != nil {
				return nil, errors.Join(herr, rerr)
			}
			return a.result(j, j.Result), herr
		}
		if !j.agentReboots() || o.DeferReboot {
			return withReboot(a.result(j, msg)), nil
		}
		if err := a.reboot(ctx); err != nil {
			return a.result(j, "installed; the reboot command failed, reboot to try the update"), fmt.Errorf("install %s: %w", j.name(), err)
		}
		return withReboot(a.result(j, msg)), nil
	}
	return a.check(ctx, j, booted)
}

func withReboot(r *Result) *Result {
	r.Rebooting = true
	return r
}

// checkHead reads the bundle's head and judges it; it returns the payload
// targets and the reader positioned at the first payload.
func (a *Agent) checkHead(src io.Reader, j *Journal, o InstallOptions) ([]target, *bundle.Reader, error) {
	listed := o.Listed
	br, err := bundle.NewReaderWith(src, bundle.ReaderOptions{Omitted: o.Delta.omitted()})
	if err != nil {
		return nil, nil, &RefusedError{Err: err}
	}
	c := br.Config()
	j.Bundle, j.Version, j.Manifest, j.Provides = c.Name, c.Version, br.ManifestDigest(), c.Provides
	for _, p := range c.Payloads {
		if !slices.Contains(j.Types, p.Type) {
			j.Types = append(j.Types, p.Type)
		}
	}
	if listed != nil {
		if err := listed.Verify(c.Name, c.Version, br.ManifestDigest().String()); err != nil {
			return nil, br, &RefusedError{Bundle: j.name(), Err: err}
		}
	}
	a.applyBundleRoots(br)
	policy, err := a.policy()
	if err != nil {
		return nil, br, &RefusedError{Bundle: j.name(), Err: err}
	}
	res, err := verify.CheckHead(br, policy)
	if err != nil {
		var te *verify.ThresholdError
		if errors.As(err, &te) && a.rootErr != nil {
			err = fmt.Errorf("%w (a newer trust root was offered but not accepted: %v)", err, a.rootErr)
		}
		return nil, br, &RefusedError{Bundle: j.name(), Err: err}
	}
	a.logf("%s: signed by %s (%d of %d required)", j.name(), signedBy(res), res.ValidKeys, res.Threshold)
	if err := a.checkComponents(c, j.FromSlot); err != nil {
		return nil, br, &RefusedError{Bundle: j.name(), Err: err}
	}
	if err := a.unwrapKey(br); err != nil {
		return nil, br, err
	}
	targets, err := a.plan(c, j)
	return targets, br, err
}

// unwrapKey unwraps the key of an encrypted bundle's payloads with the
// device's age identity, once the bundle's signatures and fit are judged
// and before a payload byte is read: a device that is not a recipient
// refuses the bundle here, having written nothing.
func (a *Agent) unwrapKey(br *bundle.Reader) error {
	if !br.Encrypted() {
		return nil
	}
	id, err := a.Identity()
	if err != nil {
		return fmt.Errorf("decrypt: %w", err)
	}
	if err := br.Unlock(id.age); err != nil {
		return &RefusedError{Bundle: br.Config().Name + " " + br.Config().Version, Err: err}
	}
	return nil
}

// signedBy names the keys whose signatures counted, with the owner and
// purpose the trust root gives them.
func signedBy(res *verify.Result) string {
	var names []string
	for _, s := range res.Signatures {
		if s.Status == verify.Valid {
			names = append(names, display.KeyName(s.KeyID, s.Owner, s.Purpose))
		}
	}
	return strings.Join(names, ", ")
}

// writePayloads streams every payload to its target. Each payload's
// digests are checked at its end, before the next one starts. The file
// trees of module payloads are prepared first, so a missing update module
// stops the install before a payload byte is read.
func (a *Agent) writePayloads(ctx context.Context, j *Journal, br *bundle.Reader, targets []target, delta *Delta) error {
	sessions, err := a.prepareModules(j)
	if err != nil {
		return err
	}
	run := &installRun{a: a, j: j, sessions: sessions, br: br, delta: delta}
	var total int64
	for _, t := range targets {
		p, err := br.Next()
		if err != nil {
			return &RefusedError{Err: err}
		}
		if p.Name != t.payload.Name {
			return &RefusedError{Err: fmt.Errorf("payload %q came where %q was planned", p.Name, t.payload.Name)}
		}
		var content io.Reader = p
		done := func() error { return nil }
		if p.Omitted {
			if content, done, err = run.deltaContent(ctx, p); err != nil {
				return refusedIfBundle(err)
			}
		}
		r := &progressReader{ctx: ctx, r: content, total: &total, faults: a.cfg.Faults}
		err = t.handler.write(ctx, run, t, p, r)
		if derr := done(); err == nil {
			err = derr
		}
		if err != nil {
			return refusedIfBundle(err)
		}
	}
	if _, err := br.Next(); err != io.EOF {
		if err == nil {
			err = errors.New("more payloads than planned")
		}
		return &RefusedError{Err: err}
	}
	return nil
}

// refusedIfBundle makes an error about the bundle's data (a part, a
// chunk or the content not matching its signed digest) a refusal.
func refusedIfBundle(err error) error {
	var be *bundle.Error
	if errors.As(err, &be) {
		return &RefusedError{Err: err}
	}
	return err
}

// progressReader stops at a cancelled context and reports bytes to the
// fault hooks.
type progressReader struct {
	ctx    context.Context
	r      io.Reader
	total  *int64
	faults *Faults
}

func (p *progressReader) Read(b []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.r.Read(b)
	*p.total += int64(n)
	if n > 0 && p.faults != nil && p.faults.Wrote != nil {
		p.faults.Wrote(*p.total)
	}
	return n, err
}

// activate switches the files targets, runs the update modules'
// ArtifactInstall, then asks the bootloader to try the new slot: the boot
// environment is the last thing changed, so once it selects the new slot
// everything else is in place.
func (a *Agent) activate(ctx context.Context, j *Journal) error {
	for _, ts := range j.Trees {
		if err := setLink(ts.Dir, currentLink, ts.New); err != nil {
			return fmt.Errorf("switch %s to %s: %w", ts.Dir, ts.New, err)
		}
	}
	if err := a.installModules(ctx, j); err != nil {
		return err
	}
	if j.ToSlot != "" {
		if err := a.boot.MarkTentative(j.ToSlot); err != nil {
			return err
		}
	}
	a.reached("activated")
	return nil
}

// undoActivation puts back what activate changed, whatever part of it ran:
// the boot environment, the update modules (ArtifactRollback,
// ArtifactFailure, Cleanup), the files targets.
// It returns what the update modules could not undo, for the result.
func (a *Agent) undoActivation(ctx context.Context, j *Journal) (note string, err error) {
	var errs []error
	if j.ToSlot != "" {
		if st, err := a.boot.State(); err != nil {
			errs = append(errs, err)
		} else if st.Slot != j.FromSlot || st.UpgradeAvailable {
			errs = append(errs, a.boot.Rollback(j.FromSlot))
		}
	}
	note = a.undoModules(ctx, j)
	errs = append(errs, a.restoreTrees(j))
	return note, errors.Join(errs...)
}

// discard removes what an install that activated nothing left: new trees,
// partial extractions and the update modules' file trees (Cleanup).
func (a *Agent) discard(j *Journal) {
	a.discardTrees(j)
	a.closeModules(context.Background(), j)
}

// restoreTrees points every files target back at its old tree and removes
// the new one.
func (a *Agent) restoreTrees(j *Journal) error {
	var errs []error
	for _, ts := range j.Trees {
		if err := setLink(ts.Dir, currentLink, ts.Old); err != nil {
			errs = append(errs, fmt.Errorf("switch %s back to %q: %w", ts.Dir, ts.Old, err))
		}
	}
	if len(errs) == 0 {
		a.discardTrees(j)
	}
	return errors.Join(errs...)
}

// discardTrees removes the new trees of an install that did not happen,
// and partial extractions. Failing to is harmless: they are never current.
func (a *Agent) discardTrees(j *Journal) {
	for _, ts := range j.Trees {
		if err := pruneReleases(ts.Dir, ts.Old, releaseOf(ts.Dir, previousLink)); err != nil {
			a.logf("warning: cleaning %s: %v", ts.Dir, err)
		}
	}
}

// fail ends an install that activated nothing.
func (a *Agent) fail(j *Journal, err error) error {
	var re *RefusedError
	if errors.As(err, &re) {
		j.Refused = true
		if re.Bundle == "" && j.Bundle != "" {
			re.Bundle = j.name()
		}
	}
	if ferr := a.finish(j, StateFailed, oneLine(err)); ferr != nil {
		err = errors.Join(err, ferr)
	}
	if re != nil {
		return err
	}
	return fmt.Errorf("install %s: %w", j.name(), err)
}
