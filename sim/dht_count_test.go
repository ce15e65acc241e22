package sim

import (
	"context"
	"strings"
	"testing"
	"time"

	kadpb "github.com/libp2p/go-libp2p-kad-dht/pb"
)

// TestDHTCounts: the DHT hosts' counts (Sim.DHTCounts, printed by
// BenchmarkScaleDHT) match what libp2p and the resolver do on every
// connection: each end opens one identify stream, the dialling end one
// membership-proof stream, a connection is counted once (accepted) and
// its dial once begun, and the publishes' puts are counted as PUT_VALUE
// requests served (each router's record at the 11 other nodes, k 20).
// The bench's connection-end seconds (holdOpenConns) are the open ends
// times the time held.
func TestDHTCounts(t *testing.T) {
	const n = 12
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	_, s := startDHTGrid(ctx, t, Options{})
	defer s.Close()
	c := s.dhtCounts
	stream := func(proto string) int64 {
		c.mu.Lock()
		defer c.mu.Unlock()
		var sum int64
		for k, v := range c.streams {
			if strings.HasPrefix(k, "out ") && strings.HasSuffix(k, proto) {
				sum += v.Load()
			}
		}
		return sum
	}
	// Identify and the membership proof run beside the first requests:
	// wait (generously) for the last connections' streams.
	var out, in, id, member int64
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out, in = c.conns[1].Load(), c.conns[0].Load()
		id, member = stream("/ipfs/id/1.0.0"), stream("/member/1.0.0")
		// A connection closed at once (two dials crossing) may open
		// neither: allow a tenth fewer, never more.
		if in > 0 && out >= in && id <= 2*in && 10*id >= 18*in && member <= in && 10*member >= 9*in {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections, %d dials begun, %d identify streams, %d membership streams: want dials ≥ connections, identify ~2 × connections, membership ~ connections",
				in, out, id, member)
		}
	}
	// Every record at the 11 other nodes, perhaps put again (a publish
	// that raced another's gather). A put to one peer can fail on a loaded
	// machine (the publish succeeds with the others: 131 of 132 seen in a
	// make test run beside other packages), and a handler may still be
	// counting: wait, then allow a tenth fewer, never none.
	var puts int64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if puts = c.kadReqs[kadpb.Message_PUT_VALUE].Load(); puts >= n*(n-1) || time.Now().After(deadline) {
			break
		}
	}
	if 10*puts < 9*n*(n-1) {
		t.Errorf("%d PUT_VALUE requests served, want ≥ %d (every record at the %d other nodes, a tenth fewer allowed)", puts, 9*n*(n-1)/10, n-1)
	}
	sum := s.DHTCounts()
	for _, want := range []string{"/member/1.0.0", "/ipfs/id/1.0.0", "PUT_VALUE", "FIND_NODE"} {
		if !strings.Contains(sum, want) {
			t.Errorf("summary %q lacks %s", sum, want)
		}
	}
	t.Log(sum)

	o0, m := s.DHTOpenConnections(), holdOpenConns(s)
	time.Sleep(2500 * time.Millisecond)
	got, window := m.stop()
	o1, held := s.DHTOpenConnections(), window.Seconds()
	// Ends may close meanwhile (crossing dials): bound by the fewest and
	// the most open.
	if lo, hi := 0.9*float64(min(o0, o1))*held, 1.1*float64(max(o0, o1))*held; o0 == 0 || held <= 0 || got < lo || got > hi {
		t.Errorf("%.1f connection-end seconds over %.2f s with %d then %d ends open: want %.1f..%.1f", got, held, o0, o1, lo, hi)
	}
}
