package cliexit

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/display"
	"github.com/ferry-update/ferry/internal/zstd"
)

// Version is what a build of ferry or ferry-agent says about itself.
type Version struct {
	Program       string `json:"program"`
	Version       string `json:"version"`       // the module version, or "(devel)"
	FormatVersion int    `json:"formatVersion"` // the newest bundle format it reads and writes
	Compressor    string `json:"compressor"`    // the zstd implementation (libzstd with cgo, else pure Go)
	Go            string `json:"go"`            // the Go release it was built with
}

// BuildVersion describes the running build of the program name.
func BuildVersion(name string) Version {
	v := Version{Program: name, Version: "(devel)", FormatVersion: bundle.FormatVersion, Compressor: zstd.Implementation(), Go: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	return v
}

// String is the line `NAME version` and `NAME --version` print.
func (v Version) String() string {
	return fmt.Sprintf("%s %s (bundle format %d, %s, %s)", v.Program, v.Version, v.FormatVersion, v.Compressor, v.Go)
}

// VersionCommand is the version command of the program: its Version as
// a line, or as JSON with --json.
func (p Program) VersionCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: fmt.Sprintf("Print %s's version, bundle format and compressor", p.Name),
		Args:  ExactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			v := BuildVersion(p.Name)
			if asJSON {
				return display.WriteJSON(c.OutOrStdout(), v)
			}
			_, err := fmt.Fprintln(c.OutOrStdout(), v)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
