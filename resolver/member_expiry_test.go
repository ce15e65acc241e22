package resolver

import (
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
)

// TestExpiredMemberDisconnected: peers whose membership runs out while they
// are connected leave every routing table and are disconnected, not merely
// refused service.
func TestExpiredMemberDisconnected(t *testing.T) {
	w := newWorld(t, time.Now().Add(-time.Minute))
	d := w.domain("expiry")
	clk := &clock{}
	cv := certs.NewVerifier(d.Meta)
	cv.Now = clk.Now
	c := startDHTs(t, w, d, cv, false, "expiry", 3, 2, func(cfg *DHTConfig) { cfg.MemberSweep = 50 * time.Millisecond })
	for i, n := range c.nodes {
		if got := n.PeerCount(); got != 2 {
			t.Fatalf("node %d: %d peers in its routing table before expiry, want 2", i, got)
		}
	}

	clk.Advance(w.valid + time.Minute) // every membership has expired
	deadline := time.Now().Add(10 * time.Second)
	for {
		connected, inTable := 0, 0
		for _, n := range c.nodes {
			inTable += n.PeerCount()
			for _, o := range c.nodes {
				if o != n {
					connected += len(n.host.Network().ConnsToPeer(o.PeerID()))
				}
			}
		}
		if connected == 0 && inTable == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after expiry: %d routing-table entries and %d connections remain", inTable, connected)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
