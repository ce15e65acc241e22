package sim

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

//go:embed examples/*.yaml
var examples embed.FS

// Examples lists the worked examples shipped in sim/examples
// (docs/SIMULATOR.md §5).
func Examples() []string {
	ents, _ := fs.ReadDir(examples, "examples")
	var names []string
	for _, e := range ents {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(names)
	return names
}

// Example parses one of the shipped examples by name.
func Example(name string) (*Topology, error) {
	b, err := examples.ReadFile("examples/" + name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("no example %q (known: %s)", name, strings.Join(Examples(), ", "))
	}
	return Parse("sim/examples/"+name+".yaml", b)
}
