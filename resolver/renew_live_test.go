package resolver

import (
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
)

// TestRenewalKeepsDHTConnections: three DHT nodes connected to each
// other; every node's membership is renewed (Reload) before it ends. Past
// the old NotAfter the nodes must still admit each other, on the same
// connections, with each other in their routing tables: a reload shows the
// renewed membership on the open connections (the membership handshake
// again). Session 20: it was shown from the next connection only, so every
// DHT connection was cut at the old NotAfter ("peer membership expired:
// disconnected") and redialled (found by the life soak, test/e2e
// TestSoakLife).
func TestRenewalKeepsDHTConnections(t *testing.T) {
	w := newWorld(t, time.Now().Add(-time.Minute))
	d := w.domain("renew live")
	clk := &clock{}
	cv := certs.NewVerifier(d.Meta)
	cv.Now = clk.Now
	c := startDHTs(t, w, d, cv, false, "renew live", 3, 2, func(cfg *DHTConfig) { cfg.MemberSweep = 50 * time.Millisecond })
	type pair struct{ a, b int }
	conns := map[pair]string{}
	for i, n := range c.nodes {
		for j, o := range c.nodes {
			if i != j {
				cs := n.host.Network().ConnsToPeer(o.PeerID())
				if len(cs) == 0 {
					t.Fatalf("node %d is not connected to node %d to begin with", i, j)
				}
				conns[pair{i, j}] = cs[0].ID()
			}
		}
	}
	oldEnd := w.base.Add(w.valid)
	for i, n := range c.nodes {
		m, err := certs.IssueMember(d, c.routers[i].id.Name, w.base, oldEnd.Add(24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Reload(m, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Each node holds the others' renewed memberships.
	deadline := time.Now().Add(10 * time.Second)
	for i, n := range c.nodes {
		for j, o := range c.nodes {
			for i != j {
				n.gate.mu.Lock()
				until := n.gate.verified[o.PeerID()].until
				n.gate.mu.Unlock()
				if until.After(oldEnd) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("node %d admits node %d until %s, its old NotAfter: the renewal was not shown on the open connection", i, j, until)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	clk.Advance(w.valid + time.Minute) // past every old NotAfter
	time.Sleep(500 * time.Millisecond) // ten sweeps
	for i, n := range c.nodes {
		for j, o := range c.nodes {
			if i == j {
				continue
			}
			if !n.gate.isVerified(o.PeerID()) {
				t.Errorf("node %d no longer admits node %d past the old NotAfter", i, j)
			}
			cs := n.host.Network().ConnsToPeer(o.PeerID())
			if len(cs) == 0 || cs[0].ID() != conns[pair{i, j}] {
				t.Errorf("node %d's connection to node %d was closed past the old NotAfter", i, j)
			}
		}
		if got := n.PeerCount(); got != 2 {
			t.Errorf("node %d: %d peers in its routing table past the old NotAfter, want 2", i, got)
		}
	}
}
