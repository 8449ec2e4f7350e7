package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"

	"github.com/ferry-update/ferry/agent/module"
	"github.com/ferry-update/ferry/bundle"
)

// ModuleRunner starts and resumes update-module sessions, one per module
// payload. NewModuleRunner adapts package module's Runner; tests fake it.
type ModuleRunner interface {
	// Prepare finds the module for p.Type and builds a fresh file tree
	// for payload p.Index.
	Prepare(p module.Payload) (ModuleSession, error)
	// Resume re-attaches to the file tree of payload index that Prepare
	// built, after a restart of the agent or a reboot. When the tree is
	// gone (the session was closed) the error matches fs.ErrNotExist.
	Resume(name string, index int) (ModuleSession, error)
}

// ModuleSession is one payload's update module, driven through the states
// of the Mender update-module protocol (see package module).
type ModuleSession interface {
	// Download hands the module the payload's files; it reads src to its
	// end.
	Download(ctx context.Context, src module.FileSource) error
	// Run calls the module with a state such as ArtifactInstall.
	Run(ctx context.Context, state string) error
	NeedsReboot(ctx context.Context) (module.Reboot, error)
	SupportsRollback(ctx context.Context) (bool, error)
	// Close runs Cleanup and removes the file tree.
	Close(ctx context.Context) error
}

// NewModuleRunner returns the ModuleRunner of r.
func NewModuleRunner(r *module.Runner) ModuleRunner { return runner{r} }

type runner struct{ r *module.Runner }

