package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// sharedGdp is the gdp binary the tests that run real processes share:
// built once per `go test` run (linking it takes minutes on a loaded
// machine), removed when the run ends.
var sharedGdp struct {
	once sync.Once
	dir  string
	path string
	err  error
	out  []byte
}

// removeSharedGdp deletes the shared binary; TestMain calls it when the
// run ends.
func removeSharedGdp() {
	if sharedGdp.dir != "" {
		_ = os.RemoveAll(sharedGdp.dir)
	}
}

// gdpBinary returns the path of the shared gdp binary, building it on the
// first call.
func gdpBinary(t *testing.T) string {
	t.Helper()
	tool := goTool(t)
	sharedGdp.once.Do(func() {
		sharedGdp.dir, sharedGdp.err = os.MkdirTemp("", "gdp-test-bin-")
		if sharedGdp.err != nil {
			return
		}
		sharedGdp.path = filepath.Join(sharedGdp.dir, "gdp")
		sharedGdp.out, sharedGdp.err = exec.Command(tool, "build", "-o", sharedGdp.path, ".").CombinedOutput()
	})
	if sharedGdp.err != nil {
		t.Fatalf("go build: %v\n%s", sharedGdp.err, sharedGdp.out)
	}
	return sharedGdp.path
}

// linkGdp makes bin (a path inside the test's own directory) the shared gdp
// binary, for tests that put it on $PATH or name it.
func linkGdp(t *testing.T, bin string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(gdpBinary(t), bin); err != nil {
		t.Fatal(err)
	}
}
