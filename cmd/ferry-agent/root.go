package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/ferry-update/ferry/agent"
	"github.com/ferry-update/ferry/internal/cliexit"
	"github.com/ferry-update/ferry/internal/display"
)

// streams are the command's standard streams and test hooks. log is the
// agent's log on stderr: line by line, escaped, time-stamped unless
// stderr is a terminal or the journal (display.NewLog); err is stderr
// itself, for the progress bar and the closing error and hint lines.
type streams struct {
	in        io.Reader
	out, err  io.Writer
	log       *display.LogWriter
	configure func(*agent.Config)
}

// globalOptions are the flags every command takes.
type globalOptions struct {
	config     string
	bootedSlot string
}

func (o *globalOptions) addFlags(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVarP(&o.config, "config", "c", agent.DefaultConfigPath, "agent configuration file")
	f.StringVar(&o.bootedSlot, "booted-slot", "", "the slot that runs (a or b), overriding the kernel command line and boot environment")
}

// load loads the configuration and applies adjust.
func (o *globalOptions) load(s *streams, adjust ...func(*agent.Config)) (*agent.Config, error) {
	if o.bootedSlot != "" && o.bootedSlot != "a" && o.bootedSlot != "b" {
		return nil, cliexit.UsageError{Err: fmt.Errorf("--booted-slot %q: want a or b", o.bootedSlot)}
	}
	cfg, err := agent.LoadConfig(o.config)
	if err != nil {
		return nil, err
	}
	cfg.BootedSlot = o.bootedSlot
	cfg.Log = s.log
	for _, f := range adjust {
		f(cfg)
	}
	if s.configure != nil {
		s.configure(cfg)
	}
	return cfg, nil
}

// open loads the configuration, applies adjust and opens the agent.
func (o *globalOptions) open(s *streams, adjust ...func(*agent.Config)) (*agent.Agent, error) {
	cfg, err := o.load(s, adjust...)
	if err != nil {
		return nil, err
	}
	return agent.Open(cfg)
}

func newRootCommand(s *streams) *cobra.Command {
	var g globalOptions
	root := &cobra.Command{
		Use:   "ferry-agent",
		Short: "Install signed ferry bundles on this device, with A/B slots and rollback",
		Long: `ferry-agent installs signed ferry bundles into the inactive A/B slot, asks the
bootloader to try the new slot once, checks the new system at boot and
commits it or rolls back. Every step is journaled, so a power cut at any
point leaves a bootable device and an install that is finished or undone.

Exit codes: 0 success, 1 failure, 2 usage error, 3 bundle refused.`,
	}
	root.SetIn(s.in)
	root.SetOut(s.out)
	root.SetErr(s.err)
	g.addFlags(root)
	// Every command of ferry-agent is registered here, and only here.
	root.AddCommand(
		newInstallCommand(s, &g),
		newStatusCommand(s, &g),
		newCommitCommand(s, &g),
		newRollbackCommand(s, &g),
		newBootCheckCommand(s, &g),
		newRunCommand(s, &g),
		cliexit.Group(newTrustCommand(),
			newTrustUpdateCommand(s, &g),
		),
		newIdentityCommand(s, &g),
		newCheckinCommand(s, &g),
		program.VersionCommand(),
	)
	return root
}

// args checks the number of positional arguments as a usage error.
var args = cliexit.ExactArgs

// withAgent opens the agent (its configuration changed by adjust), runs
// fn and closes the agent.
func withAgent(s *streams, g *globalOptions, fn func(*agent.Agent) error, adjust ...func(*agent.Config)) error {
	a, err := g.open(s, adjust...)
	if err != nil {
		return err
	}
	defer a.Close()
	return fn(a)
}

// report prints a command's result: JSON on stdout with --json, else its
// message. The command's error, if any, is returned for the exit code.
func report(s *streams, asJSON bool, r *agent.Result, err error) error {
	if r == nil {
		return err
	}
	if asJSON {
		out := struct {
			*agent.Result
			Error string `json:"error,omitempty"`
		}{Result: r}
		if err != nil {
			out.Error = err.Error()
		}
		return errors.Join(err, writeJSON(s.out, out))
	}
	fmt.Fprintln(s.out, display.UntrustedLines(r.Message))
	return err
}

// writeJSON writes --json output.
var writeJSON = display.WriteJSON
