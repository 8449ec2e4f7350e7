package main

import "github.com/spf13/cobra"

func newFleetCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "fleet",
		Short: "Steer the fleet of a mirror: its operators and their API tokens",
	}
}
