package capsuled_test

import (
	"context"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsuled"
)

// TestPossessionChecksWhenDue: two real replicas (QUIC tunnels to a real
// router) of a quiet capsule compare every ~50 ms (sync_interval) but ask
// each other for a possession tag only when a check is due: after the
// first proof, at most 2 checks each over the next 600 ms (before, one a
// round: ~12; a check in flight and one of possession_interval, 2 s,
// drawn between 1 and 2 s after the last, may fall in it; one more per
// second the sleep overran on a loaded machine), then one more once the
// interval has passed;
// an append makes the next round check (the peer shown at the new head);
// no check ever fails between honest replicas.
func TestPossessionChecksWhenDue(t *testing.T) {
	w := newWorld(t)
	r1 := w.router("r1")
	conf := capsuled.Config{SyncInterval: 50 * time.Millisecond, PossessionInterval: 2 * time.Second}
	a := w.newReplicaConf(r1, "a", conf)
	b := w.newReplicaConf(r1, "b", conf)
	cc := w.user(r1, "writer")
	tc := newTestCapsule(t, "possession checks")
	tc.create(t, cc, 2, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	write := tc.writes(ctx, t, cc, 2, a, b)
	checks := func(r *replica) float64 { return r.metric("gdp_capsuled_possession_checks_total", "ok") }
	// shown: r shows its peer at head, proven.
	shown := func(r *replica, head uint64) bool {
		st := r.srv.Status()
		if len(st) != 1 || len(st[0].Peers) != 1 {
			return false
		}
		p := st[0].Peers[0]
		return p.Head == head && !p.Seen.IsZero() && !p.Unproven && p.Error == ""
	}
	write(5)
	eventually(t, 20*time.Second, "each replica showing the other at 5, proven", func() bool {
		return shown(a, 5) && shown(b, 5) && checks(a) >= 1 && checks(b) >= 1
	})
	was := []float64{checks(a), checks(b)}
	start := time.Now()
	time.Sleep(600 * time.Millisecond)
	allowed := 2 + float64(time.Since(start)/time.Second)
	for i, r := range []*replica{a, b} {
		if n := checks(r) - was[i]; n > allowed {
			t.Fatalf("replica %d: %v possession checks in %s of a quiet capsule (possession_interval 2s, sync_interval 50ms), want at most %v", i, n, time.Since(start), allowed)
		}
		if !shown(r, 5) {
			t.Fatalf("replica %d: the peer's proven head is no longer shown between checks: %+v", i, r.srv.Status())
		}
	}
	was = []float64{checks(a), checks(b)}
	eventually(t, 15*time.Second, "a check once possession_interval passed", func() bool {
		return checks(a) > was[0] && checks(b) > was[1]
	})
	was = []float64{checks(a), checks(b)}
	write(1)
	eventually(t, 15*time.Second, "the peer shown at 6, checked", func() bool {
		return shown(a, 6) && shown(b, 6) && checks(a) > was[0] && checks(b) > was[1]
	})
	for i, r := range []*replica{a, b} {
		if n := r.metric("gdp_capsuled_possession_checks_total", "failed"); n != 0 {
			t.Fatalf("replica %d: %v checks failed between honest replicas", i, n)
		}
	}
}
