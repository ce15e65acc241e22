package router_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/router"
	"github.com/gdpnet/gdpnet/router/routertest"
)

// TestTrustWithdrawnDropsLearnedRoutes (Session 17): a reload that stops
// trusting a domain drops the routes the router learnt from that domain's
// location records, not only the faces of its members. The edge router
// (domain A, trusting A and B) reaches a server attached to a router of
// domain B through its upstream (it has no tunnel to B's router): the
// route it learnt points at the upstream's face, of domain A, which the
// reload keeps. Before, that route was used until route_cache_ttl (30 s)
// after the reload; now the next PDU is looked up again under the new
// trust and refused FORBIDDEN. B's members attached to the edge router
// lose their faces.
func TestTrustWithdrawnDropsLearnedRoutes(t *testing.T) {
	w := newWorld(t)
	domB, err := routertest.NewDomain("B")
	if err != nil {
		t.Fatal(err)
	}
	w.dom.Verifier.Trusted[domB.ID.Name] = domB.ID.Meta // before any router starts
	up := w.router("upstream", router.Config{}, nil)
	upName := up.Name()
	viaUp := router.Config{Peers: []router.PeerConfig{{Name: upName, Addr: "127.0.0.1:9"}}, Upstream: &upName}
	edge := w.router("edge", viaUp, nil)
	w.connect(edge, up)

	// Router B, a spoke of the same upstream (so answers find their way back).
	rbc, err := domB.NewRouter("router B")
	if err != nil {
		t.Fatal(err)
	}
	server := w.serverBehind(up, viaUp, domB, rbc)
	user := w.endpoint(edge, certs.KindClient, "user in A")
	advertise(t, user)
	// A member of B attached to the edge router itself: its face goes at
	// the reload (as for allow_domains, TestEndpointDomainPolicyReload).
	bid, err := certs.NewIdentity(certs.KindClient, "member of B at the edge")
	if err != nil {
		t.Fatal(err)
	}
	mine, theirs := routertest.Pipe(bid.Name, edge.Name(), 64)
	if _, err := edge.Attach(theirs, router.FaceEndpoint, domB.ID.Name, "mem"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mine.Close() })

	learnt := func() bool {
		for _, ri := range edge.Routes(0, router.OriginResolver) {
			if ri.Name == server.Name() {
				return true
			}
		}
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Location records are published after the ADVERTISE is answered: a
	// ping before would be refused NO_ROUTE, and the miss remembered.
	eventually(t, "both endpoints' records published", func() bool {
		_, e1 := w.res.Lookup(ctx, server.Name())
		_, e2 := w.res.Lookup(ctx, user.Name())
		return e1 == nil && e2 == nil
	})
	if rep, err := user.Ping(ctx, server.Name(), 8, 10*time.Second); err != nil || !rep.Reached {
		t.Fatalf("ping of B's server while B is trusted: %+v, %v", rep, err)
	}
	if !learnt() {
		t.Fatal("the edge router holds no learnt route to B's server after the ping")
	}

	onlyA := certs.NewVerifier(w.dom.ID.Meta)
	onlyA.Now = w.dom.Verifier.Now
	if err := edge.Reload(edge.creds.ID, edge.creds.Member, edge.creds.Domain, onlyA, nil); err != nil {
		t.Fatal(err)
	}
	if learnt() {
		t.Fatal("the route learnt from B's record outlived the reload that stopped trusting B")
	}
	_, err = user.Ping(ctx, server.Name(), 8, 10*time.Second)
	var nak *client.NAKError
	if !errors.As(err, &nak) || nak.Code != pdu.CodeForbidden {
		t.Fatalf("ping of B's server after the reload: %v, want a FORBIDDEN NAK", err)
	}
	if hasFace(edge.Router, bid.Name) {
		t.Fatal("the face of B's member at the edge outlived the reload")
	}
	if !hasFace(edge.Router, upName) {
		t.Fatal("the upstream's face (domain A) was closed")
	}
}

