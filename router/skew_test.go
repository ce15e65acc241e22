package router_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/advert"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/internal/clock"
	"github.com/gdpnet/gdpnet/router"
)

// TestAdvertiseClockSkew: an advertisement's sequence is the endpoint's
// clock. Within the clock window (default 5 minutes) a skewed endpoint is
// served; beyond it (10 minutes) it is refused replay, counted, and the
// route it held stays. The order of sequences is per tunnel session: an
// endpoint restarted with its clock 3 minutes behind (NTP stepped it, or
// the fault suite skewed it) is accepted on its new tunnel at once, while a
// lower sequence on the old session is still a replay. The router's own
// clock is the process clock (internal/clock): skewed 10 minutes ahead, it
// refuses an endpoint with a true clock.
func TestAdvertiseClockSkew(t *testing.T) {
	w := newWorld(t)
	r := w.router("r", router.Config{}, nil)
	now := time.Now()
	c, _ := newCapsule("the capsule")
	srv := w.raw(r, certs.KindServer, "server")
	ad, _ := c.AdCert(srv.id.Name, time.Hour)
	rt := srv.rtCert(r.Name(), now.Add(-time.Minute), now.Add(time.Hour))
	adv := func(e *rawEP, seq uint64) advert.NameResult {
		t.Helper()
		res := e.advertise(&advert.Advertise{Seq: seq, Endpoint: e.id.Meta.Marshal(), RtCert: rt.Marshal(),
			Names: []advert.AdvertName{{Name: c.Meta.Name(), Target: c.Meta.Marshal(), AdCert: ad.Marshal()}}})
		if len(res.Names) != 1 {
			t.Fatalf("%d results", len(res.Names))
		}
		return res.Names[0]
	}
	at := func(d time.Duration) uint64 { return uint64(time.Now().Add(d).UnixNano()) }
	if nr := adv(srv, at(2*time.Minute)); nr.Status != advert.StatusOK {
		t.Fatalf("2 minutes ahead: %s (%s)", nr.Status, nr.Detail)
	}
	replays := metric(t, r, "gdp_router_advertisements_total", "result", "replay")
	for _, d := range []time.Duration{10 * time.Minute, -10 * time.Minute} {
		if nr := adv(srv, at(d)); nr.Status != advert.StatusReplay || !strings.Contains(nr.Detail, "clock window") {
			t.Fatalf("%s off: %s (%s), want replay outside the clock window", d, nr.Status, nr.Detail)
		}
	}
	if got := metric(t, r, "gdp_router_advertisements_total", "result", "replay"); got != replays+2 {
		t.Fatalf("replay refusals counted %v, want %v", got, replays+2)
	}
	if hops := r.FIB().Lookup(c.Meta.Name()); len(hops) != 1 {
		t.Fatal("the refused advertisements removed the route")
	}

	// restarted with its clock 3 minutes behind: a new session
	again := w.rawAs(r, srv.id)
	behind := at(-3 * time.Minute)
	if nr := adv(again, behind); nr.Status != advert.StatusOK {
		t.Fatalf("restarted 3 minutes behind, new session: %s (%s)", nr.Status, nr.Detail)
	}
	if nr := adv(again, behind-1); nr.Status != advert.StatusReplay {
		t.Fatalf("an older sequence on the new session: %s, want replay", nr.Status)
	}
	if nr := adv(srv, behind); nr.Status != advert.StatusReplay {
		t.Fatalf("an older sequence on the old session: %s, want replay", nr.Status)
	}

	// the router's clock 10 minutes ahead: a true clock is out of its window
	defer clock.SetOffset(clock.SetOffset(10 * time.Minute))
	if nr := adv(again, at(0)); nr.Status != advert.StatusReplay {
		t.Fatalf("router 10 minutes ahead: %s (%s), want replay", nr.Status, nr.Detail)
	}
	if nr := adv(again, at(9*time.Minute)); nr.Status != advert.StatusOK {
		t.Fatalf("router and endpoint both ahead: %s (%s)", nr.Status, nr.Detail)
	}
}

// TestLearnedRouteOnSkewedClock: a route a router learns from the resolver
// expires on the router's own clock, the one its FIB is swept with. With the
// process clock 2 minutes ahead of or behind time.Now (as the fault suite
// runs a router), a client at r1 reaches a capsule at r2 and the learned hop is
// still in r1's FIB, valid for about route_cache_ttl; before the fix the
// hop was stamped with time.Now and was born expired.
func TestLearnedRouteOnSkewedClock(t *testing.T) {
	for _, off := range []time.Duration{2 * time.Minute, -2 * time.Minute} {
		t.Run(off.String(), func(t *testing.T) { learnOnSkewedClock(t, off) })
	}
}

func learnOnSkewedClock(t *testing.T, off time.Duration) {
	defer clock.SetOffset(clock.SetOffset(off))
	w := newWorld(t)
	r2, rc2 := w.startNode("r2", router.Config{})
	r1, _ := w.startNode("r1", router.Config{Peers: []router.PeerConfig{{Name: rc2.ID.Name, Addr: r2.Addr()}}})
	eventually(t, "r1 peered with r2", func() bool { return len(r2.Router.Peers()) == 1 })
	serverID, _ := certs.NewIdentity(certs.KindServer, "capsule server")
	cap, _ := newCapsule("sensor log")
	ad, _ := cap.AdCert(serverID.Name, time.Hour)
	server := w.dialEndpoint(r2, serverID)
	if _, err := server.Advertise(context.Background(), server.Self(), client.CapsuleRoute(cap.Meta, ad)); err != nil {
		t.Fatal(err)
	}
	cl := w.dialEndpoint(r1, nil)
	advertise(t, cl)
	w.published(cap.Meta.Name(), cl.Name())
	if rep := pingEventually(t, cl, cap.Meta.Name()); !rep.Reached {
		t.Fatalf("ping: %+v", rep)
	}
	hops := r1.Router.FIB().Lookup(cap.Meta.Name())
	if len(hops) == 0 {
		t.Fatal("r1 holds no hop for the capsule after reaching it")
	}
	if left := hops[0].Expiry.Sub(clock.Now()); left < 10*time.Second {
		t.Fatalf("the learned hop expires %s from r1's clock, want about route_cache_ttl (30s)", left)
	}
}
