package sim

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTooLarge: a topology that needs more memory than the machine has
// available is refused before anything starts, saying how much it needs
// and how much there is; Options.IgnoreMemory starts it anyway.
func TestTooLarge(t *testing.T) {
	top, err := Builtin("linear", Params{N: 3, Delay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	top.Workloads = nil
	need := top.MemoryEstimate(ModeInProcess)
	meminfo := func(avail uint64) {
		p := filepath.Join(t.TempDir(), "meminfo")
		body := "MemTotal:       24000000 kB\nMemFree:         1000 kB\nMemAvailable:   " + strconv.FormatUint(avail>>10, 10) + " kB\n"
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		old := procMeminfo
		procMeminfo = p
		t.Cleanup(func() { procMeminfo = old })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	meminfo(need - 1<<20)
	tmp := os.TempDir()
	before, _ := filepath.Glob(filepath.Join(tmp, "gdp-sim-*"))
	s, err := Start(ctx, top, Options{})
	if !errors.Is(err, ErrTooLarge) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("start with %s available for %s: %v, want ErrTooLarge", FormatBytes(need-1<<20), FormatBytes(need), err)
	}
	t.Log(err)
	for _, w := range []string{"need about " + FormatBytes(need), "nothing was started", "--ignore-memory"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
	if after, _ := filepath.Glob(filepath.Join(tmp, "gdp-sim-*")); len(after) > len(before) {
		t.Errorf("a refused run left a scratch directory: %v", after)
	}

	s, err = Start(ctx, top, Options{IgnoreMemory: true})
	if err != nil {
		t.Fatalf("IgnoreMemory: %v", err)
	}
	s.Close()

	meminfo(need + 1<<20)
	s, err = Start(ctx, top, Options{})
	if err != nil {
		t.Fatalf("with enough memory: %v", err)
	}
	s.Close()
}

// TestMemoryEstimate: the estimate follows what each kind of run was
// measured to hold (memory.go): a kad-dht router costs ten in-process
// static ones, a netns router process more again, and a crowd (above
// bigSim routers) less a router.
func TestMemoryEstimate(t *testing.T) {
	grid := func(rows, cols int, resolver string) *Topology {
		top, err := Builtin("grid", Params{Rows: rows, Cols: cols})
		if err != nil {
			t.Fatal(err)
		}
		top.Resolver = resolver
		return top
	}
	mib := func(b uint64) float64 { return float64(b) / (1 << 20) }
	static := mib(grid(10, 10, ResolverStatic).MemoryEstimate(ModeInProcess))
	dht := mib(grid(10, 10, ResolverDHT).MemoryEstimate(ModeInProcess))
	netns := mib(grid(10, 10, ResolverStatic).MemoryEstimate(ModeNetns))
	crowd := mib(grid(100, 100, ResolverStatic).MemoryEstimate(ModeInProcess))
	t.Logf("100 routers: static %.0f MiB, dht %.0f MiB, netns %.0f MiB; 10,000 static %.0f MiB", static, dht, netns, crowd)
	// Measured: 100 static routers 126 MiB of heap; 300 with kad-dht
	// ~3 GiB; 10,000 static 2.0 GiB peak.
	if static < 126 || static > 400 || dht < 900 || dht > 1200 || netns < dht || crowd < 2048 || crowd > 3500 {
		t.Fatalf("estimates off the measured figures")
	}
}
