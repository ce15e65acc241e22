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
// a cluster of short flags ("unknown shorthand flag"). Such arguments are
// moved behind a "--", in their order, unless they are the value of the flag
// just before them. "gdp lookup -- NAME" keeps working as well.
func dashNames(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil {
		cmd = root
	}
	var out, moved []string
	for i, a := range args {
		if a == "--" {
			out = append(out, args[i:]...)
			break
		}
		if isDashName(a) && (len(out) == 0 || !takesValue(cmd, out[len(out)-1])) {
			moved = append(moved, a)
			continue
		}
		out = append(out, a)
	}
	if len(moved) == 0 {
		return args
	}
	hasSep := false
	for _, a := range out {
		if a == "--" {
			hasSep = true
			break
		}
	}
	if !hasSep {
		out = append(out, "--")
	}
	return append(out, moved...)
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
