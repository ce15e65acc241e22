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
	"github.com/gdpnet/gdpnet/router"
	"github.com/gdpnet/gdpnet/router/routertest"
)

// startNode runs a router on real loopback UDP sockets behind a tunnel
// endpoint, with w's static resolver.
func (w *world) startNode(desc string, cfg router.Config) (*router.Node, *routertest.Router) {
	return w.startNodeAt("127.0.0.1:0", desc, cfg)
}

func (w *world) startNodeAt(addr, desc string, cfg router.Config) (*router.Node, *routertest.Router) {
	w.t.Helper()
	rc, err := w.dom.NewRouter(desc)
	if err != nil {
		w.t.Fatal(err)
	}
	return w.startNodeWith(addr, desc, rc, cfg), rc
}

func (w *world) startNodeWith(addr, desc string, rc *routertest.Router, cfg router.Config) *router.Node {
	w.t.Helper()
	conn, err := net.ListenPacket("udp", addr)
	if err != nil {
		w.t.Fatal(err)
	}
	n, err := router.StartNode(cfg, router.Deps{
		Identity: rc.ID, Member: rc.Member, Domain: rc.Domain, Verifier: w.dom.Verifier,
		Resolver: w.res, Logger: zaptest.NewLogger(w.t).Named(desc),
	}, conn, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { _ = n.Close() })
	return n
}

// dialEndpoint mints an endpoint identity with a membership and attaches
// it to the router node over a real QUIC tunnel.
func (w *world) dialEndpoint(n *router.Node, id *certs.Identity) *client.Client {
	return w.dialEndpointFrom("127.0.0.1:0", n, id)
}

func (w *world) dialEndpointFrom(addr string, n *router.Node, id *certs.Identity) *client.Client {
	w.t.Helper()
	if id == nil {
		var err error
		if id, err = certs.NewIdentity(certs.KindServer, "endpoint"); err != nil {
			w.t.Fatal(err)
		}
	}
	member, err := w.dom.Member(id)
	if err != nil {
		w.t.Fatal(err)
	}
	conn, err := net.ListenPacket("udp", addr)
	if err != nil {
		w.t.Fatal(err)
	}
	ep, err := client.NewEndpoint(client.EndpointConfig{
		Identity: id, Member: member, Domain: w.dom.ID.Meta, Verifier: w.dom.Verifier, Conn: conn,
		Options: client.Options{RequestTimeout: time.Second},
	})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { _ = ep.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := ep.Attach(ctx, n.Addr(), n.Router.Name())
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { _ = c.Close() })
	return c
}

// published waits until the resolver holds a record for every name:
// routers publish after they answer the advertisement, and a lookup that
// comes first is negatively cached for a while.
func (w *world) published(names ...pdu.Name) {
	w.t.Helper()
	for _, n := range names {
		eventually(w.t, "location record for "+n.String(), func() bool {
			_, err := w.res.Lookup(context.Background(), n)
			return err == nil
		})
	}
}

