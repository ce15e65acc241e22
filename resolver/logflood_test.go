package resolver

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gdpnet/gdpnet/certs"
)

// 10,000 peers refused admission (peer IDs cost nothing to make) are all
// counted in gdp_resolver_peer_admissions_total and cost the log one line
// per result and interval, not one per peer.
func TestRefusedPeerFloodLogsBounded(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	w := newWorld(t, time.Now().Add(-time.Minute))
	d := w.domain("flood")
	c := startDHTs(t, w, d, certs.NewVerifier(d.Meta), false, "flood", 1, 0, func(cfg *DHTConfig) { cfg.Logger = zap.New(core) })
	node := c.nodes[0]
	const n = 10000
	for i := 0; i < n; i++ {
		node.refusePeer(peer.ID(fmt.Sprintf("made-up peer %d", i)), "refused", errors.New("bad proof"))
	}
	if got := counterValue(node.metrics.admissions.WithLabelValues("refused")); got != n {
		t.Errorf("admissions{result=refused} = %v, want %d", got, n)
	}
	lines := logs.FilterMessage("peer refused: no valid membership").All()
	if len(lines) != 1 {
		t.Fatalf("%d \"peer refused\" lines for %d refused peers, want 1", len(lines), n)
	}
}
