package client

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
	"github.com/gdpnet/gdpnet/router/routertest"
)

// quicWorld is two routers on loopback UDP with real QUIC tunnels and a
// static resolver: a and b are not configured as peers, so a tunnel
// between them opens on demand when a PDU for a name behind b reaches a.
type quicWorld struct {
	tb   testing.TB
	dom  *routertest.Domain
	res  *resolver.Static
	a, b *router.Node
	raw  bool // every tunnel raw GDP-in-UDP
}

func newQUICWorld(tb testing.TB) *quicWorld { return newQUICWorldRaw(tb, false) }

// newQUICWorldRaw: with raw set, every tunnel is a raw GDP-in-UDP link
// (PROTOCOL.md §4.4): a keeps one to b, and endpoints attach with a raw
// socket.
func newQUICWorldRaw(tb testing.TB, raw bool) *quicWorld {
	tb.Helper()
	dom, err := routertest.NewDomain("quic test")
	if err != nil {
		tb.Fatal(err)
	}
	res := resolver.NewStatic(&resolver.Verifier{Certs: dom.Verifier})
	tb.Cleanup(func() { _ = res.Close() })
	w := &quicWorld{tb: tb, dom: dom, res: res, raw: raw}
	if !raw {
		w.a = w.router("a", router.Config{}, false)
		w.b = w.router("b", router.Config{}, false)
		return w
	}
	w.b = w.router("b", router.Config{}, true)
	w.a = w.router("a", router.Config{Peers: []router.PeerConfig{{Name: w.b.Router.Name(), Addr: w.b.Addr(), Raw: true}}}, true)
	deadline := time.Now().Add(20 * time.Second)
	for len(w.a.Router.Peers()) == 0 {
		if time.Now().After(deadline) {
			tb.Fatal("a never linked to b")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return w
}

func (w *quicWorld) router(desc string, cfg router.Config, raw bool) *router.Node {
	w.tb.Helper()
	rc, err := w.dom.NewRouter(desc)
	if err != nil {
		w.tb.Fatal(err)
	}
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		w.tb.Fatal(err)
	}
	var rawConn net.PacketConn
	if raw {
		if rawConn, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			w.tb.Fatal(err)
		}
	}
	cfg.Admin = "off"
	n, err := router.StartNode(cfg, router.Deps{
		Identity: rc.ID, Member: rc.Member, Domain: rc.Domain, Verifier: w.dom.Verifier, Resolver: w.res,
	}, conn, rawConn)
	if err != nil {
		w.tb.Fatal(err)
	}
	w.tb.Cleanup(func() { _ = n.Close() })
	return n
}

// endpoint attaches a new endpoint identity to n over a real tunnel and
// advertises its name.
func (w *quicWorld) endpoint(n *router.Node, desc string) (*Client, *Endpoint) {
	w.tb.Helper()
	var raw net.PacketConn
	if w.raw {
		var err error
		if raw, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			w.tb.Fatal(err)
		}
	}
	id, err := certs.NewIdentity(certs.KindClient, desc)
	if err != nil {
		w.tb.Fatal(err)
	}
	member, err := w.dom.Member(id)
	if err != nil {
		w.tb.Fatal(err)
	}
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		w.tb.Fatal(err)
	}
	ep, err := NewEndpoint(EndpointConfig{Identity: id, Member: member, Domain: w.dom.ID.Meta, Verifier: w.dom.Verifier,
		Conn: conn, Raw: raw, Options: Options{RequestTimeout: time.Second}})
	if err != nil {
		w.tb.Fatal(err)
	}
	w.tb.Cleanup(func() { _ = ep.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := ep.Attach(ctx, n.Addr(), n.Router.Name())
	if err != nil {
		w.tb.Fatal(err)
	}
	w.tb.Cleanup(func() { _ = c.Close() })
	if _, err := c.Advertise(ctx, c.Self()); err != nil {
		w.tb.Fatal(err)
	}
	return c, ep
}

// reach waits until from's pings reach to by name (published, tunnel
// between the routers up).
func (w *quicWorld) reach(from *Client, to pdu.Name) {
	w.tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		rep, err := from.Ping(context.Background(), to, 32, 500*time.Millisecond)
		if err == nil && rep.Reached && rep.From == to {
			return
		}
		if time.Now().After(deadline) {
			w.tb.Fatalf("%s never reached %s: %v", from.Name(), to, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
