package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferry-update/ferry/agent"
	"github.com/ferry-update/ferry/internal/cliexit"
)

func newTrustCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "trust",
		Short: "Manage the trust root this device judges bundles with",
	}
}

func newTrustUpdateCommand(s *streams, g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "update FILE...",
		Short: "Move the trust root forward to newer versions (N.root.json files)",
		Long: `Apply newer trust-root documents, in version order, each signed by a
threshold of the previous version's root keys and of its own
(verify/TRUST.md §5). The accepted root is stored in the state directory
before it is used; on any failure the device keeps the root it had.
Versions not above the one held are ignored.`,
		Args: func(_ *cobra.Command, a []string) error {
			if len(a) == 0 {
				return cliexit.UsageError{Err: errors.New("want one or more trust-root files")}
			}
			return nil
		},
		RunE: func(_ *cobra.Command, a []string) error { return runTrustUpdate(s, g, a) },
	}
}

// runTrustUpdate applies the trust-root files in a and prints the root
// the device now holds.
func runTrustUpdate(s *streams, g *globalOptions, a []string) error {
	return withAgent(s, g, func(ag *agent.Agent) error {
		r, err := ag.ApplyRootFiles(a)
		if err != nil {
			return err
		}
		fmt.Fprintf(s.out, "trust root v%d, expires %s\n", r.Version(), r.Expires().Format("2006-01-02 15:04:05Z"))
		return nil
	})
}
