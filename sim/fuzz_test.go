package sim

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/gdpnet/gdpnet/internal/fuzzseed"
)

// FuzzParseTopology: a topology file (docs/SIMULATOR.md; seeds: the
// examples, the built-ins and a file full of mistakes) parses to a valid
// topology or a ValidationError, never a panic; an accepted topology's own
// YAML parses back to the same YAML.
func FuzzParseTopology(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("examples", "*.yaml"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		fuzzseed.Add(f, b)
	}
	for _, name := range []string{"linear", "ring"} {
		top, err := Builtin(name, Params{})
		if err != nil {
			f.Fatal(err)
		}
		fuzzseed.Add(f, top.Marshal())
	}
	fuzzseed.Add(f, []byte(badTopo))
	f.Fuzz(func(t *testing.T, in []byte) {
		top, err := Parse("fuzz.yaml", in)
		if err != nil {
			return
		}
		if err := top.Validate(); err != nil {
			t.Fatalf("parsed topology does not validate: %v", err)
		}
		y := top.Marshal()
		back, err := Parse("again.yaml", y)
		if err != nil {
			t.Fatalf("own YAML does not parse: %v\n%s", err, y)
		}
		if y2 := back.Marshal(); !bytes.Equal(y, y2) {
			t.Fatalf("YAML changed on a round trip:\n%s\n---\n%s", y, y2)
		}
	})
}
