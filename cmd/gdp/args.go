package main

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gdpnet/gdpnet/pdu"
)

// dashNames lets a name that starts with '-' be typed like any other. A
// printable name is 43 characters of base64url, whose alphabet includes '-',
// so one name in 64 starts with a dash and the flag parser would take it for
// a cluster of short flags: "unknown shorthand flag", or worse, a defined
// short flag that swallows the rest of the name as its value and shifts
// every argument after it. When such a name appears, the arguments are put
// in the order command words, flags (with their values), "--", positional
// arguments: the positional arguments keep their order, so "gdp kv put
// -NAME key value" means what it says. A dash name that is the value of the
// flag just before it stays that flag's value. "gdp lookup -- NAME" keeps
// working as well.
func dashNames(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil {
		cmd = root
	}
	path := strings.Fields(cmd.CommandPath())[1:]
	var words, flags, pos []string
	dash := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) > 1 && a[0] == '-' && !isDashName(a) {
			flags = append(flags, a)
			if takesValue(cmd, a) && i+1 < len(args) {
				i++
				flags = append(flags, args[i])
			}
			continue
		}
		if isDashName(a) {
			dash = true
		} else if len(pos) == 0 && len(words) < len(path) && a == path[len(words)] {
			words = append(words, a)
			continue
		}
		pos = append(pos, a)
	}
	if !dash {
		return args
	}
	out := append(append(words, flags...), "--")
	return append(out, pos...)
}

func isDashName(a string) bool {
	if len(a) != pdu.NameStringLen || a[0] != '-' {
		return false
	}
	_, err := pdu.ParseName(a)
	return err == nil
}

// takesValue reports whether prev is a flag, without an inline "=value",
// that consumes the next argument as its value.
func takesValue(cmd *cobra.Command, prev string) bool {
	var f *pflag.Flag
	switch {
	case strings.HasPrefix(prev, "--") && !strings.Contains(prev, "="):
		f = cmd.Flag(prev[2:])
	case len(prev) == 2 && prev[0] == '-' && prev[1] != '-':
		f = cmd.Flags().ShorthandLookup(prev[1:])
		if f == nil {
			f = cmd.InheritedFlags().ShorthandLookup(prev[1:])
		}
	}
	return f != nil && f.NoOptDefVal == ""
}
