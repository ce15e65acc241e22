package router_test

import (
	"context"
	"testing"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
	"github.com/gdpnet/gdpnet/router/routertest"
)

// TestSpokeAnnouncesToUpstream: a spoke (upstream = the hub) sends the hub
// the location record of every name attached at it, and a tombstone when
// it goes; hub and spoke each have their own static resolver. Another
// router cannot plant a record it does not hold, even a genuine one
// replayed: the hub takes a record only from the holder's own tunnel.
func TestSpokeAnnouncesToUpstream(t *testing.T) {
	w := newWorld(t)
	resOf := func() *resolver.Static {
		s := resolver.NewStatic(&resolver.Verifier{Certs: w.dom.Verifier})
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	hubRes, spokeRes := resOf(), resOf()
	hub := w.router("hub", router.Config{}, hubRes)
	hubName := hub.Name()
	spoke := w.router("spoke", router.Config{Peers: []router.PeerConfig{{Name: hubName, Addr: "127.0.0.1:9"}}, Upstream: &hubName}, spokeRes)
	w.connect(hub, spoke)

	e := w.endpoint(spoke, certs.KindClient, "endpoint at the spoke")
	advertise(t, e)
	eventually(t, "the hub's resolver to hold the spoke's record", func() bool {
		rec, err := hubRes.Lookup(context.Background(), e.Name())
		return err == nil && rec.Router() == spoke.Name()
	})
	if got := metric(t, hub, "gdp_router_downstream_records_total", "result", "stored"); got < 1 {
		t.Fatalf("downstream{stored} = %g", got)
	}

	// A third router replays the spoke's genuine record over its own tunnel.
	rec, err := spokeRes.Lookup(context.Background(), e.Name())
	if err != nil {
		t.Fatal(err)
	}
	evil, _ := w.dom.NewRouter("evil")
	mine, theirs := routertest.Pipe(evil.ID.Name, hub.Name(), 64)
	if _, err := hub.Attach(theirs, router.FaceRouter, w.dom.ID.Name, "mem"); err != nil {
		t.Fatal(err)
	}
	theirs.Start(func(l *routertest.Link, p []byte) { hub.HandlePDU(l, p) })
	mine.Start(func(*routertest.Link, []byte) {})
	t.Cleanup(func() { _ = mine.Close(); mine.Wait() })
	b, _ := rec.Marshal()
	p, _ := (&pdu.Header{Type: pdu.TypeAdvertise, TTL: 1, Dst: hub.Name(), Src: evil.ID.Name, Payload: b}).Marshal()
	if err := mine.Send(p); err != nil {
		t.Fatal(err)
	}
	garbage, _ := (&pdu.Header{Type: pdu.TypeAdvertise, TTL: 1, Dst: hub.Name(), Src: evil.ID.Name, Payload: []byte{0xa1, 0x01}}).Marshal()
	if err := mine.Send(garbage); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the replay refused", func() bool {
		return metric(t, hub, "gdp_router_downstream_records_total", "result", "not_holder") == 1 &&
			metric(t, hub, "gdp_router_downstream_records_total", "result", "malformed") == 1
	})

	// The endpoint leaves: the spoke's tombstone removes the hub's record.
	_ = e.Close()
	eventually(t, "the hub's record withdrawn", func() bool {
		_, err := hubRes.Lookup(context.Background(), e.Name())
		return err != nil
	})
}
