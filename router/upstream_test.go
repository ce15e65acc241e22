package router_test

import (
	"context"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

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

// TestSpokeOfAnotherDomainToldWhy: a hub whose resolver holds only its own
// domain's routers' records (a domain DHT node; here a static resolver
// restricted to the domain the same way) refuses the records of a spoke of
// another domain it trusts, and its line says why and what to do — the
// spoke's names are not reachable through it (Session 18: two domains
// deployed by hand, a beta router with an acme hub as upstream, the
// beta-attached gateway's answers lost with "refused" and no fix).
func TestSpokeOfAnotherDomainToldWhy(t *testing.T) {
	w := newWorld(t)
	domB, err := routertest.NewDomain("B")
	if err != nil {
		t.Fatal(err)
	}
	w.dom.Verifier.Trusted[domB.ID.Name] = domB.ID.Meta // before any router starts
	hubRes := resolver.NewStatic(&resolver.Verifier{Certs: w.dom.Verifier, Domain: w.dom.ID.Name})
	t.Cleanup(func() { _ = hubRes.Close() })
	core, logs := observer.New(zap.InfoLevel)
	w.log = zap.New(core)
	hub := w.router("hub", router.Config{}, hubRes)
	w.log = nil
	hubName := hub.Name()
	rbc, err := domB.NewRouter("router B")
	if err != nil {
		t.Fatal(err)
	}
	server := w.serverBehind(hub, router.Config{Peers: []router.PeerConfig{{Name: hubName, Addr: "127.0.0.1:9"}}, Upstream: &hubName}, domB, rbc)
	eventually(t, "the hub to refuse B's record", func() bool {
		return metric(t, hub, "gdp_router_downstream_records_total", "result", "refused") >= 1
	})
	if _, err := hubRes.Lookup(context.Background(), server.Name()); err == nil {
		t.Fatal("the hub's resolver holds the record of another domain's spoke")
	}
	var line []observer.LoggedEntry
	eventually(t, "the refusal's line", func() bool {
		line = logs.FilterMessage("downstream record refused").All()
		return len(line) > 0
	})
	if fix, _ := line[0].ContextMap()["fix"].(string); !strings.Contains(fix, "own domain's routers only") || !strings.Contains(fix, "§4.2") {
		t.Fatalf("refusal line %v: want a fix naming the domain rule and the federation", line[0].ContextMap())
	}
}