// TestTrustWithdrawnKeepsOtherDomainsRoutes (Session 18): a reload that
// stops trusting domain B drops the routes B's records proved and keeps
// those proven by domain C, still trusted: traffic to C's server carries
// on through the learnt route without a new lookup (before, every learnt
// route went and each destination in use waited for one), while the next
// PDU to B's server is looked up again and refused FORBIDDEN. Both
// servers sit behind the upstream, so both learnt hops are on the same
// face of domain A: only the records' domains tell them apart.
func TestTrustWithdrawnKeepsOtherDomainsRoutes(t *testing.T) {
	w := newWorld(t)
	domB, err := routertest.NewDomain("B")
	if err != nil {
		t.Fatal(err)
	}
	domC, err := routertest.NewDomain("C")
	if err != nil {
		t.Fatal(err)
	}
	w.dom.Verifier.Trusted[domB.ID.Name] = domB.ID.Meta // before any router starts
	w.dom.Verifier.Trusted[domC.ID.Name] = domC.ID.Meta
	up := w.router("upstream", router.Config{}, nil)
	upName := up.Name()
	viaUp := router.Config{Peers: []router.PeerConfig{{Name: upName, Addr: "127.0.0.1:9"}}, Upstream: &upName}
	edge := w.router("edge", viaUp, nil)
	w.connect(edge, up)
	rbc, err := domB.NewRouter("router B")
	if err != nil {
		t.Fatal(err)
	}
	rcc, err := domC.NewRouter("router C")
	if err != nil {
		t.Fatal(err)
	}
	serverB := w.serverBehind(up, viaUp, domB, rbc)
	serverC := w.serverBehind(up, viaUp, domC, rcc)
	user := w.endpoint(edge, certs.KindClient, "user in A")
	advertise(t, user)

	learnt := func(n pdu.Name) bool {
		for _, ri := range edge.Routes(0, router.OriginResolver) {
			if ri.Name == n {
				return true
			}
		}
		return false
	}
	lookups := func() float64 {
		sum := 0.0
		for _, res := range []string{"found", "not_found", "forbidden", "error", "stale"} {
			sum += metric(t, edge, "gdp_router_resolver_lookups_total", "result", res)
		}
		return sum
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	eventually(t, "the endpoints' records published", func() bool {
		_, e1 := w.res.Lookup(ctx, serverB.Name())
		_, e2 := w.res.Lookup(ctx, serverC.Name())
		_, e3 := w.res.Lookup(ctx, user.Name())
		return e1 == nil && e2 == nil && e3 == nil
	})
	for _, s := range []*client.Client{serverB, serverC} {
		if rep, err := user.Ping(ctx, s.Name(), 8, 10*time.Second); err != nil || !rep.Reached {
			t.Fatalf("ping of %s while B and C are trusted: %+v, %v", s.Name(), rep, err)
		}
	}
	if !learnt(serverB.Name()) || !learnt(serverC.Name()) {
		t.Fatal("the edge router holds no learnt route to one of the servers after the pings")
	}

	aAndC := certs.NewVerifier(w.dom.ID.Meta)
	aAndC.Trusted[domC.ID.Name] = domC.ID.Meta
	aAndC.Now = w.dom.Verifier.Now
	before := lookups()
	if err := edge.Reload(edge.creds.ID, edge.creds.Member, edge.creds.Domain, aAndC, nil); err != nil {
		t.Fatal(err)
	}
	if learnt(serverB.Name()) {
		t.Fatal("the route learnt from B's record outlived the reload that stopped trusting B")
	}
	if !learnt(serverC.Name()) {
		t.Fatal("the route learnt from C's record, C still trusted, was dropped by the reload that withdrew B")
	}
	for i := range 3 {
		if rep, err := user.Ping(ctx, serverC.Name(), 8, 10*time.Second); err != nil || !rep.Reached {
			t.Fatalf("ping %d of C's server after B was withdrawn: %+v, %v", i, rep, err)
		}
	}
	if got := lookups(); got != before {
		t.Fatalf("%v resolver lookups for C's server after the reload, want none (its learnt route kept)", got-before)
	}
	_, err = user.Ping(ctx, serverB.Name(), 8, 10*time.Second)
	var nak *client.NAKError
	if !errors.As(err, &nak) || nak.Code != pdu.CodeForbidden {
		t.Fatalf("ping of B's server after the reload: %v, want a FORBIDDEN NAK", err)
	}
	if got := lookups(); got != before+1 {
		t.Fatalf("%v resolver lookups after B's server was pinged, want 1", got-before)
	}
}

// TestTrustWithdrawnDuringLookup (Session 17): a reload that withdraws a
// domain while a lookup of one of its names is under way — here while
// the router dials the record's holder on demand, after the lookup
// checked the record's domain under the old policy — leaves no route
// behind. The reload's sweep of learnt routes ran before the lookup's
// hop was installed (through the upstream, the dial having failed), so
// the hop was used for route_cache_ttl after the reload; now it is
// checked again once installed and the PDU is refused FORBIDDEN.
func TestTrustWithdrawnDuringLookup(t *testing.T) {
	w := newWorld(t)
	domB, err := routertest.NewDomain("B")
	if err != nil {
		t.Fatal(err)
	}
	w.dom.Verifier.Trusted[domB.ID.Name] = domB.ID.Meta // before any router starts
	up := w.router("upstream", router.Config{}, nil)
	upName := up.Name()
	viaUp := router.Config{Peers: []router.PeerConfig{{Name: upName, Addr: "127.0.0.1:9"}}, Upstream: &upName}

	rbc, err := domB.NewRouter("router B")
	if err != nil {
		t.Fatal(err)
	}
	// The edge router (domain A) dials holders on demand; its dial to B's
	// router is where the reload comes, once.
	ec, err := w.dom.NewRouter("edge")
	if err != nil {
		t.Fatal(err)
	}
	var edge *router.Router
	onlyA := certs.NewVerifier(w.dom.ID.Meta)
	onlyA.Now = w.dom.Verifier.Now
	reloaded := make(chan error, 1)
	dial := func(ctx context.Context, peer pdu.Name, addr string, raw bool) (router.Link, error) {
		if peer == rbc.ID.Name {
			select {
			case reloaded <- edge.Reload(ec.ID, ec.Member, ec.Domain, onlyA, nil):
			default:
			}
		}
		return nil, errors.New("no dial in this test")
	}
	edgeCfg := viaUp
	edgeCfg.Listen = "127.0.0.1:9"
	edge, err = router.New(edgeCfg, router.Deps{Identity: ec.ID, Member: ec.Member, Domain: ec.Domain, Verifier: w.dom.Verifier,
		Resolver: w.res, Dial: dial, Logger: zaptest.NewLogger(t).Named("edge")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = edge.Close() })
	etr := &testRouter{Router: edge, creds: ec}
	w.connect(etr, up)

	server := w.serverBehind(up, viaUp, domB, rbc)
	user := w.endpoint(etr, certs.KindClient, "user in A")
	advertise(t, user)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	eventually(t, "both endpoints' records published", func() bool {
		_, e1 := w.res.Lookup(ctx, server.Name())
		_, e2 := w.res.Lookup(ctx, user.Name())
		return e1 == nil && e2 == nil
	})

	rep, err := user.Ping(ctx, server.Name(), 8, 10*time.Second)
	select {
	case err := <-reloaded:
		if err != nil {
			t.Fatalf("reload: %v", err)
		}
	default:
		t.Fatalf("the edge never dialled B's router (ping: %+v, %v): the reload did not come during the lookup", rep, err)
	}
	var nak *client.NAKError
	if !errors.As(err, &nak) || nak.Code != pdu.CodeForbidden {
		t.Fatalf("ping of B's server, B withdrawn during its lookup: %+v, %v; want a FORBIDDEN NAK", rep, err)
	}
	for _, ri := range edge.Routes(0, router.OriginResolver) {
		if ri.Name == server.Name() {
			t.Fatalf("a route to B's server learnt during the reload outlived it: %+v", ri)
		}
	}
}

// serverBehind starts router B (credentials rbc, a member of domB) as a
// spoke of up over an in-memory link, config viaUp (up its upstream, so
// answers find their way back), and attaches and advertises a server to
// it: reached from other spokes of up only through up.
func (w *world) serverBehind(up *testRouter, viaUp router.Config, domB *routertest.Domain, rbc *routertest.Router) *client.Client {
	t := w.t
	t.Helper()
	upName := up.Name()
	viaUp.Listen = "127.0.0.1:9"
	rb, err := router.New(viaUp, router.Deps{Identity: rbc.ID, Member: rbc.Member, Domain: rbc.Domain, Verifier: w.dom.Verifier,
		Resolver: w.res, Logger: zaptest.NewLogger(t).Named("router B")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rb.Close() })
	lu, lb := routertest.Pipe(upName, rb.Name(), 8192)
	if _, err := up.Attach(lu, router.FaceRouter, domB.ID.Name, "mem"); err != nil {
		t.Fatal(err)
	}
	if _, err := rb.Attach(lb, router.FaceRouter, w.dom.ID.Name, "mem"); err != nil {
		t.Fatal(err)
	}
	lu.Start(func(l *routertest.Link, p []byte) { up.HandlePDU(l, p) })
	lb.Start(func(l *routertest.Link, p []byte) { rb.HandlePDU(l, p) })
	t.Cleanup(func() { _ = lu.Close(); lu.Wait() })
	server := w.endpoint(&testRouter{Router: rb, creds: rbc}, certs.KindServer, "server in B")
	advertise(t, server)
	return server
}
