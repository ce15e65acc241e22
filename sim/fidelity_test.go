package sim

import (
	"context"
	"math"
	"testing"
	"time"
)

// Fidelity checks of the in-process mode, as Mininet checks its own links,
// with the real router and client code on the path.

// fourHops is c1 — r1 — r2 — r3 — c2: four links.
func fourHops(opts ...LinkOption) *Topology {
	t := New("four-hops")
	for _, r := range []string{"r1", "r2", "r3"} {
		t.AddRouter(r, "")
	}
	t.AddClient("c1", "r1")
	t.AddClient("c2", "r3")
	t.Link("c1", "r1", opts...)
	t.Link("r1", "r2", opts...)
	t.Link("r2", "r3", opts...)
	t.Link("r3", "c2", opts...)
	return t
}

func runTop(t *testing.T, top *Topology) *Results {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := Run(ctx, top, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.Text())
	return res
}

// TestFidelityRTT: pings by name over a 4-hop path with 10 ms per link
// take the configured 80 ms round trip. None may come in below it. The
// machine the tests run on is loaded (2 cores, many test processes), and
// a starved process adds its own delay to any RTT, so the 10 % check is
// made on paired samples: an identical path with 1 ms links is pinged at
// the same instants, and the median of the per-ping differences must be
// the configured difference, 72 ms, ± 10 % of 80 ms. Both medians are
// logged. The first pings, which include the lookup and the on-demand
// tunnel, are left out.
func TestFidelityRTT(t *testing.T) {
	top := fourHops(Delay(10 * time.Millisecond))
	for _, r := range []string{"z1", "z2", "z3"} {
		top.AddRouter(r, "")
	}
	top.AddClient("y1", "z1")
	top.AddClient("y2", "z3")
	one := Delay(time.Millisecond)
	top.Link("y1", "z1", one)
	top.Link("z1", "z2", one)
	top.Link("z2", "z3", one)
	top.Link("z3", "y2", one)
	top.Ping("c1", "c2", 30, 50*time.Millisecond)
	top.Ping("y1", "y2", 30, 50*time.Millisecond)
	res := runTop(t, top)
	a, b := res.Workloads[0], res.Workloads[1]
	if a.Received < 28 || b.Received < 28 {
		t.Fatalf("only %d and %d of 30 pings answered", a.Received, b.Received)
	}
	// From the fifth ping (200 ms) on.
	var rtts, diffs []float64
	for k := 5; k < len(a.Samples); k++ {
		if a.Samples[k].OK {
			rtts = append(rtts, a.Samples[k].Value)
			if b.Samples[k].OK {
				diffs = append(diffs, a.Samples[k].Value-b.Samples[k].Value)
			}
		}
	}
	la, ld := latency(rtts), latency(diffs)
	const want, diff = 80.0, 72.0
	t.Logf("RTT min %.2f median %.2f ms (configured %.0f); 1 ms path median %.2f ms; paired difference median %.2f ms (configured %.0f)",
		la.Min, la.P50, want, b.RTT.P50, ld.P50, diff)
	if la.Min < want {
		t.Fatalf("RTT %.2f ms is below the configured %.0f ms", la.Min, want)
	}
	if raceSlow > 1 {
		// Under -race beside other tests the simulator's own goroutines
		// lag by tens of ms (paired median 138 ms seen at load 16): the
		// figure would measure the race detector. make test judges it.
		t.Log("under -race: the 10 % RTT figure is not judged (make test does)")
		return
	}
	if math.Abs(ld.P50-diff) > want*0.10 {
		t.Fatalf("9 ms more per link adds %.2f ms to the RTT, not %.0f ms ± 10%% of %.0f", ld.P50, diff, want)
	}
}

