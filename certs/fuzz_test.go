package certs

import (
	"bytes"
	"github.com/gdpnet/gdpnet/internal/fuzzseed"
	"os"
	"path/filepath"
	"testing"
)

func seedFuzz(f *testing.F, pattern string) {
	files, _ := filepath.Glob(filepath.Join("testdata", pattern))
	if len(files) == 0 {
		f.Fatalf("no seeds testdata/%s", pattern)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		fuzzseed.Add(f, b)
	}
}

// FuzzParseMetadata: no panic; whatever parses re-encodes to the same bytes.
func FuzzParseMetadata(f *testing.F) {
	seedFuzz(f, "*.meta")
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMetadata(b)
		if err != nil {
			return
		}
		if !bytes.Equal(m.Marshal(), b) {
			t.Fatalf("round trip: %x -> %x", b, m.Marshal())
		}
		if _, err := ParseMetadata(m.Marshal()); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzParseCert: no panic; round trip; checking a signature never panics.
func FuzzParseCert(f *testing.F) {
	seedFuzz(f, "*.cose")
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCert(b)
		if err != nil {
			return
		}
		if !bytes.Equal(c.Marshal(), b) {
			t.Fatalf("round trip: %x -> %x", b, c.Marshal())
		}
		c.checkSignature(make([]byte, 32))
	})
}

// FuzzParseChain: no panic; round trip; verification never panics.
func FuzzParseChain(f *testing.F) {
	seedFuzz(f, "*.cbor")
	fx := newFixture(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseChain(b)
		if err != nil {
			return
		}
		if !bytes.Equal(c.Marshal(), b) {
			t.Fatalf("round trip: %x -> %x", b, c.Marshal())
		}
		fx.v.VerifyRoute(c, c.Target.Name(), c.Router.Name())
	})
}
