package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// Every command an operator can run shows an example in its --help.
func TestEveryCommandHasExample(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" || sub.Name() == "completion" {
				continue
			}
			if strings.TrimSpace(sub.Example) == "" {
				t.Errorf("%q has no Example", sub.CommandPath())
			} else if !strings.Contains(sub.Example, sub.CommandPath()) && !strings.Contains(sub.Example, "gdp ") {
				t.Errorf("%q: Example does not show the command: %q", sub.CommandPath(), sub.Example)
			}
			walk(sub)
		}
	}
	fillExamples(rootCmd)
	walk(rootCmd)
}
