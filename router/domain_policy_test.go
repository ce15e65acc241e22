package router_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
	"github.com/gdpnet/gdpnet/router/routertest"
)

// twoDomains is a router node of domain A on loopback that trusts domains
// A and B, with allow_domains as given, and a way to attach endpoints of
// either domain over real QUIC tunnels.
type twoDomains struct {
	t          *testing.T
	domA, domB *routertest.Domain
	both       *certs.Verifier
	rc         *routertest.Router
	node       *router.Node
	res        *resolver.Static
}

// newTwoDomains starts the node; onlyA sets allow_domains to [A].
func newTwoDomains(t *testing.T, onlyA bool) *twoDomains {
	t.Helper()
	domA, _ := routertest.NewDomain("A")
	domB, _ := routertest.NewDomain("B")
	d := &twoDomains{t: t, domA: domA, domB: domB, both: certs.NewVerifier(domA.ID.Meta, domB.ID.Meta)}
	d.res = resolver.NewStatic(&resolver.Verifier{Certs: d.both})
	t.Cleanup(func() { _ = d.res.Close() })
	d.rc, _ = domA.NewRouter("router A")
	var allow []pdu.Name
	if onlyA {
		allow = []pdu.Name{domA.ID.Name}
	}
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d.node, err = router.StartNode(router.Config{Listen: "127.0.0.1:0", AllowDomains: allow}, router.Deps{
		Identity: d.rc.ID, Member: d.rc.Member, Domain: d.rc.Domain, Verifier: d.both,
		Resolver: d.res, Logger: zaptest.NewLogger(t).Named("router A"),
	}, conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.node.Close() })
	return d
}

// endpoint dials the node as a fresh endpoint that is a member of dom.
// The tunnel handshake succeeds (both domains are trusted); what the router
// does with the link is the policy's business.
func (d *twoDomains) endpoint(dom *routertest.Domain, desc string) *client.Client {
	d.t.Helper()
	id, _ := certs.NewIdentity(certs.KindServer, desc)
	member, _ := dom.Member(id)
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		d.t.Fatal(err)
	}
	ep, err := client.NewEndpoint(client.EndpointConfig{
		Identity: id, Member: member, Domain: dom.ID.Meta, Verifier: d.both, Conn: conn,
		Options: client.Options{RequestTimeout: 500 * time.Millisecond, Attempts: 2},
	})
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { _ = ep.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := ep.Attach(ctx, d.node.Addr(), d.node.Router.Name())
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { _ = c.Close() })
	return c
}

func (d *twoDomains) refused() float64 {
	return metric(d.t, &testRouter{Router: d.node.Router}, "gdp_router_faces_refused_total", "reason", "forbidden_domain")
}

func hasFace(r *router.Router, peer pdu.Name) bool {
	for _, f := range r.Faces() {
		if f.Peer == peer {
			return true
		}
	}
	return false
}

// TestEndpointDomainPolicy (issue 9 item 5): a router that trusts domains A
// and B but allows only A gives an endpoint of B no face: it cannot
// advertise, holds no route, and no PDU reaches it. The endpoint of A is
// served as before.
func TestEndpointDomainPolicy(t *testing.T) {
	d := newTwoDomains(t, true)
	a := d.endpoint(d.domA, "server in A")
	if _, err := a.Advertise(context.Background(), a.Self()); err != nil {
		t.Fatalf("endpoint of A: %v", err)
	}
	b := d.endpoint(d.domB, "server in B")
	if _, err := b.Advertise(context.Background(), b.Self()); err == nil {
		t.Fatal("endpoint of B advertised through a router that allows only A")
	}
	if hasFace(d.node.Router, b.Name()) {
		t.Fatal("endpoint of B holds a face")
	}
	if got := d.refused(); got < 1 {
		t.Fatalf("faces_refused{forbidden_domain} = %v", got)
	}
	// Nothing is delivered to B: the router has no route to it.
	var nak *client.NAKError
	if _, err := a.Ping(context.Background(), b.Name(), 8, time.Second); !errors.As(err, &nak) {
		t.Fatalf("ping of the endpoint of B: %v, want a NAK", err)
	}
	// A's traffic is unaffected.
	if _, err := a.Ping(context.Background(), d.node.Router.Name(), 8, time.Second); err != nil {
		t.Fatalf("endpoint of A pings its router: %v", err)
	}
}