// pingEventually pings until an echo reply comes from want.
func pingEventually(t *testing.T, c *client.Client, dst pdu.Name) client.Reply {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		rep, err := c.Ping(context.Background(), dst, 32, time.Second)
		if err == nil {
			return rep
		}
		if time.Now().After(deadline) {
			t.Fatalf("ping %s: %v", dst, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLineOfThreeRouters: R1 — R2 — R3 on loopback. R1 and R3 are edge
// routers behind their upstream R2 (no direct tunnels). A server at R3
// advertises a capsule; a client at R1 reaches it by name, traceroute shows
// the path; the server moves to R2 and traffic follows.
func TestLineOfThreeRouters(t *testing.T) {
	w := newWorld(t)
	no := false
	r2, rc2 := w.startNode("r2", router.Config{})
	edge := func(desc string) (*router.Node, *routertest.Router) {
		up := rc2.ID.Name
		return w.startNode(desc, router.Config{
			Peers:        []router.PeerConfig{{Name: up, Addr: r2.Addr()}},
			Upstream:     &up,
			DialOnDemand: &no,
		})
	}
	r1, _ := edge("r1")
	r3, _ := edge("r3")
	eventually(t, "edge routers attached to r2", func() bool { return len(r2.Router.Peers()) == 2 })

	serverID, _ := certs.NewIdentity(certs.KindServer, "capsule server")
	cap, _ := newCapsule("sensor log")
	ad, _ := cap.AdCert(serverID.Name, time.Hour)
	server := w.dialEndpoint(r3, serverID)
	if _, err := server.Advertise(context.Background(), server.Self(), client.CapsuleRoute(cap.Meta, ad)); err != nil {
		t.Fatal(err)
	}
	cl := w.dialEndpoint(r1, nil)
	advertise(t, cl)
	w.published(cap.Meta.Name(), cl.Name())

	rep := pingEventually(t, cl, cap.Meta.Name())
	if !rep.Reached || rep.From != cap.Meta.Name() {
		t.Fatalf("ping: %+v", rep)
	}
	// Data by name, and back.
	if _, err := cl.Send(cap.Meta.Name(), []byte("append 1")); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, server); string(m.Payload) != "append 1" || m.Src != cl.Name() {
		t.Fatalf("server got %+v", m)
	}

	hops, err := cl.Traceroute(context.Background(), cap.Meta.Name(), 8, time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []pdu.Name{r1.Router.Name(), r2.Router.Name(), r3.Router.Name(), cap.Meta.Name()}
	if len(hops) != len(want) {
		t.Fatalf("traceroute has %d hops, want %d: %+v", len(hops), len(want), hops)
	}
	for i, h := range hops {
		if h.Timeout || h.Reply.From != want[i] {
			t.Fatalf("hop %d: %+v, want %s", i, h, want[i])
		}
	}
	if !hops[3].Reply.Reached {
		t.Fatal("last hop is not the destination")
	}

	// The server moves from r3 to r2.
	_ = server.Close()
	eventually(t, "r3 dropped the route", func() bool { return r3.Router.FIB().Lookup(cap.Meta.Name()) == nil })
	server2 := w.dialEndpoint(r2, serverID)
	if _, err := server2.Advertise(context.Background(), server2.Self(), client.CapsuleRoute(cap.Meta, ad)); err != nil {
		t.Fatal(err)
	}
	rep = pingEventually(t, cl, cap.Meta.Name())
	if rep.From != cap.Meta.Name() {
		t.Fatalf("after move: %+v", rep)
	}
	hops, err = cl.Traceroute(context.Background(), cap.Meta.Name(), 8, time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(hops) != 3 || hops[1].Reply.From != r2.Router.Name() || !hops[2].Reply.Reached {
		t.Fatalf("traceroute after move: %+v", hops)
	}
}

// TestOnDemandTunnel: two routers with no configured peering; a FIB miss
// at A asks the resolver, whose signed record carries B's address, and A
// opens a tunnel to B on demand.
func TestOnDemandTunnel(t *testing.T) {
	w := newWorld(t)
	a, _ := w.startNode("a", router.Config{})
	b, _ := w.startNode("b", router.Config{})
	server := w.dialEndpoint(b, nil)
	advertise(t, server)
	cl := w.dialEndpoint(a, nil)
	advertise(t, cl)
	w.published(server.Name(), cl.Name())
	rep := pingEventually(t, cl, server.Name())
	if rep.From != server.Name() {
		t.Fatalf("ping: %+v", rep)
	}
	peers := a.Router.Peers()
	if len(peers) != 1 || peers[0].Name != b.Router.Name() {
		t.Fatalf("a's peers: %+v", peers)
	}
	// Routers publish their own names too: b answers a ping by name.
	if rep := pingEventually(t, cl, b.Router.Name()); rep.From != b.Router.Name() {
		t.Fatalf("ping router b: %+v", rep)
	}
	// A name nobody holds: NO_ROUTE after one resolver lookup, then NO_ROUTE
	// again from the negative cache, without asking the resolver again.
	notFound := func() float64 {
		return metric(t, &testRouter{Router: a.Router}, "gdp_router_resolver_lookups_total", "result", "not_found")
	}
	for i := 1; i <= 2; i++ {
		var nak *client.NAKError
		if _, err := cl.Ping(context.Background(), pdu.Name{42}, 8, time.Second); !errors.As(err, &nak) || nak.Code != pdu.CodeNoRoute {
			t.Fatalf("ping unknown (%d): %v", i, err)
		}
		if got := notFound(); got != 1 {
			t.Fatalf("after ping %d of an unknown name the resolver was asked %v times, want 1 (the second is the negative cache's)", i, got)
		}
	}
}

// TestIPv6Underlay: the same on-demand path over ::1.
func TestIPv6Underlay(t *testing.T) {
	if c, err := net.ListenPacket("udp", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		_ = c.Close()
	}
	w := newWorld(t)
	a, _ := w.startNodeAt("[::1]:0", "a6", router.Config{})
	b, _ := w.startNodeAt("[::1]:0", "b6", router.Config{})
	server := w.dialEndpointFrom("[::1]:0", b, nil)
	advertise(t, server)
	cl := w.dialEndpointFrom("[::1]:0", a, nil)
	advertise(t, cl)
	w.published(server.Name(), cl.Name())
	if rep := pingEventually(t, cl, server.Name()); rep.From != server.Name() {
		t.Fatalf("ping: %+v", rep)
	}
	if peers := a.Router.Peers(); len(peers) != 1 || peers[0].Addr[0] != '[' {
		t.Fatalf("a's peers: %+v (want an IPv6 address)", peers)
	}
}

// TestPeerRedial: an edge router keeps its tunnel to a configured peer up;
// when the peer restarts, the edge dials it again and traffic flows.
func TestPeerRedial(t *testing.T) {
	w := newWorld(t)
	hub, hubCreds := w.startNode("hub", router.Config{})
	addr := hub.Addr()
	up := hubCreds.ID.Name
	edge, _ := w.startNode("edge", router.Config{Peers: []router.PeerConfig{{Name: up, Addr: addr}}, Upstream: &up})
	eventually(t, "edge connected", func() bool { return len(edge.Router.Peers()) == 1 })
	_ = hub.Close()
	eventually(t, "edge noticed", func() bool { return len(edge.Router.Peers()) == 0 })
	hub2 := w.startNodeWith(addr, "hub again", hubCreds, router.Config{})
	deadline := time.Now().Add(10 * time.Second)
	for len(edge.Router.Peers()) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("edge never redialled the restarted hub")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cl := w.dialEndpoint(edge, nil)
	advertise(t, cl)
	if rep := pingEventually(t, cl, hub2.Router.Name()); rep.From != hub2.Router.Name() {
		t.Fatalf("ping hub through the new tunnel: %+v", rep)
	}
}
