package capsuled_test

import (
	"context"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/internal/config"
	"github.com/gdpnet/gdpnet/router"
)

// TestRestartedReplicaNotHeldByNegativeCache: replica c (at r2; a and b at
// r1) is stopped and records are written meanwhile, so r1 looks c up, finds
// nothing and remembers the miss — here for a minute. When c restarts, its
// first catch-up request through r1 makes r1 forget the miss, so a's and
// b's answers reach c and c holds every record within seconds, not after
// the negative-cache TTL (the 0.2–4.4 s first-record delay of
// BenchmarkCatchUpAfterRestart with the default 5 s).
func TestRestartedReplicaNotHeldByNegativeCache(t *testing.T) {
	const n = 300
	var cfg router.Config
	cfg.Resolver.NegativeTTL = config.Duration(time.Minute)
	w := newWorld(t)
	r1 := w.routerConf("r1", cfg)
	r2 := w.routerConf("r2", cfg, r1)
	ra, rb, rc := w.newReplica(r1, "a"), w.newReplica(r1, "b"), w.newReplica(r2, "c")
	writer := w.user(r1, "writer")
	tc := newTestCapsule(t, "restart")
	tc.create(t, writer, 2, ra, rb, rc)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	wr, err := writer.NewWriter(ctx, tc.meta.Name(), tc.writer.Key, client.WriterOptions{Cadence: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close(context.Background())
	rc.stop()
	eventually(t, slow*10*time.Second, "r2 dropped c's tunnel", func() bool {
		for _, h := range r2.Router.FIB().Lookup(rc.id.Name) {
			if h.Origin == router.OriginLocal {
				return false
			}
		}
		return true
	})
	notFound := func() float64 {
		return gathered(r1.Router.Gatherer(), "gdp_router_resolver_lookups_total", "not_found")
	}
	var ack acked
	for i := 1; notFound() == 0; i += 50 {
		if i > 10*n {
			t.Fatal("r1 never looked c up while it was away")
		}
		writeN(t, wr, uint64(i), uint64(i+49), &ack)
	}
	d, err := wr.Flush(ctx)
	if err != nil || !d.Met {
		t.Fatalf("flush: %v %v", err, d)
	}
	total := d.Seqno
	start := time.Now()
	w.start(r2, rc)
	eventually(t, min(slow*20, 50)*time.Second, "c caught up", converged(total, ra, rb, rc))
	t.Logf("c caught up %d records %s after its restart", total, time.Since(start))
	if got := gathered(r1.Router.Gatherer(), "gdp_router_negative_forgotten_total", ""); got < 1 {
		t.Fatalf("r1 forgot %v negative entries, want ≥ 1", got)
	}
}
