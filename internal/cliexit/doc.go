// Package cliexit holds the command-line conventions ferry and
// ferry-agent share, so the two behave alike: how a command line is run
// (Program.Run: an unknown command or flag is a usage error with a "did
// you mean" hint, --version), the version both print, the exit codes
// that scripts rely on, and the error and hint lines on stderr.
package cliexit
