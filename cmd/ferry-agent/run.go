package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ferry-update/ferry/agent"
	"github.com/ferry-update/ferry/internal/cliexit"
	"github.com/ferry-update/ferry/transport/stick"
)

// runOptions are the flags of 'ferry-agent run'.
type runOptions struct {
	once bool
}

func newRunCommand(s *streams, g *globalOptions) *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run as a daemon: install from a plugged-in stick, else poll the mirror",
		Long: `Run until SIGTERM or SIGINT. When a ferry stick is plugged in ([stick]
mount_points or label), apply the trust roots on it, install the best bundle
for this device type above the installed version, and write a report into
ferry/reports/ on the stick before saying "done". Otherwise poll the mirror
([mirror] url) every interval, plus or minus the jitter: check its TUF
metadata against [mirror] tuf_root (expired or replayed metadata is
refused), install the newest listed bundle above the installed version,
pulled by the digest the metadata gives, and check in with the result. A
mirror that cannot be reached is polled at 2, 4, ... up to 10 intervals.
A stick is looked for every [stick] poll_interval (default 2s) all the
while: one put in during a mirror poll cuts the poll short. Every network
request is bounded stage by stage ([network]: connect, TLS handshake,
response header, and a stalled body), never as a whole, so a long
download over a slow link still finishes. When nothing is new, run says
what it checked. After an install that needs a reboot, the reboot command runs and run
stops; boot-check finishes the install at the next boot.

A managed device ([mirror] managed = true) installs only what the mirror
assigns it in a signed assignment (docs/fleet.md), and nothing when it is
assigned nothing. --once makes one step (a stick, else one poll) and
exits: 1 if it failed, as when an assignment is refused.`,
		Args: args(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error { return runRun(c.Context(), s, g, o) },
	}
	cmd.Flags().BoolVar(&o.once, "once", false, "one step (a stick, else one poll of the mirror), then exit")
	return cmd
}

// runRun runs the agent as a daemon until SIGTERM or SIGINT.
func runRun(ctx context.Context, s *streams, g *globalOptions, o runOptions) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	cfg, err := g.load(s)
	if err != nil {
		return err
	}
	if cfg.Mirror.URL == "" && len(cfg.Stick.MountPoints) == 0 && cfg.Stick.Label == "" {
		return cliexit.UsageError{Err: fmt.Errorf("%s: nothing to watch: set [mirror] url or [stick] mount_points or label", g.config)}
	}
	r := &agent.Runner{Config: cfg}
	if o.once {
		_, err := r.Once(ctx)
		return err
	}
	return r.Run(ctx)
}

// installStick installs from the stick at dir and prints its report.
func installStick(ctx context.Context, s *streams, ag *agent.Agent, dir string, asJSON bool) error {
	st, err := stick.OpenDir(dir)
	if err != nil {
		return err
	}
	res, rep, err := ag.InstallStick(ctx, st)
	ag.CheckInNow(ctx, err)
	if res == nil {
		if asJSON {
			return report(s, true, &agent.Result{Message: "nothing installed: " + string(rep.Result)}, err)
		}
		if err == nil {
			fmt.Fprintf(s.out, "nothing to install from %s (%s)\n", dir, rep.Result)
		}
		return err
	}
	if res.Rebooting && err == nil {
		err = report(s, asJSON, res, nil)
		if rerr := ag.Reboot(ctx); rerr != nil {
			return rerr
		}
		return err
	}
	return report(s, asJSON, res, err)
}
