package resolver

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that closing every node stops every goroutine it started
// (the benchmark cluster, shared by the benchmarks, is closed first).
func TestMain(m *testing.M) {
	code := m.Run()
	closeBenchCluster()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}
