package capsuled

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gdpnet/gdpnet/capsuled/store"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestSubscriptionRenewedAsItLapses: a renewal that reaches the server
// just as the subscription's lease runs out — its run has read the expiry
// and is about to end it — is answered OK, so the subscription must go on
// for the renewed lease: not end at once, leaving the subscriber with no
// push until its next renewal finds it gone.
func TestSubscriptionRenewedAsItLapses(t *testing.T) {
	t.Cleanup(func() { subHookLapsed = nil })
	ctx := context.Background()
	st, err := store.Open(filepath.Join(t.TempDir(), "store"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	c := newPlacementCapsule(t, "lapsing subscription")
	name := c.meta.Name()
	if err := st.Create(ctx, name, c.meta.Marshal()); err != nil {
		t.Fatal(err)
	}
	s := &Server{st: st, watch: newWatchers(), met: newMetrics(prometheus.NewRegistry()), ctx: ctx}
	s.cfg.MaxLease = time.Minute
	s.pol.Store(&policy{maxSubs: 10, maxSubsPer: 10, maxSubsUnp: 10})
	ss := newSubscriptions(s)
	s.subs = ss
	who := pdu.Name{7}
	if reason := ss.admit(who, who); reason != "" {
		t.Fatal(reason)
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sub := &subscription{key: subKey{who, 1}, share: who, c: name, expiry: time.Now(), poke: make(chan struct{}, 1), cancel: cancel}
	ss.add(sub)
	const lease = 300 * time.Millisecond
	var renewed time.Time
	subHookLapsed = func(*subscription) {
		subHookLapsed = nil
		m := &wire.Message{Op: wire.OpSubscribe, ID: 1, Capsule: name[:], Lease: uint64(lease / time.Millisecond)}
		if resp := s.handleSubscribe(request{from: who, msg: m, asker: asker{group: who, ident: who}}); resp.Status != wire.StatusOK {
			t.Errorf("the renewal: %v %q", resp.Status, resp.Error)
		}
		sub.mu.Lock()
		renewed = sub.expiry
		sub.mu.Unlock()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		ss.run(rctx, sub)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the subscription's run did not end after its renewed lease")
	}
	ended := time.Now()
	if renewed.IsZero() {
		t.Fatal("the run never found the lease over")
	}
	if ended.Before(renewed) {
		t.Fatalf("the subscription renewed (answered OK) ended %s before its renewed lease ran out", renewed.Sub(ended).Round(time.Millisecond))
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.m[sub.key] != nil {
		t.Fatal("the subscription is still held after its renewed lease ran out")
	}
}
