package sim

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// What a run holds, measured (docs/SIMULATOR.md §6, §8; Session 19):
// the peak resident memory of runs of each size, less the simulator's own
// ~60 MiB, divided by the routers; rounded up, so that the estimate errs
// on the side of refusing a run that would have fitted narrowly rather than
// starting one that takes the machine's memory.
const (
	memBase = 100 << 20 // the simulator itself, its plots and report
	// An in-process router with the static resolver: 64 Ki duplicate
	// slots (512 KiB) and an 8,192-packet queue up to bigSim routers
	// (1,024 routers: 1.09 GiB of heap), sized for a crowd beyond
	// (10,000 routers: 2.0 GiB peak RSS).
	memRouter      = 1 << 20
	memRouterCrowd = 256 << 10
	// An in-process router with its own kad-dht node (resolver: dht):
	// 300 routers 2.9–3.2 GiB, 1,000 routers 8.8 GiB peak RSS.
	memRouterDHT = 10 << 20
	// A netns router is a gdp router process (16–24 MiB private memory
	// measured at 56–100 routers) plus its namespace and veth.
	memRouterProc = 28 << 20
	// A capsule server (its pebble store's tables and caches) and a client.
	memServer = 2 << 20
	memClient = 256 << 10
)

// MemoryEstimate is about how much memory running the topology takes in
// mode (ModeInProcess or ModeNetns), counting the router processes of the
// netns mode: from measured runs of each kind (memRouter… above). It is
// what `gdp sim validate` prints and what Start compares with the
// memory the machine has available.
func (t *Topology) MemoryEstimate(mode string) uint64 {
	var routers, servers, clients uint64
	for _, n := range t.Nodes {
		switch n.Kind {
		case KindRouter:
			routers++
		case KindServer:
			servers++
		default:
			clients++
		}
	}
	per := uint64(memRouter)
	switch {
	case mode == ModeNetns:
		per = memRouterProc
	case t.Resolver == ResolverDHT:
		per = memRouterDHT
	case routers > bigSim:
		per = memRouterCrowd
	}
	return memBase + routers*per + servers*memServer + clients*memClient
}

// ErrTooLarge is returned by Start for a topology that needs more memory
// than the machine has available (Options.IgnoreMemory starts it anyway).
var ErrTooLarge = errors.New("topology too large for this machine")

// CheckMemory is Start's check for mode ("": the topology's own):
// ErrTooLarge when the topology needs more memory than is available.
func (t *Topology) CheckMemory(mode string) error {
	if mode == "" {
		mode = (&Sim{top: t}).mode()
	}
	return checkMemory(t, mode, procMeminfo)
}

// checkMemory refuses a run whose estimate exceeds the memory available
// (MemAvailable of /proc/meminfo; where that cannot be read, nothing is
// checked), before anything is started.
func checkMemory(t *Topology, mode string, meminfo string) error {
	avail, ok := memAvailable(meminfo)
	if !ok {
		return nil
	}
	need := t.MemoryEstimate(mode)
	if need <= avail {
		return nil
	}
	routers := 0
	for _, n := range t.Nodes {
		if n.Kind == KindRouter {
			routers++
		}
	}
	return fmt.Errorf("%w: %d nodes (%d routers, %s) need about %s, and %s is available (MemAvailable in %s); nothing was started. Make it smaller (docs/SIMULATOR.md §6 has what each size took), or pass --ignore-memory (Options.IgnoreMemory) to start it anyway",
		ErrTooLarge, len(t.Nodes), routers, memKind(t, mode), FormatBytes(need), FormatBytes(avail), meminfo)
}

func memKind(t *Topology, mode string) string {
	switch {
	case mode == ModeNetns:
		return "a gdp router process each"
	case t.Resolver == ResolverDHT:
		return "a kad-dht node each"
	}
	return "in-process, static resolver"
}

// memAvailable reads MemAvailable (bytes) from a /proc/meminfo file.
func memAvailable(path string) (uint64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		return kb << 10, err == nil
	}
	return 0, false
}

// FormatBytes writes a size the way a researcher reads it: 512 MiB, 3.2 GiB.
func FormatBytes(b uint64) string {
	if b >= 1<<30 {
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	}
	return fmt.Sprintf("%d MiB", (b+(1<<20)-1)>>20)
}
