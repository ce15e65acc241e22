package tunnel

import (
	"testing"
	"time"
)

// The raw path's steady state allocates (almost) nothing per PDU: sealed
// into reused buffers, sent and received in preallocated batches, opened in
// place, handed to the Handler without a copy. The one allocation allowed
// is x/net's: ReadBatch makes a *net.UDPAddr for every received message,
// which is one per frame when the kernel did not coalesce them (GRO) and
// one per ~45 frames when it did.
func TestRawSendAllocs(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instruments allocations")
	}
	a := newTestNode(t, true, nil)
	b := newTestNode(t, true, func(c *Config) { c.Handler = func(Link, []byte) {} })
	la, _ := pair(t, a, b, KindRaw)
	p := make([]byte, 1200)
	for range 3000 { // warm up: buffers are made on first use
		la.Send(p)
	}
	time.Sleep(50 * time.Millisecond)
	avg := testing.AllocsPerRun(2000, func() {
		if err := la.Send(p); err != nil {
			t.Fatal(err)
		}
	})
	if avg > 1.05 {
		t.Fatalf("%.2f allocations per PDU (sender and receiver together)", avg)
	}
}
