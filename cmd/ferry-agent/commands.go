package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ferry-update/ferry/agent"
	"github.com/ferry-update/ferry/agent/bootenv"
	"github.com/ferry-update/ferry/internal/display"
)

// installOptions are the flags of ferry-agent install.
type installOptions struct {
	asJSON, plainHTTP bool
}

func (o *installOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print the result as JSON")
	cmd.Flags().BoolVar(&o.plainHTTP, "plain-http", false, "fetch oci:// references over http:// (a mirror without TLS; also [source] plain_http)")
}

func newInstallCommand(s *streams, g *globalOptions) *cobra.Command {
	var o installOptions
	cmd := &cobra.Command{
		Use:   "install SOURCE",
		Short: "Install a bundle from a file, - (stdin), an http(s) URL, an oci:// reference or a stick",
		Long: `Install a bundle in one streaming pass. Its signatures, device type and
version are checked before a payload byte is written; each payload streams
into the inactive slot (or to its update module), hashed on the way, and
only a fully written and verified update is activated. An A/B update then
runs the reboot command; boot-check finishes it after the reboot.

SOURCE is a bundle file, - for stdin, an http(s) URL, or a reference to a
registry or a ferry mirror: oci://HOST[:PORT]/REPO:TAG or
oci://HOST[:PORT]/REPO@sha256:DIGEST. Downloads resume with Range requests
when the connection drops.

SOURCE may also be a mounted stick: a directory holding ferry/ (ferry media
build). The trust roots on it are applied, the best bundle for this device
type above the installed version is installed, and a report is written
into ferry/reports/ on the stick before the reboot: "pending" until
boot-check (or commit, or rollback) decides, which then rewrites it with
the outcome if the stick is still in (else on the next stick put in).

With a mirror configured ([mirror] url), install, boot-check, commit and
rollback check in at once, so the mirror's device list is right before
the next poll; a failed check-in is a warning, not a failure.`,
		Args: args(1, "a bundle FILE, -, an http(s) URL or an oci:// reference"),
		RunE: func(c *cobra.Command, a []string) error { return runInstall(c.Context(), s, g, o, a) },
	}
	o.addFlags(cmd)
	return cmd
}

// runInstall installs the bundle at a[0]: a stick, or any source
// agent.OpenSource reads.
func runInstall(ctx context.Context, s *streams, g *globalOptions, o installOptions, a []string) error {
	adjust := func(cfg *agent.Config) {
		if o.plainHTTP {
			cfg.Source.PlainHTTP = true
		}
	}
	return withAgent(s, g, func(ag *agent.Agent) error {
		if agent.IsStickDir(a[0]) {
			return installStick(ctx, s, ag, a[0], o.asJSON)
		}
		update, finish := display.Progress(s.err, sourceSize(a[0]), "installing")
		r, err := ag.InstallFrom(ctx, a[0], s.in, agent.InstallOptions{Stream: func(r io.Reader) io.Reader {
			return &display.CountingReader{R: r, Update: update}
		}})
		finish()
		ag.CheckInNow(ctx, err)
		return report(s, o.asJSON, r, err)
	}, adjust)
}

// newStepCommand builds the commands that move an update on trial one step
// (boot-check, commit, rollback): no arguments, --json, one agent call.
func newStepCommand(s *streams, g *globalOptions, use, short, long string, step agentStep) *cobra.Command {
	var o jsonOptions
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  args(0, "no arguments"),
		RunE:  func(c *cobra.Command, _ []string) error { return runStep(c.Context(), s, g, o, step) },
	}
	o.addFlags(cmd, "print the result as JSON")
	return cmd
}

// agentStep is one of the agent's steps on an update on trial.
type agentStep func(*agent.Agent, context.Context) (*agent.Result, error)

// jsonOptions are the flags of a command whose only flag is --json.
type jsonOptions struct{ asJSON bool }

func (o *jsonOptions) addFlags(cmd *cobra.Command, help string) {
	cmd.Flags().BoolVar(&o.asJSON, "json", false, help)
}

// runStep runs step, checks in its outcome and reports it.
func runStep(ctx context.Context, s *streams, g *globalOptions, o jsonOptions, step agentStep) error {
	return withAgent(s, g, func(ag *agent.Agent) error {
		r, err := step(ag, ctx)
		ag.CheckInNow(ctx, err)
		return report(s, o.asJSON, r, err)
	})
}

