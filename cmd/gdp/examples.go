package main

import (
	"strings"

	"github.com/spf13/cobra"
)

// commandExamples are the --help examples of the commands whose
// definitions carry none, by command path. fillExamples sets each where
// the command's own Example is empty, so an Example written next to the
// command wins. TestEveryCommandHasExample checks that no command is left
// without one.
var commandExamples = map[string]string{
	"gdp capsule": `  gdp capsule create --owner alice --writer alice-writer --servers S1,S2,S3 --w 2
  echo "21.5 °C" | gdp capsule append CAPSULE --writer alice-writer
  gdp capsule tail CAPSULE -n 20 -f`,
	"gdp capsule append": `  echo "21.5 °C" | gdp capsule append CAPSULE --writer alice-writer
  gdp capsule append CAPSULE --writer alice-writer --data one --data two`,
	"gdp capsule create": `  gdp capsule create --owner alice --writer alice-writer --desc "sensor log" \
      --servers S1,S2,S3 --w 2 --identity client`,
	"gdp capsule info":   `  gdp capsule info CAPSULE`,
	"gdp capsule read":   `  gdp capsule read CAPSULE --from 1 --json`,
	"gdp capsule tail":   `  gdp capsule tail CAPSULE -n 20 -f`,
	"gdp capsule verify": `  gdp capsule verify CAPSULE`,
	"gdp cert issue": `  gdp cert issue member --domain acme --member edge1.meta --out edge1.member
  gdp cert issue rtcert --help`,
	"gdp demo": `  gdp demo
  gdp demo --keep --timeout 2m`,
	"gdp ping": `  gdp ping ROUTER_OR_SERVER_NAME
  gdp ping NAME -c 10 -i 200ms --identity ping --keystore /var/lib/gdp/keys`,
	"gdp traceroute": `  gdp traceroute NAME
  gdp traceroute NAME --identity ping --keystore /var/lib/gdp/keys`,
}

// fillExamples sets the Example of every command under c that has none
// from commandExamples.
func fillExamples(c *cobra.Command) {
	for _, sub := range c.Commands() {
		if strings.TrimSpace(sub.Example) == "" {
			sub.Example = commandExamples[sub.CommandPath()]
		}
		fillExamples(sub)
	}
}
