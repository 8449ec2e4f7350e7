package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/zstd"
)

func newVersionCommand(s *streams) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print ferry's version, bundle format and compressor",
		Args:  args(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			v := struct {
				Version       string `json:"version"`
				FormatVersion int    `json:"formatVersion"`
				Compressor    string `json:"compressor"`
				Go            string `json:"go"`
			}{"(devel)", bundle.FormatVersion, zstd.Implementation(), runtime.Version()}
			if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
				v.Version = bi.Main.Version
			}
			if asJSON {
				return writeJSON(s.out, v)
			}
			fmt.Fprintf(s.out, "ferry %s (bundle format %d, %s, %s)\n", v.Version, v.FormatVersion, v.Compressor, v.Go)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
