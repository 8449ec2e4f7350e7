// Package module runs update modules through the Mender update-module
// protocol, version 3, so that modules written for Mender (the stock
// single-file, directory and script modules, rpm/deb modules, ...) install a
// ferry module payload unmodified.
//
// # Use
//
// A [Runner] names where modules live and where their file trees go. For
// each module payload the agent calls [Runner.Prepare], which builds a fresh
// file tree, then drives the returned [Session] through the states in the
// order of its own state machine:
//
//	s, err := r.Prepare(module.Payload{Type: "single-file", ArtifactName: "app-1.2.0"})
//	err = s.Download(ctx, module.TarFiles(content)) // ProvidePayloadFileSizes, then Download[WithFileSizes]
//	// the caller checks the content digest here, before anything is installed
//	err = s.Run(ctx, module.ArtifactInstall)
//	reboot, err := s.NeedsReboot(ctx)  // RebootNo, RebootYes, RebootAutomatic
//	rollback, err := s.SupportsRollback(ctx)
//	err = s.Run(ctx, module.ArtifactCommit) // or ArtifactRollback, ArtifactFailure ...
//	err = s.Close(ctx)                      // Cleanup, then the tree is removed
//
// After a reboot the agent re-attaches to the tree it left with
// [Runner.Resume]: the tree (and whatever the module keeps in its tmp/, such
// as single-file's backup) survives until Close.
//
// # Protocol
//
// A module is an executable in [Runner.ModulesDir] (default
// /usr/share/mender/modules/v3, Mender's) named after the payload type. It is
// called once per state as
//
//	MODULE STATE FILE_TREE
//
// with FILE_TREE the absolute path of the payload's file tree, the working
// directory set to FILE_TREE (as Mender does), the agent's environment,
// standard input /dev/null, in a process group of its own. The states are
// those Mender defines: ProvidePayloadFileSizes, Download,
// DownloadWithFileSizes, ArtifactInstall, NeedsArtifactReboot,
// SupportsRollback, ArtifactReboot, ArtifactVerifyReboot, ArtifactCommit,
// ArtifactRollback, ArtifactRollbackReboot, ArtifactVerifyRollbackReboot,
// ArtifactFailure and Cleanup. Modules must exit 0 and print nothing for a
// state they do not know, so [Session.Run] accepts any state name; a non-zero
// exit fails the state.
//
// Query states (ProvidePayloadFileSizes, NeedsArtifactReboot,
// SupportsRollback) answer on standard output: one line, surrounding blanks
// ignored; no output means "No"; more than one non-blank line is an error.
// Standard error of every call, and standard output of the other states, go
// to [Runner.Log] line by line, at most 64 KiB per stream and call. Each call
// is bounded by [Runner.Timeout] (default 4 h, Mender's ModuleTimeoutSeconds)
// and by its context; when either ends, the whole process group is killed
// and the error wraps [ErrTimeout] or the context's error.
//
// The file tree is WorkDir/payloads/NNNN/tree (NNNN the payload index, as
// Mender's /var/lib/mender/modules/v3/payloads/0000/tree):
//
//	version                  "3\n"
//	current_artifact_name    the installed artifact, with a newline ("" if unknown)
//	current_artifact_group   likewise
//	current_device_type      the device type, with a newline
//	header/artifact_name     the new artifact's name, no newline
//	header/artifact_group    its group
//	header/payload_type      the module name
//	header/header-info       JSON, verbatim from the Payload (a minimal document if empty)
//	header/type-info         JSON, likewise
//	header/meta-data         JSON, likewise ("{}" if empty)
//	tmp/                     scratch space for the module, removed with the tree
//	files/                   the payload's files, when the module did not stream them
//	stream-next, streams/    named pipes, during Download only
//
// # Download and streams
//
// [Session.Download] first asks ProvidePayloadFileSizes; "Yes" selects
// DownloadWithFileSizes. It creates the named pipe stream-next and runs the
// module. Should the module open stream-next, it takes the files itself: for
// each file the agent creates the named pipe streams/NAME and writes one line
// to stream-next, "streams/NAME\n" (with DownloadWithFileSizes
// "streams/NAME SIZE\n"), closes stream-next, and writes the file's bytes
// into streams/NAME; the module reads the line, then the whole stream, then
// stream-next again. After the last file stream-next is opened and closed
// without data: the module reads end-of-file (an empty read) and knows there
// are no more files. A module that exits 0 without ever opening stream-next
// leaves the files to the agent, which stores each one as files/NAME (fsynced)
// after the module has exited, as Mender does. A module that opens
// stream-next but exits before the end-of-file read, or leaves a stream
// unread, fails the download.
//
// The pipe ends are opened non-blocking and polled, so the agent never blocks
// in open(2) on a module that has gone: the module's exit, the timeout or the
// context stops the wait, and writes to a stream are cut off the same way.
//
// Download returns only after every byte of the content was read, so the
// caller's verifying reader has reached end-of-file and checked the digest
// before [ArtifactInstall] runs. A module must not activate anything during
// Download (the protocol's own rule), because the check comes after it.
//
// Payload files are the regular files at the top of the payload's tar
// stream ([TarFiles]), as mender-artifact stores them: names are single path
// components without control characters; directories other than the root,
// links and devices are refused.
//
// Not implemented: augmented artifacts (SupportsAugmentedArtifacts,
// ListSupportedOriginalTypes) and AutomaticDualRootfs rollback, which Mender
// does not implement either; the state order, reboots and the "Automatic"
// reboot are the caller's; the protocol has no partial-download resume.
//
// Named pipes and process groups need Linux, macOS or a BSD; elsewhere
// Prepare and Resume fail with [ErrUnsupported].
package module
