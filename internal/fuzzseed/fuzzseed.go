// Package fuzzseed keeps the seed corpora of the module's fuzz targets in
// testdata/fuzz/<FuzzTarget>/ (Go's native corpus format), written from
// the seeds the targets add — the golden vectors of docs/PROTOCOL.md and
// each package's testdata among them.
//
// A target calls Add instead of f.Add. With GDP_FUZZ_WRITE_SEEDS=1 in the
// environment (`make fuzz-seeds`) each seed is also written, under a name
// derived from its bytes, to testdata/fuzz/<f.Name()>/seed-<hash>; `go
// test` then runs every file there (and every crasher `go test -fuzz` saved
// beside them) as a regression input, and `go test -fuzz` starts from
// them.
package fuzzseed

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// EnvWrite is the environment variable that makes Add write the corpus.
const EnvWrite = "GDP_FUZZ_WRITE_SEEDS"

// Add adds a seed to f's corpus and, when EnvWrite=1, keeps it in
// testdata/fuzz/<f.Name()>/ of the package under test.
func Add(f *testing.F, args ...any) {
	f.Helper()
	f.Add(args...)
	if os.Getenv(EnvWrite) != "1" {
		return
	}
	b, err := Marshal(args...)
	if err != nil {
		f.Fatalf("fuzzseed: %v", err)
	}
	name := f.Name()
	if i := strings.IndexByte(name, '/'); i >= 0 {
		name = name[:i]
	}
	dir := filepath.Join("testdata", "fuzz", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.Fatalf("fuzzseed: %v", err)
	}
	sum := sha256.Sum256(b)
	if err := os.WriteFile(filepath.Join(dir, "seed-"+hex.EncodeToString(sum[:8])), b, 0o644); err != nil {
		f.Fatalf("fuzzseed: %v", err)
	}
}

// Marshal encodes values in Go's fuzz corpus format ("go test fuzz v1"),
// the types the module's targets take.
func Marshal(vals ...any) ([]byte, error) {
	if len(vals) == 0 {
		return nil, fmt.Errorf("no values")
	}
	var b bytes.Buffer
	b.WriteString("go test fuzz v1\n")
	for _, v := range vals {
		switch t := v.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", t)
		case string:
			fmt.Fprintf(&b, "string(%q)\n", t)
		case byte:
			fmt.Fprintf(&b, "byte(%q)\n", t)
		case int, int8, int16, int64, uint, uint16, uint32, uint64, bool:
			fmt.Fprintf(&b, "%T(%v)\n", t, t)
		default:
			return nil, fmt.Errorf("unsupported seed type %T", v)
		}
	}
	return b.Bytes(), nil
}