// TestFidelityLoss: DATA PDUs over a path with 5 % loss on one link
// arrive at 95 %, within the binomial 99.99 % interval. A second,
// identical path without loss carries the same stream at the same time:
// on a starved machine a process can drop PDUs of its own (a full socket
// or queue), and those show on both paths, while the link's loss shows on
// one. The link's loss is estimated as 1 − (1−lost)/(1−control lost),
// and with no control loss — the usual case — that is the observed loss.
func TestFidelityLoss(t *testing.T) {
	const p, n = 0.05, 2000
	top := fourHops(Delay(time.Millisecond))
	top.FindLink("r1", "r2").Loss = 0.05
	top.FindLink("r1", "r2").set["loss"] = true
	for _, r := range []string{"z1", "z2", "z3"} {
		top.AddRouter(r, "")
	}
	top.AddClient("y1", "z1")
	top.AddClient("y2", "z3")
	one := Delay(time.Millisecond)
	top.Link("y1", "z1", one)
	top.Link("z1", "z2", one)
	top.Link("z2", "z3", one)
	top.Link("z3", "y2", one)
	// A ping first, so the lookup and the on-demand tunnel are done
	// before the stream (PDUs held in the router's miss queue meanwhile
	// are not the link's loss).
	top.Ping("c1", "c2", 3, 100*time.Millisecond)
	top.Ping("y1", "y2", 3, 100*time.Millisecond)
	rate, dur := 1000.0/raceSlow, 2*time.Second*raceSlow
	top.Workloads = append(top.Workloads,
		&Workload{Kind: WorkStream, From: "c1", To: "c2", Rate: rate, Duration: dur, Size: 200, Start: 500 * time.Millisecond},
		&Workload{Kind: WorkStream, From: "y1", To: "y2", Rate: rate, Duration: dur, Size: 200, Start: 500 * time.Millisecond})
	top.Seed = 3
	res := runTop(t, top)
	s, c := res.Workloads[2], res.Workloads[3]
	if s.Sent != n || c.Sent != n {
		t.Fatalf("sent %d and %d, want %d", s.Sent, c.Sent, n)
	}
	obs := float64(s.Sent-s.Received) / float64(s.Sent)
	ctl := float64(c.Sent-c.Received) / float64(c.Sent)
	if ctl > 0.2 {
		t.Fatalf("the lossless control path lost %.4f: the machine, not the link, is being measured", ctl)
	}
	est := 1 - (1-obs)/(1-ctl)
	bound := 3.9 * math.Sqrt(p*(1-p)/n)
	t.Logf("lost %d of %d = %.4f; control path lost %d = %.4f; link loss %.4f (configured %.2f ± %.4f)",
		s.Sent-s.Received, s.Sent, obs, c.Sent-c.Received, ctl, est, p, bound)
	if math.Abs(est-p) > bound {
		t.Fatalf("link loss %.4f outside %.2f ± %.4f", est, p, bound)
	}
}

// TestFidelityThroughput: UDP offered at 1.5× a 10 Mbit/s link's rate
// between two nodes (iperf-style, as Mininet measures its links) arrives
// at 10 Mbit/s ± 10 % on the wire. (A GDP stream over the same link gets
// less: PDUs ride QUIC datagrams, which are congestion controlled — see
// docs/SIMULATOR.md.)
func TestFidelityThroughput(t *testing.T) {
	const rate = 10_000_000
	top := fourHops(Delay(time.Millisecond), Bandwidth(1e9))
	top.FindLink("r1", "r2").Bandwidth = rate
	const size = 1200
	top.Workloads = append(top.Workloads, &Workload{Kind: WorkUDP, From: "c1", To: "c2", Rate: 1.5 * rate / 8 / (size + 28),
		Duration: 2 * time.Second, Size: size})
	res := runTop(t, top)
	s := res.Workloads[0]
	t.Logf("UDP %.2f Mbit/s on the wire (configured %d Mbit/s), %d of %d datagrams", s.Throughput/1e6, rate/1_000_000, s.Received, s.Sent)
	if math.Abs(s.Throughput-rate)/rate > 0.10 {
		t.Fatalf("link carried %.2f Mbit/s, want %d ± 10%%", s.Throughput/1e6, rate/1_000_000)
	}
}
