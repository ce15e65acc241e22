package main

import (
	"strings"

	"github.com/spf13/cobra"

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
	// The command words as cobra matched them, so an alias ("kv rm")
	// is a command word too.
	var path []*cobra.Command
	for c := cmd; c.HasParent(); c = c.Parent() {
		path = append([]*cobra.Command{c}, path...)
	}
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
		} else if len(pos) == 0 && len(words) < len(path) && (a == path[len(words)].Name() || path[len(words)].HasAlias(a)) {
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
// that consumes the next argument as its value. A cluster of shorthands
// ("-fn") consumes it when its last letter is a flag that needs a value and
// every letter before it is a flag that does not (pflag reads the letters
// after a value flag as its value).
func takesValue(cmd *cobra.Command, prev string) bool {
	switch {
	case strings.HasPrefix(prev, "--"):
		if strings.Contains(prev, "=") {
			return false
		}
		f := cmd.Flag(prev[2:])
		return f != nil && f.NoOptDefVal == ""
	case len(prev) >= 2 && prev[0] == '-':
		for i := 1; i < len(prev); i++ {
			f := cmd.Flags().ShorthandLookup(prev[i : i+1])
			if f == nil {
				f = cmd.InheritedFlags().ShorthandLookup(prev[i : i+1])
			}
			switch {
			case f == nil:
				return false // unknown: the flag parser says so
			case f.NoOptDefVal != "":
				continue // a bool: the next letter is another flag
			default:
				return i == len(prev)-1 // "-nVALUE" or "-n=VALUE" hold their value
			}
		}
	}
	return false
}
