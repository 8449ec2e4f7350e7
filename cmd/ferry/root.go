package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/ferry-update/ferry/internal/cliexit"
)

// streams are the command's standard streams, so tests can run commands
// in-process.
type streams struct {
	in       io.Reader
	out, err io.Writer
}

func newRootCommand(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	s := &streams{in: stdin, out: stdout, err: stderr}
	root := &cobra.Command{
		Use:   "ferry",
		Short: "Signed software updates for devices that never see the internet",
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(
		newKeyCommand(s),
		newBundleCommand(s),
		newVerifyCommand(s),
		program.VersionCommand(),
		newPushCommand(s),
		newPullCommand(s),
		newMirrorCommand(s),
		newTrustCommand(s),
		newMediaCommand(s),
		newAuditCommand(s),
	)
	return root
}

// args checks the number of positional arguments as a usage error.
var args = cliexit.ExactArgs
