// Command gdp is the one gdpnet binary: router, resolver, capsule server,
// handoff agent, gateway, simulator and the operator tools are its
// subcommands. Each subcommand lives in its own file and registers itself
// with addCommand from an init function.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

var rootCmd = &cobra.Command{
	Use:   "gdp",
	Short: "gdpnet: the Global Data Plane, a secure overlay that routes by 256-bit names",
	Long: `gdp is the single gdpnet binary.

Routers forward PDUs by flat 256-bit names; only routes that carry a valid
certificate chain from the data's owner are believed. Operators run the
daemons (router, resolver, capsuled) and use the tools (cert, ping, capsule)
from this one binary. Run "gdp demo" to watch a small overlay work on loopback.`,
	SilenceUsage:  true,
	SilenceErrors: true,
}

// addCommand registers a subcommand; called from init functions.
func addCommand(c *cobra.Command) { rootCmd.AddCommand(c) }

func main() {
	fillExamples(rootCmd)
	rootCmd.SetArgs(dashNames(rootCmd, os.Args[1:]))
	if err := rootCmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "gdp:", err)
		os.Exit(1)
	}
}
