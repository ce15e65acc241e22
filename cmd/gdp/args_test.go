package main

import (
	"slices"
	"strings"
	"testing"
)

func TestDashNames(t *testing.T) {
	const dash = "-8aIGUWegNZPzdphKsKpH4MjY6tyy60kwypXUF_ybyo" // a valid name
	const plain = "ooRhjiL8dUDauxo9v23Zz5v9D0CwNYW5ZVRffvTLurw"
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{"plain name untouched", []string{"lookup", plain, "--json"}, []string{"lookup", plain, "--json"}},
		{"dash name moved behind --", []string{"lookup", dash, "--json"}, []string{"lookup", "--json", "--", dash}},
		{"value of a string flag stays", []string{"capsule", "info", plain, "--router-name", dash}, []string{"capsule", "info", plain, "--router-name", dash}},
		{"after a bool flag it moves", []string{"lookup", "--json", dash}, []string{"lookup", "--json", "--", dash}},
		{"existing separator kept", []string{"lookup", "--json", "--", dash}, []string{"lookup", "--json", "--", dash}},
		{"not a name: left to the flag parser", []string{"lookup", "-x"}, []string{"lookup", "-x"}},
		// The capsule name first, then key and value: moving only the
		// name behind "--" made the key the capsule name (CI, stop 27).
		{"positional order kept", []string{"kv", "put", dash, "colour", "red", "--writer", "w", "--json"},
			[]string{"kv", "put", "--writer", "w", "--json", "--", dash, "colour", "red"}},
		{"flag value beside a dash name", []string{"kv", "get", "--as-of", "7", dash, "colour"},
			[]string{"kv", "get", "--as-of", "7", "--", dash, "colour"}},
		// An alias is a command word: "kv rm" put behind "--" ran "kv"
		// with "rm" as its argument.
		{"alias stays a command word", []string{"kv", "rm", dash, "colour", "--writer", "w"},
			[]string{"kv", "rm", "--writer", "w", "--", dash, "colour"}},
		// "-fn 5": the cluster's last letter takes the next argument;
		// moving "5" behind "--" made "--" the value of -n.
		{"shorthand cluster ending in a value flag", []string{"capsule", "tail", "-fn", "5", dash},
			[]string{"capsule", "tail", "-fn", "5", "--", dash}},
		{"shorthand with its value attached", []string{"capsule", "tail", "-fn5", dash, "-f"},
			[]string{"capsule", "tail", "-fn5", "-f", "--", dash}},
		{"shorthand with =value", []string{"capsule", "tail", "-n=5", dash},
			[]string{"capsule", "tail", "-n=5", "--", dash}},
		{"bool written --x=false", []string{"capsule", "tail", "--follow=false", dash},
			[]string{"capsule", "tail", "--follow=false", "--", dash}},
		{"persistent flag before the subcommand", []string{"capsule", "-c", "x.yaml", "tail", dash},
			[]string{"capsule", "tail", "-c", "x.yaml", "--", dash}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := dashNames(rootCmd, tt.in); !slices.Equal(got, tt.want) {
				t.Errorf("dashNames(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// A name starting with '-' reaches the command as its argument.
func TestDashNameReachesCommand(t *testing.T) {
	const dash = "-8aIGUWegNZPzdphKsKpH4MjY6tyy60kwypXUF_ybyo"
	// --api points at a closed port: the command must fail connecting,
	// not on flag parsing.
	rootCmd.SetArgs(dashNames(rootCmd, []string{"lookup", dash, "--api", "http://127.0.0.1:1"}))
	defer func() { rootCmd.SetArgs(nil); resetCommand("lookup") }()
	err := rootCmd.Execute()
	if err == nil {
		t.Fatal("lookup against a closed port succeeded")
	}
	if strings.Contains(err.Error(), "unknown shorthand flag") {
		t.Fatalf("name taken for flags: %v", err)
	}
}
