package router_test

import (
	"context"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/router"
	"github.com/gdpnet/gdpnet/router/routertest"
)

// TestEndpointCannotSendNAKs (issue 9 item 3): only routers originate NAKs
// and ADVERTISE_RESULTs, and endpoints rely on it (PROTOCOL.md §1.9): one
// sent by an endpoint — from a name it holds, so past the source check —
// is dropped and counted, and never reaches the endpoint it names.
func TestEndpointCannotSendNAKs(t *testing.T) {
	w := newWorld(t)
	r := w.router("r", router.Config{}, nil)
	victim := w.endpoint(r, certs.KindServer, "victim")
	advertise(t, victim)
	id, _ := certs.NewIdentity(certs.KindClient, "forger")
	forger, raw := w.attachLink(r, id)
	advertise(t, forger)

	req, _ := (&pdu.Header{Type: pdu.TypeEchoRequest, TTL: 32, Sequence: 7, Dst: pdu.Name{9}, Src: victim.Name(), Payload: make([]byte, 8)}).Marshal()
	nak, _ := pdu.NAK(req, pdu.CodeNoRoute, forger.Name())
	result := pdu.Header{Type: pdu.TypeAdvertiseResult, TTL: 32, Sequence: 8, Dst: victim.Name(), Src: forger.Name(), Payload: []byte{0xa0}}
	before := metric(t, r, "gdp_router_pdus_dropped_total", "reason", "forbidden")
	for _, h := range []pdu.Header{nak, result} {
		b, err := h.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := raw.Send(b); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "both forged answers dropped", func() bool {
		return metric(t, r, "gdp_router_pdus_dropped_total", "reason", "forbidden")-before == 2
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if m, err := victim.Receive(ctx); err == nil {
		t.Fatalf("the victim received a forged %s from %s", m.Type, m.Src)
	}
	// The forger's ordinary traffic still flows.
	if rep, err := forger.Ping(context.Background(), victim.Name(), 8, time.Second); err != nil || !rep.Reached {
		t.Fatalf("forger's ping: %+v, %v", rep, err)
	}
}

// TestRelayedNoRouteKeepsRoute (issue 9 item 3): a router forgets a route
// it learned from the resolver through a peer only on that peer's own NAK
// NO_ROUTE, not on one the peer relays from another source.
func TestRelayedNoRouteKeepsRoute(t *testing.T) {
	w := newWorld(t)
	ra := w.router("a", router.Config{}, nil)
	rc := w.router("c", router.Config{}, nil)
	// C's side is lc (C's face to A); what A sends on la arrives at C on it.
	lc, la := routertest.Pipe(rc.Name(), ra.Name(), 1024)
	if _, err := rc.Attach(lc, router.FaceRouter, w.dom.ID.Name, "mem"); err != nil {
		t.Fatal(err)
	}
	if _, err := ra.Attach(la, router.FaceRouter, w.dom.ID.Name, "mem"); err != nil {
		t.Fatal(err)
	}
	lc.Start(func(l *routertest.Link, p []byte) { rc.HandlePDU(l, p) })
	la.Start(func(l *routertest.Link, p []byte) { ra.HandlePDU(l, p) })
	t.Cleanup(func() { _ = lc.Close(); lc.Wait() })

	server := w.endpoint(ra, certs.KindServer, "server at A")
	advertise(t, server)
	cl := w.endpoint(rc, certs.KindClient, "client at C")
	advertise(t, cl)
	w.published(server.Name(), cl.Name())
	if rep := pingEventually(t, cl, server.Name()); !rep.Reached {
		t.Fatalf("ping: %+v", rep)
	}
	learned := func() bool {
		for _, h := range rc.FIB().Lookup(server.Name()) {
			if h.Origin == router.OriginResolver && h.Router == ra.Name() {
				return true
			}
		}
		return false
	}
	if !learned() {
		t.Fatal("C did not learn the route through A")
	}
	// inject sends, as A, a NAK NO_ROUTE reported by reporter about a
	// DATA PDU from the client to the server, and waits for the client to
	// get it (C has then acted on it).
	inject := func(seq uint32, reporter pdu.Name) {
		t.Helper()
		orig, _ := (&pdu.Header{Type: pdu.TypeData, TTL: 30, Sequence: seq, Dst: server.Name(), Src: cl.Name(), Payload: []byte("x")}).Marshal()
		h, _ := pdu.NAK(orig, pdu.CodeNoRoute, reporter)
		b, _ := h.Marshal()
		if err := la.Send(b); err != nil {
			t.Fatal(err)
		}
		m := receive(t, cl)
		if m.Type != pdu.TypeNAK || m.Src != reporter {
			t.Fatalf("client got %s from %s", m.Type, m.Src)
		}
	}
	inject(1, pdu.Name{0x0e, 0x1e}) // relayed: some other router's
	if !learned() {
		t.Fatal("a NAK relayed by A from another reporter made C forget the route through A")
	}
	inject(2, ra.Name()) // A's own
	if learned() {
		t.Fatal("A's own NAK NO_ROUTE did not clear the route through A")
	}
}
