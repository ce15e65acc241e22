// Package capsuledtest starts a small capsule world in a test: a trust
// domain with a static resolver, routers on loopback QUIC, capsule servers
// and capsule clients attached to them over real tunnels. It is for the
// packages built on capsules (caapi/kv, caapi/seal, the gateway), which need
// real servers that verify what they store.
package capsuledtest

import (
	"context"
	"net"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/capsuled"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
	"github.com/gdpnet/gdpnet/router/routertest"
)

// World is one trust domain on loopback. Everything it starts stops in
// t.Cleanup.
type World struct {
	t   testing.TB
	Dom *routertest.Domain
	res *resolver.Static
	Log *zap.Logger
}

// New makes an empty world.
func New(t testing.TB) *World {
	t.Helper()
	dom, err := routertest.NewDomain("capsuledtest domain")
	if err != nil {
		t.Fatal(err)
	}
	res := resolver.NewStatic(&resolver.Verifier{Certs: dom.Verifier})
	t.Cleanup(func() { _ = res.Close() })
	return &World{t: t, Dom: dom, res: res, Log: zap.NewNop()}
}

// Router starts a router on a loopback UDP socket, peered with peers.
func (w *World) Router(desc string, peers ...*router.Node) *router.Node {
	w.t.Helper()
	rc, err := w.Dom.NewRouter(desc)
	if err != nil {
		w.t.Fatal(err)
	}
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		w.t.Fatal(err)
	}
	var cfg router.Config
	for _, p := range peers {
		cfg.Peers = append(cfg.Peers, router.PeerConfig{Name: p.Router.Name(), Addr: p.Addr()})
	}
	n, err := router.StartNode(cfg, router.Deps{Identity: rc.ID, Member: rc.Member, Domain: rc.Domain,
		Verifier: w.Dom.Verifier, Resolver: w.res, Logger: w.Log.Named(desc)}, conn, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { _ = n.Close() })
	return n
}

// attach connects identity id to router n over a QUIC tunnel.
func (w *World) attach(n *router.Node, id *certs.Identity) (*client.Client, *client.Endpoint) {
	w.t.Helper()
	member, err := w.Dom.Member(id)
	if err != nil {
		w.t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		w.t.Fatal(err)
	}
	ep, err := client.NewEndpoint(client.EndpointConfig{Identity: id, Member: member, Domain: w.Dom.ID.Meta,
		Verifier: w.Dom.Verifier, Conn: pc, Options: client.Options{RequestTimeout: time.Second, InboxSize: 8192}})
	if err != nil {
		w.t.Fatal(err)
	}
	// A tunnel handshake is bounded by tunnel.Config.HandshakeTimeout
	// (5 s); a router slowed by a loaded machine (-race beside other
	// tests) can take longer, so the dial is tried again, within 30 s.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var c *client.Client
	for {
		c, err = ep.AttachAny(ctx, []client.RouterAddr{{Addr: n.Addr(), Name: n.Router.Name()}}, client.AttachOptions{})
		if err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		_ = ep.Close()
		w.t.Fatal(err)
	}
	return c, ep
}

// Server is a running capsule server.
type Server struct {
	ID  *certs.Identity
	Dir string
	w   *World
	n   *router.Node
	srv *capsuled.Server
	ep  *client.Endpoint
}

// Server starts a capsule server attached to n, storing under a fresh
// temporary directory.
func (w *World) Server(n *router.Node, desc string) *Server {
	w.t.Helper()
	id, err := certs.NewIdentity(certs.KindServer, desc)
	if err != nil {
		w.t.Fatal(err)
	}
	s := &Server{ID: id, Dir: w.t.TempDir(), w: w, n: n}
	s.Start()
	w.t.Cleanup(s.Stop)
	return s
}

// Start (re)starts the server over its directory.
func (s *Server) Start() {
	s.w.t.Helper()
	c, ep := s.w.attach(s.n, s.ID)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conf := capsuled.Config{Dir: s.Dir, SyncInterval: 300 * time.Millisecond, PeerTimeout: time.Second}
	srv, err := capsuled.New(ctx, conf, capsuled.Deps{Identity: s.ID, Client: c, Logger: s.w.Log.Named(s.ID.Meta.Description)})
	if err != nil {
		_ = ep.Close()
		s.w.t.Fatal(err)
	}
	s.srv, s.ep = srv, ep
}

// Stop stops the server (its directory stays).
func (s *Server) Stop() {
	if s.srv != nil {
		_ = s.srv.Close()
		_ = s.ep.Close()
		s.srv = nil
	}
}

// Name is the server's name.
func (s *Server) Name() pdu.Name { return s.ID.Name }

// User attaches a client identity to n and returns its capsule client.
func (w *World) User(n *router.Node, desc string) *client.CapsuleClient {
	w.t.Helper()
	id, err := certs.NewIdentity(certs.KindClient, desc)
	if err != nil {
		w.t.Fatal(err)
	}
	return w.UserAs(n, id)
}

// UserAs attaches identity id to n and returns its capsule client.
func (w *World) UserAs(n *router.Node, id *certs.Identity) *client.CapsuleClient {
	w.t.Helper()
	c, ep := w.attach(n, id)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Advertise(ctx, c.Self()); err != nil {
		w.t.Fatal(err)
	}
	cc := client.NewCapsuleClient(c, client.CapsuleOptions{Timeout: time.Second})
	w.t.Cleanup(func() {
		_ = cc.Close()
		_ = c.Close()
		_ = ep.Close()
	})
	return cc
}

// Capsule is a capsule with its owner and writer identities.
type Capsule struct {
	Owner  *certs.Identity
	Writer *certs.Identity
	Meta   *certs.Metadata
}

// Name is the capsule's name.
func (c *Capsule) Name() pdu.Name { return c.Meta.Name() }

// NewCapsule makes a capsule's identities and metadata (not placed yet).
func NewCapsule(t testing.TB, desc string) *Capsule {
	t.Helper()
	owner, err := certs.NewIdentity(certs.KindClient, desc+" owner")
	if err != nil {
		t.Fatal(err)
	}
	writer, err := certs.NewIdentity(certs.KindClient, desc+" writer")
	if err != nil {
		t.Fatal(err)
	}
	meta, err := certs.NewCapsule(owner.Key, writer.Public(), desc)
	if err != nil {
		t.Fatal(err)
	}
	return &Capsule{Owner: owner, Writer: writer, Meta: meta}
}

// Create places c on the servers with durability w, through cc.
func (c *Capsule) Create(t testing.TB, cc *client.CapsuleClient, w int, servers ...*Server) {
	t.Helper()
	var names []certs.Name
	for _, s := range servers {
		names = append(names, s.ID.Name)
	}
	places, err := client.PlaceCapsule(c.Owner, c.Meta, names, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cc.Create(ctx, c.Owner, c.Meta, w, places); err != nil {
		t.Fatal(err)
	}
}

// Server is the running capsule server (nil while stopped).
func (s *Server) Server() *capsuled.Server { return s.srv }
