package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func init() {
	addCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the gdp version and the Go toolchain that built it",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			v, gov := "(devel)", "unknown"
			if bi, ok := debug.ReadBuildInfo(); ok {
				v, gov = bi.Main.Version, bi.GoVersion
			}
			fmt.Fprintf(cmd.OutOrStdout(), "gdp %s (%s)\n", v, gov)
		},
	})
}
