package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/display"
)

// diffOptions are the flags of the command newDiffCommand builds; runDiff
// does its work.
type diffOptions struct {
	asJSON bool
}

func newDiffCommand(s *streams) *cobra.Command {
	var opts diffOptions
	cmd := &cobra.Command{
		Use:   "diff OLD NEW",
		Short: "Show what a device holding bundle OLD fetches to install NEW (delta updates)",
		Long: `Compare the chunk indexes of two bundles (made with 'ferry bundle create
--delta'): for each payload of NEW, the chunks a device that installed OLD
reuses and the chunks and bytes it fetches, and the parts a mirror or
registry holding OLD adds for NEW. Reads only the heads; judges nothing.`,
		Args: args(2, "the OLD and NEW bundle files"),
		RunE: func(_ *cobra.Command, a []string) error { return runDiff(s, opts, a) },
	}
	cmd.Flags().BoolVar(&opts.asJSON, "json", false, "print JSON")
	return cmd
}

func runDiff(s *streams, opts diffOptions, a []string) error {
	old, doneOld, err := s.openBundle("diff", a[0])
	if err != nil {
		return err
	}
	defer doneOld()
	nw, doneNew, err := s.openBundle("diff", a[1])
	if err != nil {
		return err
	}
	defer doneNew()
	ds, err := bundle.DiffBundles(old, nw)
	if err != nil {
		return fmt.Errorf("diff %s %s: %w", a[0], a[1], err)
	}
	if opts.asJSON {
		return writeJSON(s.out, map[string]any{"old": describe(old.Config()), "new": describe(nw.Config()), "payloads": ds})
	}
	fmt.Fprintf(s.out, "%s -> %s\n", describe(old.Config()), describe(nw.Config()))
	for _, d := range ds {
		if !d.Chunked {
			fmt.Fprintf(s.out, "payload %s: not chunked in both bundles (create them with --delta): a device fetches all %s\n", d.Payload, display.Bytes(d.Full))
		} else {
			fmt.Fprintf(s.out, "payload %s: %d chunks, %s\n", d.Payload, d.Chunks, display.Bytes(d.Bytes))
			fmt.Fprintf(s.out, "  shared   %d chunks, %s (%.1f %%)\n", d.SharedChunks, display.Bytes(d.SharedBytes), percent(d.SharedBytes, d.Bytes))
			fmt.Fprintf(s.out, "  new      %d chunks, %s, %s compressed\n", d.NewChunks, display.Bytes(d.NewBytes), display.Bytes(d.NewCompressedBytes))
			fmt.Fprintf(s.out, "  fetch    %s with the index (%s); a full install fetches %s\n", display.Bytes(d.Fetch), display.Bytes(d.IndexBytes), display.Bytes(d.Full))
		}
		fmt.Fprintf(s.out, "  mirror   %d of %d parts new, %s\n", d.Parts-d.SharedParts, d.Parts, display.Bytes(d.NewPartBytes))
	}
	return nil
}

func describe(c *bundle.Config) string { return c.Name + " " + c.Version }

func percent(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}