func (r runner) Prepare(p module.Payload) (ModuleSession, error) {
	s, err := r.r.Prepare(p)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (r runner) Resume(name string, index int) (ModuleSession, error) {
	s, err := r.r.Resume(name, index)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// ModuleRun is the journal's record of one module payload: which update
// module installs it, where its file tree is and how far it got.
type ModuleRun struct {
	Payload string `json:"payload"`
	Module  string `json:"module"`
	// Index numbers the file tree: WORK_DIR/payloads/NNNN/tree.
	Index int `json:"index"`
	// Prepared is set once the file tree was built.
	Prepared bool `json:"prepared,omitempty"`
	// Installed is set, durably, before ArtifactInstall runs: from then
	// on what the module installed may be live, and undoing the install
	// needs ArtifactRollback.
	Installed bool `json:"installed,omitempty"`
	// Reboot and Rollback are the module's answers to NeedsArtifactReboot
	// ("No", "Yes", "Automatic") and SupportsRollback ("Yes", "No"),
	// asked after ArtifactInstall; "" until then.
	Reboot   string `json:"reboot,omitempty"`
	Rollback string `json:"rollback,omitempty"`
}

func (m *ModuleRun) needsReboot() bool { return m.Reboot == "Yes" || m.Reboot == "Automatic" }

// modulePayload is what the module's file tree says about payload m.
func (a *Agent) modulePayload(j *Journal, m *ModuleRun) module.Payload {
	p := module.Payload{Index: m.Index, Type: m.Module, ArtifactName: j.Bundle + "-" + j.Version}
	if in, err := a.installed(); err == nil && in != nil {
		p.CurrentArtifactName = in.Bundle + "-" + in.Version
	}
	return p
}

// prepareModules builds the file tree of every module payload before a
// payload byte is read, so a missing module stops the install early.
func (a *Agent) prepareModules(j *Journal) (map[int]ModuleSession, error) {
	sessions := map[int]ModuleSession{}
	for i := range j.Modules {
		m := &j.Modules[i]
		s, err := a.modules.Prepare(a.modulePayload(j, m))
		if err != nil {
			return nil, fmt.Errorf("payload %s: %w", m.Payload, err)
		}
		sessions[m.Index] = s
		m.Prepared = true
	}
	if len(sessions) > 0 {
		if err := a.save(j); err != nil {
			return nil, err
		}
	}
	return sessions, nil
}

// downloadModule hands a module payload's tar stream to its module. The
// payload is read to its end, which is what checks its digest, before
// anything else happens to the module.
func (a *Agent) downloadModule(ctx context.Context, s ModuleSession, r io.Reader) error {
	if err := s.Download(ctx, module.TarFiles(r)); err != nil {
		// A corrupt payload may break the tar stream before its end,
		// where its digest is checked: read on to tell.
		return bundle.PayloadError(r, err)
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	a.reached("module-downloaded")
	return nil
}

// session re-attaches to m's file tree; done reports a tree that is gone,
// which means the session was closed: every state it needed has run.
func (a *Agent) session(m *ModuleRun) (s ModuleSession, done bool, err error) {
	s, err = a.modules.Resume(m.Module, m.Index)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("update module %s (payload %s): %w", m.Module, m.Payload, err)
	}
	return s, false, nil
}

// installModules runs ArtifactInstall for every module payload, then asks
// each whether it needs a reboot and whether it can roll back. Each is
// marked installed in the journal before its module runs.
func (a *Agent) installModules(ctx context.Context, j *Journal) error {
	for i := range j.Modules {
		m := &j.Modules[i]
		s, done, err := a.session(m)
		if err == nil && done {
			err = fmt.Errorf("update module %s: its file tree is gone", m.Module)
		}
		if err != nil {
			return err
		}
		m.Installed = true
		if err := a.save(j); err != nil {
			return err
		}
		a.logf("update module %s: installing payload %s", m.Module, m.Payload)
		if err := s.Run(ctx, module.ArtifactInstall); err != nil {
			return err
		}
		reboot, err := s.NeedsReboot(ctx)
		if err != nil {
			return err
		}
		rollback, err := s.SupportsRollback(ctx)
		if err != nil {
			return err
		}
		m.Reboot, m.Rollback = reboot.String(), yesNo(rollback)
		if m.needsReboot() {
			j.NeedsReboot = true
		}
		if err := a.save(j); err != nil {
			return err
		}
	}
	if len(j.Modules) > 0 {
		a.reached("module-installed")
	}
	return nil
}

func yesNo(b bool) string {
	if b {
		return "Yes"
	}
	return "No"
}

// rebootModules runs ArtifactReboot for the modules that answered "Yes"
// to NeedsArtifactReboot: they reboot the device themselves.
func (a *Agent) rebootModules(ctx context.Context, j *Journal) error {
	return a.runModules(ctx, j, module.ArtifactReboot, func(m *ModuleRun) bool { return m.Reboot == "Yes" })
}

// verifyModules runs ArtifactVerifyReboot, after the reboot, for the
// modules that needed one.
func (a *Agent) verifyModules(ctx context.Context, j *Journal) error {
	return a.runModules(ctx, j, module.ArtifactVerifyReboot, (*ModuleRun).needsReboot)
}

// commitModules runs ArtifactCommit for every module payload. Modules
// must accept it twice (a power cut may repeat it).
func (a *Agent) commitModules(ctx context.Context, j *Journal) error {
	if err := a.runModules(ctx, j, module.ArtifactCommit, nil); err != nil {
		return err
	}
	if len(j.Modules) > 0 {
		a.reached("module-committed")
	}
	return nil
}

// runModules runs state for the module payloads of j that want selects
// (nil: all of them), in order, stopping at the first that fails.
func (a *Agent) runModules(ctx context.Context, j *Journal, state string, want func(*ModuleRun) bool) error {
	for i := range j.Modules {
		m := &j.Modules[i]
		if want != nil && !want(m) {
			continue
		}
		s, done, err := a.session(m)
		if err != nil || done {
			return err
		}
		if err := s.Run(ctx, state); err != nil {
			return err
		}
	}
	return nil
}

// undoModules ends the module sessions of an install that did not
// commit, as Mender does: ArtifactRollback for each installed module that
// supports it (last installed first), ArtifactFailure for each installed
// one, then Cleanup for all. It goes on after a module fails (running it
// again would not help), and returns what could not be undone, for the
// install's result ("" if everything was).
func (a *Agent) undoModules(ctx context.Context, j *Journal) string {
	var problems []string
	installed := false
	for i := len(j.Modules) - 1; i >= 0; i-- {
		m := &j.Modules[i]
		if !m.Installed {
			continue
		}
		installed = true
		s, done, err := a.session(m)
		if err != nil {
			problems = append(problems, oneLine(err))
			continue
		}
		if done {
			continue
		}
		if m.Rollback == "" {
			rb, err := s.SupportsRollback(ctx)
			if err != nil {
				a.logf("warning: %v", err)
			}
			m.Rollback = yesNo(rb)
		}
		if m.Rollback != "Yes" {
			problems = append(problems, fmt.Sprintf("update module %s cannot roll back (SupportsRollback: No): what it installed stays", m.Module))
			continue
		}
		a.logf("update module %s: rolling back payload %s", m.Module, m.Payload)
		if err := s.Run(ctx, module.ArtifactRollback); err != nil {
			problems = append(problems, "rollback failed: "+oneLine(err))
		}
	}
	if installed {
		a.reached("module-rolled-back")
	}
	for i := len(j.Modules) - 1; i >= 0; i-- {
		m := &j.Modules[i]
		if !m.Installed {
			continue
		}
		s, done, err := a.session(m)
		if err != nil || done {
			continue
		}
		if err := s.Run(ctx, module.ArtifactFailure); err != nil {
			a.logf("warning: %v", err)
		}
	}
	a.closeModules(ctx, j)
	return strings.Join(problems, "; ")
}

// closeModules runs Cleanup and removes the file tree of every module
// session. A failure is only logged: the install's outcome stands. A
// session not recorded as prepared is closed too (a power cut may have
// come before the record), but quietly.
func (a *Agent) closeModules(ctx context.Context, j *Journal) {
	for i := range j.Modules {
		m := &j.Modules[i]
		s, done, err := a.session(m)
		if err == nil && !done {
			err = s.Close(ctx)
		}
		if err != nil && m.Prepared {
			a.logf("warning: update module %s: cleanup: %v", m.Module, err)
		}
	}
}

// moduleRebooted reports whether a module install took effect through a
// reboot: then undoing it needs one too.
func (j *Journal) moduleRebooted() bool {
	if !slices.ContainsFunc(j.Modules, func(m ModuleRun) bool { return m.Installed && m.needsReboot() }) {
		return false
	}
	rebooted := false
	for _, t := range j.History {
		switch t.State {
		case StateRebooting:
			rebooted = true
		case StateBooted:
			if rebooted {
				return true
			}
		}
	}
	return false
}

// agentReboots reports whether the agent runs the reboot command itself:
// for an A/B slot, or a module that answered "Automatic".
func (j *Journal) agentReboots() bool {
	return j.ToSlot != "" || slices.ContainsFunc(j.Modules, func(m ModuleRun) bool { return m.Reboot == "Automatic" })
}

// checkModuleName refuses a module payload target that cannot name a
// module file.
func checkModuleName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") {
		return fmt.Errorf("target %q: a module payload's target names an update module, a plain file name", name)
	}
	return nil
}
