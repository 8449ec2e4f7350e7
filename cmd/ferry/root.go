package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/ferry-update/ferry/internal/cliexit"
	"github.com/ferry-update/ferry/signing"
)

// streams are the command's standard streams, so tests can run commands
// in-process.
type streams struct {
	in       io.Reader
	out, err io.Writer
	// keys are the signing keys the command opened (loadPrivateKey),
	// closed when it ends: a key in a token holds a session.
	keys []signing.Key
}

// closeKeys closes the keys the command opened.
func (s *streams) closeKeys() {
	for _, k := range s.keys {
		k.Close()
	}
	s.keys = nil
}

func newRootCommand(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	return newRootCommandWith(&streams{in: stdin, out: stdout, err: stderr})
}

// newRootCommandWith is newRootCommand on streams the caller keeps.
func newRootCommandWith(s *streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "ferry",
		Short: "Signed software updates for devices that never see the internet",
	}
	root.SetIn(s.in)
	root.SetOut(s.out)
	root.SetErr(s.err)
	// Every command of ferry is registered here, and only here.
	root.AddCommand(
		cliexit.Group(newKeyCommand(),
			newKeyGenerateCommand(s),
			newKeyShowCommand(s),
		),
		cliexit.Group(newBundleCommand(),
			newCreateCommand(s),
			newSignCommand(s),
			newInspectCommand(s),
			newExtractCommand(s),
			newReencryptCommand(s),
			newDiffCommand(s),
		),
		newVerifyCommand(s),
		program.VersionCommand(),
		newPushCommand(s),
		newPullCommand(s),
		cliexit.Group(newMirrorCommand(),
			newMirrorInitCommand(s),
			newMirrorAddCommand(s),
			newMirrorSyncCommand(s),
			newMirrorListCommand(s),
			newMirrorServeCommand(s),
			newMirrorRefreshCommand(s),
			cliexit.Group(newMirrorDevicesCommand(s),
				newDevicesListCommand(s),
				newDevicesShowCommand(s),
				newDevicesEnrollCommand(s),
				newDevicesApproveCommand(s),
				newDevicesRejectCommand(s),
				newDevicesRevokeCommand(s),
			),
			newMirrorIngestCommand(s),
			newMirrorAddRootCommand(s),
		),
		cliexit.Group(newTrustCommand(),
			newTrustInitCommand(s),
			newTrustAddKeyCommand(s),
			newTrustRevokeCommand(s),
			newTrustRotateCommand(s),
			newTrustRenewCommand(s),
			newTrustSignCommand(s),
			newTrustShowCommand(s),
			newTrustVerifyChainCommand(s),
		),
		cliexit.Group(newMediaCommand(),
			newMediaBuildCommand(s),
			newMediaWriteCommand(s),
			newMediaInspectCommand(s),
			newMediaReportsCommand(s),
		),
		newAuditCommand(s),
		cliexit.Group(newFleetCommand(),
			newFleetDevicesCommand(s),
			newFleetDeviceCommand(s),
			newFleetEnrollCommand(s),
			newFleetGroupsCommand(s),
			newFleetDeployCommand(s),
			newFleetDeploymentsCommand(s),
			newFleetStatusCommand(s),
			newFleetPauseCommand(s),
			newFleetResumeCommand(s),
			newFleetAbortCommand(s),
			newFleetApproveCommand(s),
			newFleetSettingsCommand(s),
			newFleetRotateKeyCommand(s),
			cliexit.Group(newFleetUsersCommand(),
				newFleetUsersAddCommand(s),
				newFleetUsersListCommand(s),
				newFleetUsersPasswdCommand(s),
				newFleetUsersRemoveCommand(s),
			),
			cliexit.Group(newFleetTokensCommand(),
				newFleetTokensCreateCommand(s),
				newFleetTokensListCommand(s),
				newFleetTokensRevokeCommand(s),
			),
		),
	)
	return root
}

// args checks the number of positional arguments as a usage error.
var args = cliexit.ExactArgs
