package router_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/internal/config"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
)

// staleRecord publishes a location record for id's name at a member
// router that is not running (its address answers nothing): what the
// resolver still holds for an endpoint whose router died. The highest
// sequence puts it first in a lookup's answer.
func (w *world) staleRecord(id *certs.Identity) {
	w.t.Helper()
	ghost, err := w.dom.NewRouter("dead router")
	if err != nil {
		w.t.Fatal(err)
	}
	now := time.Now()
	rt, err := certs.IssueRtCert(id, ghost.ID.Name, now.Add(-time.Minute), now.Add(time.Hour))
	if err != nil {
		w.t.Fatal(err)
	}
	chain := &certs.Chain{Target: id.Meta, RtCert: rt, Router: ghost.ID.Meta, Member: ghost.Member, Domain: ghost.Domain}
	rec, err := resolver.NewLocation(ghost.ID.Key, id.Name, chain, []string{"127.0.0.1:9"}, math.MaxUint64, time.Time{})
	if err != nil {
		w.t.Fatal(err)
	}
	if err := w.res.Publish(context.Background(), rec); err != nil {
		w.t.Fatal(err)
	}
}

// TestStaleHolderDoesNotHoldUpLiveOne: an endpoint moved from a router
// that died to router b; the resolver holds both records. Router a, with a
// tunnel to b, reaches it through b at once: holders it has a tunnel to are
// tried first, and the dead router's dial (the whole 3 s lookup timeout)
// no longer comes before them. And when a's lookup began before the
// endpoint was published at b — it sees only the dead router's record and
// dials it — a PDU from the endpoint passing through a makes a ask again
// at once and take b: the PDUs waiting are delivered well before the dial
// gives up (gateway TestUplinkRouterKilled: 4.5 s → 1.7 s).
func TestStaleHolderDoesNotHoldUpLiveOne(t *testing.T) {
	w := newWorld(t)
	b, _ := w.startNode("b", router.Config{})
	a, _ := w.startNode("a", router.Config{Peers: []router.PeerConfig{{Name: b.Router.Name(), Addr: b.Addr()}},
		Resolver: router.ResolverConfig{Timeout: config.Duration(3 * time.Second)}})
	cl := w.dialEndpoint(a, nil)
	advertise(t, cl)
	eventually(t, "a's tunnel to b", func() bool { return len(a.Router.Peers()) == 1 })

	// Both records held: b's is found first, whatever the order.
	moved, _ := certs.NewIdentity(certs.KindServer, "moved")
	x := w.dialEndpoint(b, moved)
	advertise(t, x)
	w.published(x.Name(), cl.Name())
	w.staleRecord(moved)
	if recs, err := w.res.LookupAll(context.Background(), x.Name()); err != nil || len(recs) != 2 || recs[0].Router() == b.Router.Name() {
		t.Fatalf("the resolver should list the dead router's record first: %d records, %v", len(recs), err)
	}
	start := time.Now()
	rep, err := cl.Ping(context.Background(), x.Name(), 32, 2500*time.Millisecond)
	if err != nil || rep.From != x.Name() {
		t.Fatalf("ping of an endpoint held at b and (stale) at a dead router: %+v %v after %s", rep, err, time.Since(start))
	}
	t.Logf("reached through b %s after the first ping", time.Since(start).Round(time.Millisecond))

	// Only the stale record when a asks; the endpoint attaches at b while
	// a dials the dead router, and sends a PDU through a.
	late, _ := certs.NewIdentity(certs.KindServer, "late")
	w.staleRecord(late)
	got := make(chan error, 1)
	var from pdu.Name
	go func() {
		rep, err := cl.Ping(context.Background(), late.Name, 32, 6*time.Second)
		from = rep.From
		got <- err
	}()
	time.Sleep(200 * time.Millisecond) // a's lookup is under way, dialling the dead router
	y := w.dialEndpoint(b, late)
	advertise(t, y)
	w.published(y.Name())
	sent := time.Now()
	if _, err := y.Send(cl.Name(), []byte("here")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil || from != y.Name() {
			t.Fatalf("ping parked during the dead router's dial: from %s, %v", from, err)
		}
		if d := time.Since(sent); d > 1500*time.Millisecond {
			t.Fatalf("the parked ping was answered %s after the endpoint sent through a, want well under the 3 s dial", d)
		}
		t.Logf("parked ping answered %s after the endpoint sent through a", time.Since(sent).Round(time.Millisecond))
	case <-time.After(8 * time.Second):
		t.Fatal("the parked ping never came back")
	}
	if v := metric(t, &testRouter{Router: a.Router}, "gdp_router_resolver_lookups_total", "result", "revived"); v != 1 {
		t.Fatalf("lookups revived %v, want 1", v)
	}
}
