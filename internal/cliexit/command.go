package cliexit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Run runs the command line args through root and its commands the way
// ferry and ferry-agent both do, and returns the exit code (see Exit,
// whose lines go to stderr):
//
//   - an unknown command (`ferry bundel`, `ferry bundle inspct`) is a usage
//     error, with "did you mean 'ferry bundle'?" when a command is close;
//     a command of commands given none prints its help;
//   - a flag error is a usage error; a mistyped flag gets "did you mean
//     --json?" when a flag of the command is close;
//   - `--version` prints the same line as the version command
//     (VersionCommand).
func (p Program) Run(ctx context.Context, root *cobra.Command, args []string, stderr io.Writer) int {
	return p.Exit(stderr, p.Execute(ctx, root, args))
}

// Execute is Run without the ending: it returns the command's error, for
// a program that has more to do (flush a log) before it calls Exit.
func (p Program) Execute(ctx context.Context, root *cobra.Command, args []string) error {
	p.conventions(root)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

// conventions gives root and every command under it what Run promises.
func (p Program) conventions(root *cobra.Command) {
	root.SilenceUsage, root.SilenceErrors = true, true
	root.SetFlagErrorFunc(flagError)
	root.Version = BuildVersion(p.Name).String()
	root.SetVersionTemplate("{{.Version}}\n")
	if root.Flags().Lookup("version") == nil {
		// Declared here, so cobra does not take -v for it.
		root.Flags().Bool("version", false, "print the version and exit")
	}
	// A command of commands runs (to refuse unknown ones), but its usage
	// names only "NAME [command]", as before.
	root.SetUsageTemplate(strings.Replace(root.UsageTemplate(), "{{if .Runnable}}", "{{if and .Runnable (not .HasAvailableSubCommands)}}", 1))
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if c.HasSubCommands() && !c.Runnable() {
			c.Args = unknownCommand
			c.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// unknownCommand is the arguments check of a command of commands: any
// argument it is given is a command it does not have.
func unknownCommand(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	var names []string
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() {
			names = append(names, sub.Name())
		}
	}
	var paths []string
	for _, n := range suggest(args[0], names) {
		paths = append(paths, "'"+c.CommandPath()+" "+n+"'")
	}
	return UsageError{Err: fmt.Errorf("unknown command %q for %q", args[0], c.CommandPath()), Hint: didYouMean(paths)}
}

// flagError makes a flag error a usage error, with the command's flags
// closest to a mistyped one as its hint. A single-dash word (-jsn) is
// looked up as a long flag too, as that is what it was likely meant as.
func flagError(c *cobra.Command, err error) error {
	ue := UsageError{Err: err}
	var ne *pflag.NotExistError
	if !errors.As(err, &ne) {
		return ue
	}
	typed := ne.GetSpecifiedName()
	if group := ne.GetSpecifiedShortnames(); group != "" {
		typed = group
	}
	if len(typed) < 2 {
		return ue
	}
	var names []string
	c.Flags().VisitAll(func(f *pflag.Flag) {
		if !f.Hidden {
			names = append(names, f.Name)
		}
	})
	var flags []string
	for _, n := range suggest(typed, names) {
		flags = append(flags, "--"+n)
	}
	ue.Hint = didYouMean(flags)
	return ue
}

// ExactArgs checks that a command is given n arguments, described by
// names in the error ("want a bundle FILE, got 2 argument(s)"), as a
// usage error.
func ExactArgs(n int, names string) cobra.PositionalArgs {
	return func(_ *cobra.Command, a []string) error {
		if len(a) != n {
			return UsageError{Err: fmt.Errorf("want %s, got %d argument(s)", names, len(a))}
		}
		return nil
	}
}

// Group adds subcommands to the group command parent ('ferry mirror',
// 'ferry trust', ...) and returns parent, so that a binary registers its
// whole command tree in one expression in its root command.
func Group(parent *cobra.Command, subcommands ...*cobra.Command) *cobra.Command {
	parent.AddCommand(subcommands...)
	return parent
}
