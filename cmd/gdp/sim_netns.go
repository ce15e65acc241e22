package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gdpnet/gdpnet/sim"
)

func init() {
	for _, c := range rootCmd.Commands() {
		if c.Name() == "sim" {
			c.AddCommand(simCleanCmd())
		}
	}
}

func simCleanCmd() *cobra.Command {
	var all bool
	c := &cobra.Command{
		Use:   "clean",
		Short: "Remove what netns runs left behind (namespaces, processes, state files)",
		Long: `clean removes the leftovers of "gdp sim run --mode netns" runs whose
simulator is gone (killed, crashed): every process in their namespaces,
the namespaces (` + sim.NetnsPrefix + `…, and with them their veths), their
scratch directories and their state files in ` + sim.StateDir + `, and any
` + sim.NetnsPrefix + `… namespace no state file names. Runs whose simulator
still runs are left alone unless --all, which also removes every
` + sim.VethPrefix + `… veth of this namespace. It prints what it removed. Root.`,
		Example: `  gdp sim clean
  gdp sim clean --all`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := sim.CleanNetns(all)
			if rep != nil {
				fmt.Fprint(cmd.OutOrStdout(), rep.String())
			}
			return err
		},
	}
	c.Flags().BoolVar(&all, "all", false, "also the resources of runs still running, and every "+sim.VethPrefix+"… veth")
	return c
}