// TestEndpointDomainPolicyReload: narrowing allow_domains on a running
// router (SIGHUP) closes the faces of endpoints whose domain it no longer
// allows, and removes their routes.
func TestEndpointDomainPolicyReload(t *testing.T) {
	d := newTwoDomains(t, false)
	a := d.endpoint(d.domA, "client in A")
	b := d.endpoint(d.domB, "server in B")
	if _, err := b.Advertise(context.Background(), b.Self()); err != nil {
		t.Fatalf("endpoint of B while B is allowed: %v", err)
	}
	if _, err := a.Advertise(context.Background(), a.Self()); err != nil {
		t.Fatal(err)
	}
	if rep, err := a.Ping(context.Background(), b.Name(), 8, time.Second); err != nil || !rep.Reached {
		t.Fatalf("ping of B while allowed: %+v, %v", rep, err)
	}
	if err := d.node.Router.Reload(d.rc.ID, d.rc.Member, d.rc.Domain, d.both, []pdu.Name{d.domA.ID.Name}); err != nil {
		t.Fatal(err)
	}
	if hasFace(d.node.Router, b.Name()) {
		t.Fatal("endpoint of B keeps its face after the reload")
	}
	select {
	case <-b.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("endpoint of B's tunnel still up after the reload")
	}
	if rep, err := a.Ping(context.Background(), b.Name(), 8, time.Second); err == nil || rep.Reached {
		t.Fatalf("ping of B after the reload: %+v, %v", rep, err)
	}
	if hasFace(d.node.Router, a.Name()) == false {
		t.Fatal("endpoint of A lost its face")
	}
}

// TestTrustReloadReachesTunnel: the trusted domains a reload (SIGHUP)
// puts in force are the ones the router's tunnel checks handshakes (and
// renewals on live tunnels) against, not those it started with: a domain
// added is accepted at once, a domain removed is refused at the handshake.
func TestTrustReloadReachesTunnel(t *testing.T) {
	domA, _ := routertest.NewDomain("A")
	domB, _ := routertest.NewDomain("B")
	onlyA := certs.NewVerifier(domA.ID.Meta)
	both := certs.NewVerifier(domA.ID.Meta, domB.ID.Meta)
	d := &twoDomains{t: t, domA: domA, domB: domB, both: both}
	d.res = resolver.NewStatic(&resolver.Verifier{Certs: both})
	t.Cleanup(func() { _ = d.res.Close() })
	d.rc, _ = domA.NewRouter("router A")
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d.node, err = router.StartNode(router.Config{Listen: "127.0.0.1:0"}, router.Deps{
		Identity: d.rc.ID, Member: d.rc.Member, Domain: d.rc.Domain, Verifier: onlyA,
		Resolver: d.res, Logger: zaptest.NewLogger(t).Named("router A"),
	}, conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.node.Close() })
	attach := func(desc string) error {
		id, _ := certs.NewIdentity(certs.KindServer, desc)
		member, _ := domB.Member(id)
		conn, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ep, err := client.NewEndpoint(client.EndpointConfig{Identity: id, Member: member, Domain: domB.ID.Meta, Verifier: both, Conn: conn})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ep.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := ep.Attach(ctx, d.node.Addr(), d.node.Router.Name())
		if err != nil {
			return err
		}
		t.Cleanup(func() { _ = c.Close() })
		_, err = c.Advertise(ctx, c.Self())
		return err
	}
	if err := attach("server in B before B is trusted"); err == nil {
		t.Fatal("an endpoint of B attached and advertised while the router trusts only A")
	}
	if err := d.node.Router.Reload(d.rc.ID, d.rc.Member, d.rc.Domain, both, nil); err != nil {
		t.Fatal(err)
	}
	if err := attach("server in B once B is trusted"); err != nil {
		t.Fatalf("an endpoint of B after the reload that trusts B: %v", err)
	}
	if err := d.node.Router.Reload(d.rc.ID, d.rc.Member, d.rc.Domain, onlyA, nil); err != nil {
		t.Fatal(err)
	}
	before := d.node.Tunnel.Stats().HandshakesRefused
	if err := attach("server in B once B is trusted no more"); err == nil {
		t.Fatal("an endpoint of B attached and advertised after the reload that stopped trusting B")
	}
	if d.node.Tunnel.Stats().HandshakesRefused == before {
		t.Fatal("the endpoint of B was not refused at the tunnel's handshake after the reload that stopped trusting B")
	}
}
