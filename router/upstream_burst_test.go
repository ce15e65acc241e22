package router_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
)

// TestDownstreamBurstStored: twelve endpoints attach at an honest spoke at
// once (as a capsule server's names do, or every name again when the
// tunnel to the hub comes back), while the hub's resolver takes 200 ms a
// put. The hub stores all twelve records within a few puts, none dropped:
// beyond the spoke's 4 slots they wait in its backlog. Before, all but 4
// were dropped (peer_busy) and reached the hub only with the spoke's next
// renewal, half a record's life later.
func TestDownstreamBurstStored(t *testing.T) {
	w := newWorld(t)
	static := resolver.NewStatic(&resolver.Verifier{Certs: w.dom.Verifier})
	t.Cleanup(func() { _ = static.Close() })
	hub := w.router("hub", router.Config{}, &slowPublish{Resolver: static, delay: 200 * time.Millisecond})
	hubName := hub.Name()
	spoke := w.router("spoke", router.Config{Peers: []router.PeerConfig{{Name: hubName, Addr: "127.0.0.1:9"}}, Upstream: &hubName}, nil)
	w.connect(hub, spoke)
	const n = 12
	var eps []*client.Client
	for i := range n {
		eps = append(eps, w.endpoint(spoke, certs.KindClient, fmt.Sprint("endpoint ", i)))
	}
	var wg sync.WaitGroup
	for _, e := range eps {
		wg.Add(1)
		go func() { defer wg.Done(); advertise(t, e) }()
	}
	wg.Wait()
	held := func() int {
		k := 0
		for _, e := range eps {
			if rec, err := static.Lookup(context.Background(), e.Name()); err == nil && rec.Router() == spoke.Name() {
				k++
			}
		}
		return k
	}
	eventually(t, "the hub to hold every record of the spoke's burst", func() bool {
		return held() == n || metric(t, hub, "gdp_router_downstream_records_total", "result", "peer_busy") > 0
	})
	if got := held(); got != n {
		t.Fatalf("the hub holds %d of the spoke's %d records; peer_busy %v", got, n,
			metric(t, hub, "gdp_router_downstream_records_total", "result", "peer_busy"))
	}
}
