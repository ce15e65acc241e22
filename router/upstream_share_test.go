package router_test

import (
	"context"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
	"github.com/gdpnet/gdpnet/router/routertest"
)

// slowPublish is a resolver whose Publish takes delay (a DHT put to far
// nodes) before it stores.
type slowPublish struct {
	resolver.Resolver
	delay time.Duration
}

func (s *slowPublish) Publish(ctx context.Context, rec *resolver.Record) error {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.Resolver.Publish(ctx, rec)
}

// TestDownstreamRecordsPerPeer: a member router announces 300 valid
// location records of self-minted names to the hub while the hub's
// resolver takes 300 ms a put; an honest spoke's record, announced during
// that flood, is still stored, and the flood's excess (beyond its 4 slots
// and the 256 of its backlog) is counted. Before,
// the hub's 16 slots for downstream records were shared: the flood held
// them all, the honest record was dropped "busy", and it came again only
// with the spoke's next renewal (minutes).
func TestDownstreamRecordsPerPeer(t *testing.T) {
	w := newWorld(t)
	static := resolver.NewStatic(&resolver.Verifier{Certs: w.dom.Verifier})
	t.Cleanup(func() { _ = static.Close() })
	hubRes := &slowPublish{Resolver: static, delay: 300 * time.Millisecond}
	hub := w.router("hub", router.Config{}, hubRes)
	hubName := hub.Name()
	spoke := w.router("spoke", router.Config{Peers: []router.PeerConfig{{Name: hubName, Addr: "127.0.0.1:9"}}, Upstream: &hubName}, nil)
	w.connect(hub, spoke)

	// The flooding member router, on a router face of the hub.
	evil, err := w.dom.NewRouter("evil")
	if err != nil {
		t.Fatal(err)
	}
	mine, theirs := routertest.Pipe(evil.ID.Name, hub.Name(), 4096)
	if _, err := hub.Attach(theirs, router.FaceRouter, w.dom.ID.Name, "mem"); err != nil {
		t.Fatal(err)
	}
	theirs.Start(func(l *routertest.Link, p []byte) { hub.HandlePDU(l, p) })
	mine.Start(func(*routertest.Link, []byte) {})
	t.Cleanup(func() { _ = mine.Close(); mine.Wait() })
	now := time.Now()
	for i := range 300 {
		ep, err := certs.NewIdentity(certs.KindClient, "self-minted")
		if err != nil {
			t.Fatal(err)
		}
		rt, err := certs.IssueRtCert(ep, evil.ID.Name, now.Add(-time.Minute), now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		chain := &certs.Chain{Target: ep.Meta, RtCert: rt, Router: evil.ID.Meta, Member: evil.Member, Domain: evil.Domain}
		rec, err := resolver.NewLocation(evil.ID.Key, ep.Name, chain, []string{"127.0.0.1:9"}, uint64(i+1), time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := rec.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		p, _ := (&pdu.Header{Type: pdu.TypeAdvertise, TTL: 1, Dst: hub.Name(), Src: evil.ID.Name, Payload: b}).Marshal()
		if err := mine.Send(p); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the flood to take the hub's slots", func() bool {
		return metric(t, hub, "gdp_router_downstream_records_total", "result", "busy")+
			metric(t, hub, "gdp_router_downstream_records_total", "result", "peer_busy") > 0
	})

	// An endpoint attaches at the spoke during the flood: the hub stores
	// its record within a few puts.
	e := w.endpoint(spoke, certs.KindClient, "honest endpoint")
	advertise(t, e)
	start := time.Now()
	eventually(t, "the hub's resolver to hold the honest spoke's record", func() bool {
		rec, err := static.Lookup(context.Background(), e.Name())
		return err == nil && rec.Router() == spoke.Name()
	})
	t.Logf("honest record stored %s after the advertisement; downstream busy %v, peer_busy %v, stored %v",
		time.Since(start).Round(time.Millisecond),
		metric(t, hub, "gdp_router_downstream_records_total", "result", "busy"),
		metric(t, hub, "gdp_router_downstream_records_total", "result", "peer_busy"),
		metric(t, hub, "gdp_router_downstream_records_total", "result", "stored"))
}
