package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
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

// Every flag's --help line shows a value name of one word: pflag takes a
// `backquoted` part of the usage as the value's name, so a usage quoting
// a command printed "--adcert-lifetime gdp capsule renew" instead of
// "--adcert-lifetime duration" (found by a first deployment by hand,
// Session 18).
func TestFlagValueNamesAreOneWord(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		check := func(f *pflag.Flag) {
			name, _ := pflag.UnquoteUsage(f)
			if strings.ContainsAny(name, " \t") {
				t.Errorf("%s --%s: --help shows the value name %q (a `quoted` part of its usage)", c.CommandPath(), f.Name, name)
			}
		}
		c.LocalFlags().VisitAll(check)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(rootCmd)
}
