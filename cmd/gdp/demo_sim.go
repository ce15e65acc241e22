package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/gdpnet/gdpnet/sim"
)

func init() {
	addDemoStage(60, "Simulator: the same code on emulated links — a ring loses a link, then is partitioned and heals (gdp sim run sim/examples/convergence.yaml)", demoSim)
}

// demoSim runs the ring-convergence example in-process and narrates its
// results; it needs nothing from earlier stages.
func demoSim(ctx context.Context, d *demoEnv) error {
	d.Showed("a ring of routers reroutes around a cut link; pings are lost only while it is partitioned")
	top, err := sim.Example("convergence")
	if err != nil {
		return err
	}
	d.Say("%d routers in a ring with 4–8 ms links, every one the real router on an emulated link (no root, one process)", 6)
	res, err := sim.Run(ctx, top, sim.Options{})
	if err != nil {
		return err
	}
	w := res.Workloads[0]
	// Line starts "[0] ping c1 → c2: " — said already.
	line := w.Line()
	if _, rest, ok := strings.Cut(line, ": "); ok {
		line = rest
	}
	d.Say("%d pings c1 → c2 by name while links fail on a schedule:", w.Sent)
	d.Say("  %s", line)
	for _, e := range res.Events {
		d.Say("  at %.1fs %s %s", e.At, e.Kind, e.Target)
	}
	if w.Received == 0 {
		return fmt.Errorf("no ping answered: %s", res.Summary)
	}
	for _, o := range w.Outages {
		d.Say("  outage from %.2fs to %.2fs: %d pings lost (%.0f ms without a path)", o.Start, o.End, o.Lost, 1000*(o.End-o.Start))
	}
	d.Say("why pings were lost: the first cut only sent them the long way round (a higher RTT, nothing lost but what was on the cut link);")
	d.Say("  the second cut left no path at all until the link came back — the pings of that partition are the ones lost")
	d.Figure("pings c1 → c2: answered/sent", "%d of %d", w.Received, w.Sent)
	for _, o := range w.Outages {
		d.Figure("outage", "%.0f ms, %d pings lost", 1000*(o.End-o.Start), o.Lost)
	}
	d.Say("(the same experiment: gdp sim run sim/examples/convergence.yaml --out results/; docs/SIMULATOR.md)")
	return nil
}
