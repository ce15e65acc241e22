package config

import (
	"github.com/gdpnet/gdpnet/internal/fuzzseed"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"gopkg.in/yaml.v3"
)

// FuzzDecode feeds arbitrary bytes to the strict decoder: no panic, and what
// decodes re-encodes and decodes to the same value.
func FuzzDecode(f *testing.F) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds: %v", err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		fuzzseed.Add(f, b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var c testConfig
		if err := decode(b, &c); err != nil {
			return
		}
		out, err := yaml.Marshal(&c)
		if err != nil {
			t.Fatalf("decoded config does not encode: %v", err)
		}
		var back testConfig
		if err := decode(out, &back); err != nil {
			t.Fatalf("re-encoded config does not decode: %v\n%s", err, out)
		}
		if len(c.Peers) == 0 && len(back.Peers) == 0 {
			c.Peers, back.Peers = nil, nil // yaml writes a nil slice as []
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip =\n%+v\nwant\n%+v", back, c)
		}
	})
}
