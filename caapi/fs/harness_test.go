package fs_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/capsuled"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
	"github.com/gdpnet/gdpnet/router/routertest"
)

// world is a trust domain with a static resolver: routers on loopback
// QUIC, capsule servers and clients attached to them over real tunnels
// (the same shape as capsuled's test harness).
type world struct {
	t   testing.TB
	dom *routertest.Domain
	res *resolver.Static
	log *zap.Logger
	// raw: routers link to each other, and endpoints attach, over raw
	// GDP-in-UDP tunnels (PROTOCOL.md §4.4) instead of QUIC streams.
	raw bool
}

func newWorld(t testing.TB) *world {
	t.Helper()
	dom, err := routertest.NewDomain("fs test domain")
	if err != nil {
		t.Fatal(err)
	}
	res := resolver.NewStatic(&resolver.Verifier{Certs: dom.Verifier})
	t.Cleanup(func() { _ = res.Close() })
	return &world{t: t, dom: dom, res: res, log: zap.NewNop()}
}

func (w *world) router(desc string, peers ...*router.Node) *router.Node {
	w.t.Helper()
	rc, err := w.dom.NewRouter(desc)
	if err != nil {
		w.t.Fatal(err)
	}
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		w.t.Fatal(err)
	}
	var cfg router.Config
	for _, p := range peers {
		cfg.Peers = append(cfg.Peers, router.PeerConfig{Name: p.Router.Name(), Addr: p.Addr(), Raw: w.raw})
	}
	var rawConn net.PacketConn
	if w.raw {
		if rawConn, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			w.t.Fatal(err)
		}
	}
	n, err := router.StartNode(cfg, router.Deps{Identity: rc.ID, Member: rc.Member, Domain: rc.Domain,
		Verifier: w.dom.Verifier, Resolver: w.res, Logger: w.log}, conn, rawConn)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { _ = n.Close() })
	return n
}

func (w *world) attach(n *router.Node, id *certs.Identity) (*client.Client, *client.Endpoint) {
	w.t.Helper()
	member, err := w.dom.Member(id)
	if err != nil {
		w.t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		w.t.Fatal(err)
	}
	var raw net.PacketConn
	if w.raw {
		if raw, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			w.t.Fatal(err)
		}
	}
	ep, err := client.NewEndpoint(client.EndpointConfig{Identity: id, Member: member, Domain: w.dom.ID.Meta,
		Verifier: w.dom.Verifier, Conn: pc, Raw: raw, Options: client.Options{RequestTimeout: time.Second, InboxSize: 8192}})
	if err != nil {
		w.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := ep.AttachAny(ctx, []client.RouterAddr{{Addr: n.Addr(), Name: n.Router.Name()}}, client.AttachOptions{})
	if err != nil {
		_ = ep.Close()
		w.t.Fatal(err)
	}
	return c, ep
}

// replica is a capsule server.
type replica struct {
	id  *certs.Identity
	dir string
	n   *router.Node
	srv *capsuled.Server
	ep  *client.Endpoint
	// bulk is capsuled.Config.BulkStreamsPerPeer (0: the default, -1: off).
	bulk int
}

func (w *world) replica(n *router.Node, desc string) *replica {
	w.t.Helper()
	id, err := certs.NewIdentity(certs.KindServer, desc)
	if err != nil {
		w.t.Fatal(err)
	}
	r := &replica{id: id, dir: w.t.TempDir(), n: n}
	w.start(r)
	w.t.Cleanup(r.stop)
	return r
}

func (w *world) start(r *replica) {
	w.t.Helper()
	c, ep := w.attach(r.n, r.id)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv, err := capsuled.New(ctx, capsuled.Config{Dir: r.dir, SyncInterval: 300 * time.Millisecond, PeerTimeout: time.Second, BulkStreamsPerPeer: r.bulk},
		capsuled.Deps{Identity: r.id, Client: c, Logger: w.log})
	if err != nil {
		_ = ep.Close()
		w.t.Fatal(err)
	}
	r.srv, r.ep = srv, ep
	// The replica's names (its own, its capsules') are in r.n's FIB once
	// New returns, their location records only once r.n's publisher has
	// run: a reader behind another router that looked the name up before
	// that would get NO_ROUTE (and cache it). A restarted replica is used
	// at once by the tests, so wait here.
	for deadline := time.Now().Add(10 * time.Second); r.n.Router.PublishPending() > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			w.t.Fatalf("replica %s: %d location records still unpublished after 10 s", r.id.Name, r.n.Router.PublishPending())
		}
	}
}

func (r *replica) stop() {
	if r.srv != nil {
		_ = r.srv.Close()
		_ = r.ep.Close()
		r.srv = nil
	}
}

// tamper flips the last byte (record data) of entry seqno of capsule c in
// r's store; r must be stopped.
func (r *replica) tamper(t testing.TB, c pdu.Name, seqno uint64) {
	t.Helper()
	db, err := pebble.Open(filepath.Join(r.dir, "store"), &pebble.Options{Logger: quiet{}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	k := make([]byte, 0, 41)
	k = append(k, 'r')
	k = append(k, c[:]...)
	for i := 7; i >= 0; i-- {
		k = append(k, byte(seqno>>(8*i)))
	}
	v, closer, err := db.Get(k)
	if err != nil {
		t.Fatalf("tamper entry %d: %v", seqno, err)
	}
	b := append([]byte(nil), v...)
	_ = closer.Close()
	b[len(b)-1] ^= 0x55
	if err := db.Set(k, b, pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

// user is a capsule client attached to n.
func (w *world) user(n *router.Node, desc string) *client.CapsuleClient {
	w.t.Helper()
	id, err := certs.NewIdentity(certs.KindClient, desc)
	if err != nil {
		w.t.Fatal(err)
	}
	c, ep := w.attach(n, id)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Advertise(ctx, c.Self()); err != nil {
		w.t.Fatal(err)
	}
	cc := client.NewCapsuleClient(c, client.CapsuleOptions{Timeout: 2 * time.Second})
	w.t.Cleanup(func() {
		_ = cc.Close()
		_ = c.Close()
		_ = ep.Close()
	})
	return cc
}

// newCapsule mints a capsule, places it on rs with durability wq and
// returns its name and writer key identity.
func newCapsule(t testing.TB, cc *client.CapsuleClient, wq int, rs ...*replica) (pdu.Name, *certs.Identity) {
	t.Helper()
	owner, err := certs.NewIdentity(certs.KindClient, "fs owner")
	if err != nil {
		t.Fatal(err)
	}
	writer, err := certs.NewIdentity(certs.KindClient, "fs writer")
	if err != nil {
		t.Fatal(err)
	}
	meta, err := certs.NewCapsule(owner.Key, writer.Public(), "files")
	if err != nil {
		t.Fatal(err)
	}
	var servers []certs.Name
	for _, r := range rs {
		servers = append(servers, r.id.Name)
	}
	places, err := client.PlaceCapsule(owner, meta, servers, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// CREATE answers once the replicas' routers have the capsule's
	// location record in the resolver (PROTOCOL.md §5.4): a client on
	// another router reaches it at once.
	if err := cc.Create(ctx, owner, meta, wq, places); err != nil {
		t.Fatal(err)
	}
	return meta.Name(), writer
}

// quiet is a pebble logger that says nothing.
type quiet struct{}

func (quiet) Infof(string, ...any)  {}
func (quiet) Errorf(string, ...any) {}
func (quiet) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