func newBootCheckCommand(s *streams, g *globalOptions) *cobra.Command {
	return newStepCommand(s, g, "boot-check",
		"At boot: health-check a new slot on trial, then commit or roll back and reboot",
		`Run at every boot (e.g. from a systemd unit after the system is up). When
the device runs an update on trial, run the health checks: commit when all
pass, roll back and reboot into the old slot when one fails or times out.
A fallback the bootloader already made (bootcount over bootlimit) is
recorded. Otherwise there is nothing to do.`,
		(*agent.Agent).BootCheck)
}

func newCommitCommand(s *streams, g *globalOptions) *cobra.Command {
	return newStepCommand(s, g, "commit", "Make the update on trial permanent, without health checks", "",
		func(ag *agent.Agent, _ context.Context) (*agent.Result, error) { return ag.Commit() })
}

// rollbackOptions are the flags of ferry-agent rollback.
type rollbackOptions struct {
	jsonOptions
	previous bool
}

func (o *rollbackOptions) addFlags(cmd *cobra.Command) {
	o.jsonOptions.addFlags(cmd, "print the result as JSON")
	cmd.Flags().BoolVar(&o.previous, "previous", false, "go back to the previous committed release, still in the other slot")
}

func newRollbackCommand(s *streams, g *globalOptions) *cobra.Command {
	var o rollbackOptions
	cmd := &cobra.Command{
		Use:   "rollback",
		Short: "Abandon the update on trial, or with --previous go back to the previous committed release",
		Long: `Without flags: abandon the update on trial; the old slot is selected again
(and the device reboots into it when the new slot runs).

With --previous: go back to the release committed before the running one,
for a problem found after the commit. The other slot must still hold it
byte for byte: it is read back and checked against the digests its
signatures covered, recorded when it was committed. A slot written since
(by an install that failed or was rolled back) is refused and nothing
changes. The slot is then tried like an install: the device reboots into
it and boot-check commits it, or the bootloader falls back. The version
policy does not apply: the release was installed and committed here
before. Files targets and update modules stay as they are.`,
		Args: args(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			step := (*agent.Agent).Rollback
			if o.previous {
				step = (*agent.Agent).RollbackPrevious
			}
			return runStep(c.Context(), s, g, o.jsonOptions, step)
		},
	}
	o.addFlags(cmd)
	return cmd
}

func newStatusCommand(s *streams, g *globalOptions) *cobra.Command {
	var o jsonOptions
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show slots, installed version, boot state and the last install",
		Args:  args(0, "no arguments"),
		RunE:  func(*cobra.Command, []string) error { return runStatus(s, g, o) },
	}
	o.addFlags(cmd, "print the status as JSON")
	return cmd
}

// runStatus prints the device's status.
func runStatus(s *streams, g *globalOptions, o jsonOptions) error {
	return withAgent(s, g, func(ag *agent.Agent) error {
		st, err := ag.Status()
		if o.asJSON {
			out := struct {
				*agent.Status
				Error string `json:"error,omitempty"`
			}{Status: st}
			if err != nil {
				out.Error = err.Error()
			}
			return errors.Join(err, writeJSON(s.out, out))
		}
		printStatus(s, st)
		return err
	})
}

