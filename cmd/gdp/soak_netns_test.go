package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/sim"
)

// TestSoakNetns is the fault suite in network namespaces (issue 16, `make
// soak`; GDP_SOAK=1, root): each round builds a ring of four real `gdp
// router` processes, each in its own namespace, with three capsule servers
// (at r1, r2, r3), a writer at r4 and a reader at r2, through the
// simulator's netns mode (docs/SIMULATOR.md §8), and runs a capsule
// workload (W = 2 of 3) and pings across the ring under faults at random
// points: a ring link cut and restored, a server partitioned off and
// healed, a router (r1 or r3) SIGKILLed and restarted. After each round:
// every record the writer wrote was acknowledged by W servers and reads
// back verified at the reader, every replica holds the last record
// (replication lag measured after the writer's durable flush), the pings
// came back (their longest outage is the route reconvergence), and Close
// leaves no namespace, veth, state file or router process.
//
//	GDP_SOAK=1                 run it
//	GDP_SOAK_NETNS_ROUNDS=3    rounds (default 3)
//	GDP_SOAK_SEED=n            fault schedule seed (default: time)
func TestSoakNetns(t *testing.T) {
	if os.Getenv("GDP_SOAK") != "1" {
		t.Skip("the fault suite runs with GDP_SOAK=1 (make soak)")
	}
	netnsOrSkip(t)
	t.Setenv("GDP_TEST_RUN_MAIN", "1")
	rounds := 3
	if n, err := strconv.Atoi(os.Getenv("GDP_SOAK_NETNS_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	seed := uint64(time.Now().UnixNano() % 1_000_000)
	if n, err := strconv.Atoi(os.Getenv("GDP_SOAK_SEED")); err == nil && n > 0 {
		seed = uint64(n)
	}
	t.Logf("soak netns: seed %d, %d rounds", seed, rounds)
	rng := rand.New(rand.NewPCG(seed, 17))
	faults := map[string]int{}
	records, worstLag, worstOutage := 0, 0.0, 0.0
	for round := 1; round <= rounds; round++ {
		yml, did := soakNetnsTopology(rng, round)
		top, err := sim.Parse(fmt.Sprintf("soak-netns-%d.yaml", round), []byte(yml))
		if err != nil {
			t.Fatalf("round %d: %v\n%s", round, err, yml)
		}
		res, lag, outage := soakNetnsRound(t, round, top, did)
		for _, f := range did {
			faults[strings.Fields(f)[0]]++
		}
		records += res
		worstLag, worstOutage = max(worstLag, lag), max(worstOutage, outage)
	}
	t.Logf("soak netns: %d rounds, faults %v, %d records written, acknowledged and read back verified; worst replica catch-up %.0f ms after the writer's flush, worst ping outage %.0f ms",
		rounds, faults, records, worstLag, worstOutage)
}

// soakNetnsRecords is each round's capsule workload: enough records that
// the writing spans the faults.
const soakNetnsRecords = 30000

// soakNetnsTopology is one round's topology and its faults: a ring link
// cut, a server partitioned off, a router crash, each at a random point
// after the capsule is placed, and undone 1–3 s later.
func soakNetnsTopology(rng *rand.Rand, round int) (string, []string) {
	var b strings.Builder
	fmt.Fprintf(&b, `name: soak-netns-%d
mode: netns
seed: %d
defaults: {delay: 1ms}
nodes:
  - {name: r1, kind: router}
  - {name: r2, kind: router}
  - {name: r3, kind: router}
  - {name: r4, kind: router}
  - {name: s1, kind: server, attach: r1}
  - {name: s2, kind: server, attach: r2}
  - {name: s3, kind: server, attach: r3}
  - {name: writer, kind: client, attach: r4}
  - {name: reader, kind: client, attach: r2}
  - {name: prober, kind: client, attach: r4}
  - {name: target, kind: client, attach: r2}
links:
  - {a: r1, b: r2}
  - {a: r2, b: r3}
  - {a: r3, b: r4}
  - {a: r4, b: r1}
  - {a: r1, b: s1}
  - {a: r2, b: s2}
  - {a: r3, b: s3}
  - {a: r4, b: writer}
  - {a: r2, b: reader}
  - {a: r4, b: prober}
  - {a: r2, b: target}
workloads:
  - {kind: capsule, from: writer, servers: [s1, s2, s3], w: 2, count: 30000, size: 200, readers: [reader]}
  - {kind: ping, from: prober, to: target, count: 200, interval: 100ms}
failures:
`, round, round)
	// faults while the writer writes (it places the capsule in the first
	// half second, then writes for 3–10 s at 3,000–9,000 records/s)
	at := func() time.Duration { return time.Duration(800+rng.IntN(2500)) * time.Millisecond }
	back := func() time.Duration { return time.Duration(1000+rng.IntN(2000)) * time.Millisecond }
	var did []string
	ring := []string{"r1-r2", "r2-r3", "r3-r4", "r4-r1"}
	l := ring[rng.IntN(len(ring))]
	t0, d := at(), back()
	fmt.Fprintf(&b, "  - {at: %s, kind: link_down, link: %s}\n  - {at: %s, kind: link_up, link: %s}\n", t0, l, t0+d, l)
	did = append(did, fmt.Sprintf("cut %s at %s for %s", l, t0, d))
	srv := fmt.Sprintf("s%d", 1+rng.IntN(3))
	t0, d = at(), back()
	var rest []string
	for _, n := range []string{"r1", "r2", "r3", "r4", "s1", "s2", "s3", "writer", "reader", "prober", "target"} {
		if n != srv {
			rest = append(rest, n)
		}
	}
	fmt.Fprintf(&b, "  - {at: %s, kind: partition, groups: [[%s], [%s]]}\n  - {at: %s, kind: heal}\n", t0, srv, strings.Join(rest, ", "), t0+d)
	did = append(did, fmt.Sprintf("partition %s at %s for %s", srv, t0, d))
	rt := []string{"r1", "r3"}[rng.IntN(2)]
	t0, d = at(), back()
	fmt.Fprintf(&b, "  - {at: %s, kind: crash, node: %s}\n  - {at: %s, kind: restart, node: %s}\n", t0, rt, t0+d, rt)
	did = append(did, fmt.Sprintf("crash %s at %s for %s", rt, t0, d))
	b.WriteString("measure: {duration: 45s}\n")
	return b.String(), did
}

// soakNetnsRound runs one round and checks it; it returns the records
// checked, the slowest replica's catch-up and the longest ping outage.
func soakNetnsRound(t *testing.T, round int, top *sim.Topology, did []string) (int, float64, float64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var prog strings.Builder
	s, err := sim.Start(ctx, top, sim.Options{Binary: os.Args[0], Progress: &prog})
	if err != nil {
		// building is not the fault under test: on a loaded machine an
		// endpoint's first attach can time out; build once more
		t.Logf("round %d: build failed (%v); building again", round, err)
		prog.Reset()
		s, err = sim.Start(ctx, top, sim.Options{Binary: os.Args[0], Progress: &prog})
	}
	if err != nil {
		t.Fatalf("round %d: %v\n%s", round, err, prog.String())
	}
	closed := false
	defer func() {
		if !closed {
			s.Close()
		}
	}()
	var pids []int
	for _, p := range s.RouterPIDs() {
		pids = append(pids, p)
	}
	res, err := s.Run(ctx)
	if err != nil {
		t.Fatalf("round %d (%v): %v\n%s", round, did, err, prog.String())
	}
	// restarted routers have new pids
	for _, p := range s.RouterPIDs() {
		pids = append(pids, p)
	}
	run := s.RunID()
	s.Close()
	closed = true
	if left := leftovers(run, pids); len(left) > 0 {
		t.Fatalf("round %d: after Close: %v", round, left)
	}
	var written int
	var lag, outage float64
	for _, w := range res.Workloads {
		if w.Err != "" {
			t.Fatalf("round %d (%v): workload %d %s: %s\n%s", round, did, w.Index, w.Kind, w.Err, res.Text())
		}
		switch w.Kind {
		case "capsule":
			c := w.Capsule
			if c == nil || c.Records != soakNetnsRecords || c.Acks < c.W {
				t.Fatalf("round %d (%v): capsule %+v: want %d records acknowledged by W\n%s", round, did, c, soakNetnsRecords, res.Text())
			}
			for r, rd := range c.Reads {
				if rd.Err != "" || rd.Records != c.Records {
					t.Fatalf("round %d (%v): reader %s read back %d of %d verified (%s)\n%s", round, did, r, rd.Records, c.Records, rd.Err, res.Text())
				}
			}
			for srv, l := range c.ReplicationLagMS {
				if l < 0 {
					t.Fatalf("round %d (%v): replica %s never held the last record\n%s", round, did, srv, res.Text())
				}
				lag = max(lag, l)
			}
			written = c.Records
			t.Logf("round %d: capsule placed at %.2f s, %d records written %.2f–%.2f s (%.0f/s), durable at %.2f s", round, c.CreatedS, c.Records, c.CreatedS, c.CreatedS+c.WriteS, c.RecordsPerSec, c.FlushedS)
		case "ping":
			if w.Received == 0 {
				t.Fatalf("round %d (%v): no ping answered\n%s", round, did, res.Text())
			}
			for _, o := range w.Outages {
				if o.End == 0 {
					t.Fatalf("round %d (%v): pings lost from %.1f s on and never answered again: routes did not reconverge\n%s", round, did, o.Start, res.Text())
				}
				outage = max(outage, (o.End-o.Start)*1000)
			}
			if n := len(w.Samples); n > 0 && !soakLastAnswered(w) {
				t.Fatalf("round %d (%v): the last pings were not answered: routes did not reconverge\n%s", round, did, res.Text())
			}
		}
	}
	t.Logf("round %d: %v; %d records acknowledged (W=2) and read back verified; replicas caught up ≤ %.0f ms after the flush; longest ping outage %.0f ms; nothing left after Close",
		round, did, written, lag, outage)
	return written, lag, outage
}

// soakLastAnswered: the last five pings of w were answered.
func soakLastAnswered(w sim.WorkloadResult) bool {
	n := len(w.Samples)
	for _, s := range w.Samples[max(0, n-5):] {
		if !s.OK {
			return false
		}
	}
	return true
}
