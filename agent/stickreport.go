package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/ferry-update/ferry/transport/stick"
)

// stickReportFile holds a stick report whose outcome was not known when it
// was written (pending), relative to the state directory.
const stickReportFile = "stick-report.json"

// pendingReport is a stick report waiting for its outcome, or decided and
// waiting for a stick to be written to.
type pendingReport struct {
	// File is the report's file name in ferry/reports/ on the stick it
	// was first written to ("" if that write failed).
	File string `json:"file,omitempty"`
	// Root is where that stick was mounted.
	Root    string       `json:"root,omitempty"`
	Decided bool         `json:"decided,omitempty"`
	Report  stick.Report `json:"report"`
}

// keepPendingReport remembers a pending stick report (written to file) so
// that the outcome reaches the stick once boot-check, commit or rollback
// decides.
func (a *Agent) keepPendingReport(root, file string, rep stick.Report) {
	if err := writeJSON(a.path(stickReportFile), pendingReport{Root: root, File: file, Report: rep}); err != nil {
		a.logf("warning: keep the stick report until the install is decided: %v", err)
	}
}

// findStick returns the stick the configuration names ([stick]), else the
// one still mounted at root; nil when neither is in.
func (a *Agent) findStick(root string) *stick.Stick {
	c := a.cfg.Stick
	if len(c.MountPoints) > 0 || c.Label != "" {
		if s, err := stick.Find(c.MountPoints, c.Label); err == nil {
			return s
		}
	}
	if root != "" {
		if s, err := stick.OpenDir(root); err == nil {
			return s
		}
	}
	return nil
}

// settleStickReport gives a pending stick report its outcome once the
// install it reports on is over, and writes it to s (the stick just put
// in), or when s is nil to the configured stick if one is in. Without a
// stick the decided report waits for the next one. Failures are logged:
// a report never fails the command that decides the install.
func (a *Agent) settleStickReport(s *stick.Stick) {
	var p pendingReport
	ok, err := readJSON(a.path(stickReportFile), &p)
	if err != nil {
		a.logf("warning: pending stick report: %v", err)
		return
	}
	if !ok {
		return
	}
	if !p.Decided {
		j := a.j
		if j == nil || !j.State.Terminal() {
			return // still on trial
		}
		rep := &p.Report
		rep.Finished = a.now().UTC()
		rep.VersionAfter = a.installedVersion()
		switch j.State {
		case StateCommitted:
			rep.Result, rep.Error = stick.ResultSuccess, ""
		case StateRolledBack:
			rep.Result, rep.Error = stick.ResultRolledBack, strings.ReplaceAll(j.Result, "\n", " ")
		default:
			rep.Result, rep.Error = stick.ResultFailure, strings.ReplaceAll(j.Result, "\n", " ")
		}
		p.Decided = true
		if err := writeJSON(a.path(stickReportFile), p); err != nil {
			a.logf("warning: pending stick report: %v", err)
		}
	}
	if s == nil {
		if s = a.findStick(p.Root); s == nil {
			a.logf("no stick to update the report on (%s): it waits for the next stick", p.Report.Result)
			return
		}
	}
	p.Report.Checkin = a.stickCheckin()
	var path string
	if p.File != "" {
		path, err = s.ReplaceReport(p.File, p.Report)
	} else {
		path, err = s.WriteReport(p.Report)
	}
	if err != nil {
		a.logf("warning: the report waits for the next stick: %v", err)
		return
	}
	a.logf("report %s: %s", path, p.Report.Result)
	if err := os.Remove(a.path(stickReportFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		a.logf("warning: %v", fmt.Errorf("pending stick report: %w", err))
	}
}

// stickCheckin is the signed check-in a stick report carries back to the
// mirror (stick.Report.Checkin): none when the device has no mirror
// configured, or it cannot be made (logged; the report goes without).
func (a *Agent) stickCheckin() []byte {
	if a.cfg.Mirror.TUFRoot == "" {
		return nil
	}
	signed, err := a.signedCheckIn(nil)
	if err == nil && len(signed) > stick.MaxCheckinSize {
		err = fmt.Errorf("%d bytes, more than a stick report holds", len(signed))
	}
	if err != nil {
		a.logf("warning: the stick report goes without a signed check-in: %v", err)
		return nil
	}
	return signed
}