func printStatus(s *streams, st *agent.Status) {
	w := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintf(w, "device type\t%s\n", st.DeviceType)
	if in := st.Installed; in != nil {
		fmt.Fprintf(w, "installed\t%s %s (slot %s, committed %s)\n", in.Bundle, in.Version, orNone(in.Slot), in.At.Format("2006-01-02 15:04:05Z"))
		if st.BootedSlot != "" {
			other := bootenv.OtherSlot(st.BootedSlot)
			if p := in.Releases[other]; p != nil {
				fmt.Fprintf(w, "previous\t%s %s (slot %s, committed %s; ferry-agent rollback --previous checks and boots it)\n", p.Bundle, p.Version, other, p.At.Format("2006-01-02 15:04:05Z"))
			}
		}
	} else {
		fmt.Fprintf(w, "installed\tnothing recorded\n")
	}
	for _, c := range st.Components {
		where := "global"
		if c.Slot != "" {
			where = "slot " + c.Slot
		}
		from := c.Bundle + " " + c.BundleVersion
		if c.Bundle == c.Name && c.BundleVersion == c.Version {
			from = "itself"
		}
		types := "payload type unknown"
		if len(c.Types) > 0 {
			types = fmt.Sprint(c.Types)
			types = strings.ReplaceAll(strings.Trim(types, "[]"), " ", "+")
		}
		fmt.Fprintf(w, "component %s\t%s (%s, %s, from %s)\n", c.Name, c.Version, types, where, from)
	}
	if t := st.Trust; t != nil && t.RootVersion > 0 {
		fmt.Fprintf(w, "trust root\tv%d, expires %s (release: %d of %d keys", t.RootVersion, t.RootExpires.Format("2006-01-02 15:04:05Z"), t.Threshold, t.Keys)
		if t.Revoked > 0 {
			fmt.Fprintf(w, ", %d revoked", t.Revoked)
		}
		fmt.Fprintln(w, ")")
		switch {
		case t.RootExpired:
			fmt.Fprintf(w, "trust root\tEXPIRED: every bundle is refused until a renewed root is applied (ferry trust renew, then ferry-agent trust update)\n")
		case t.RootExpiresSoon:
			fmt.Fprintf(w, "trust root\texpires soon (within [trust] expiry_warning): renew it (ferry trust renew) and give it to the device\n")
		}
		if t.KeptRootRefused != "" {
			fmt.Fprintf(w, "trust root\tWARNING: %s\n", t.KeptRootRefused)
		}
	} else if t != nil {
		fmt.Fprintf(w, "trust\t%d of %d keys\n", t.Threshold, t.Keys)
	}
	if st.BootedSlot != "" {
		fmt.Fprintf(w, "booted slot\t%s (from the %s)\n", st.BootedSlot, st.BootedFrom)
	}
	if b := st.Boot; b != nil {
		fmt.Fprintf(w, "boot env\tslot=%s upgrade_available=%t bootcount=%d bootlimit=%d", orNone(b.Slot), b.UpgradeAvailable, b.BootCount, b.BootLimit)
		if b.FallbackDetected {
			fmt.Fprintf(w, " (bootloader fell back)")
		}
		fmt.Fprintln(w)
		if b.UpgradeAvailable && !b.FallbackDetected {
			fmt.Fprintf(w, "trial\tslot %s is tentative: the bootloader tries it %d more time(s), then falls back\n", b.Slot, b.BootLimit-b.BootCount)
		}
	}
	for _, sl := range st.Slots {
		if sl.Dir != "" {
			fmt.Fprintf(w, "target %s\t%s (current: %s)\n", sl.Name, sl.Dir, orNone(sl.Current))
		} else {
			fmt.Fprintf(w, "slots %s\ta=%s b=%s\n", sl.Name, sl.A, sl.B)
		}
	}
	j := st.Install
	if j == nil {
		fmt.Fprintf(w, "state\tidle\n")
		return
	}
	fmt.Fprintf(w, "state\t%s\n", j.State)
	what := j.Origin
	if j.Bundle != "" {
		what = fmt.Sprintf("%s %s from %s", j.Bundle, j.Version, j.Origin)
	}
	if j.ToSlot != "" {
		what += fmt.Sprintf(" (slot %s -> %s)", j.FromSlot, j.ToSlot)
	}
	fmt.Fprintf(w, "install\t%s\n", display.Untrusted(what))
	for _, m := range j.Modules {
		fmt.Fprintf(w, "module\t%s: payload %s", display.Untrusted(m.Module), display.Untrusted(m.Payload))
		if m.Reboot != "" {
			fmt.Fprintf(w, " (needs reboot: %s, supports rollback: %s)", display.Untrusted(m.Reboot), display.Untrusted(m.Rollback))
		}
		fmt.Fprintln(w)
	}
	if j.Result != "" {
		fmt.Fprintf(w, "result\t%s\n", display.Untrusted(j.Result))
	}
	if st.Pending {
		next := "run boot-check (or commit) once it has rebooted into the new slot, or rollback"
		if j.State == agent.StateTentative && j.NeedsReboot {
			next = "reboot to try the new slot"
		}
		fmt.Fprintf(w, "next\t%s\n", next)
	}
}

func orNone(s string) string {
	if strings.TrimSpace(s) == "" {
		return "none"
	}
	return s
}

// sourceSize is the bundle's size when SOURCE is a local file, for the
// progress bar; -1 (a spinner) otherwise.
func sourceSize(source string) int64 {
	if source == "-" || strings.Contains(source, "://") {
		return -1
	}
	st, err := os.Stat(source)
	if err != nil || !st.Mode().IsRegular() {
		return -1
	}
	return st.Size()
}
