package capsuled_test

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/gdpnet/gdpnet/capsuled"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
	"github.com/gdpnet/gdpnet/router/routertest"
)

// world is a trust domain with a static resolver: routers on loopback
// QUIC, capsule servers and clients attached to them over real tunnels.
type world struct {
	t   testing.TB
	dom *routertest.Domain
	res *resolver.Static
	log *zap.Logger
	// rres, when set, is the resolver routers started from now on use
	// (a wrapper of res that a test slows or breaks).
	rres resolver.Resolver
	// countDrops turns tunnel.count_datagram_drops on for the tunnels
	// started from now on (costly: only the flood tests, which log them).
	countDrops bool
}

func newWorld(t testing.TB) *world {
	t.Helper()
	dom, err := routertest.NewDomain("capsuled test domain")
	if err != nil {
		t.Fatal(err)
	}
	res := resolver.NewStatic(&resolver.Verifier{Certs: dom.Verifier})
	t.Cleanup(func() { _ = res.Close() })
	log := zap.NewNop()
	if tt, ok := t.(*testing.T); ok && testing.Verbose() {
		log = zaptest.NewLogger(tt, zaptest.Level(zap.WarnLevel))
	}
	return &world{t: t, dom: dom, res: res, log: log}
}

// router starts a router node on a loopback UDP socket, peered with peers.
func (w *world) router(desc string, peers ...*router.Node) *router.Node {
	w.t.Helper()
	return w.routerConf(desc, router.Config{}, peers...)
}

// routerConf is router with a config of its own (peers are added to it).
func (w *world) routerConf(desc string, cfg router.Config, peers ...*router.Node) *router.Node {
	w.t.Helper()
	rc, err := w.dom.NewRouter(desc)
	if err != nil {
		w.t.Fatal(err)
	}
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		w.t.Fatal(err)
	}
	for _, p := range peers {
		cfg.Peers = append(cfg.Peers, router.PeerConfig{Name: p.Router.Name(), Addr: p.Addr()})
	}
	cfg.Tunnel.CountDatagramDrops = w.countDrops
	var res resolver.Resolver = w.res
	if w.rres != nil {
		res = w.rres
	}
	n, err := router.StartNode(cfg, router.Deps{Identity: rc.ID, Member: rc.Member, Domain: rc.Domain,
		Verifier: w.dom.Verifier, Resolver: res, Logger: w.log.Named(desc)}, conn, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { _ = n.Close() })
	return n
}

// gateConn is a UDP socket that can be cut off: while down, every packet
// in either direction is lost (a network partition, not a disconnect).
type gateConn struct {
	net.PacketConn
	down atomic.Bool
}

// SetReadBuffer and SetWriteBuffer pass through to the UDP socket, so
// quic-go sizes its buffers as on a real node (and does not log that it
// cannot).
func (g *gateConn) SetReadBuffer(n int) error {
	if c, ok := g.PacketConn.(interface{ SetReadBuffer(int) error }); ok {
		return c.SetReadBuffer(n)
	}
	return nil
}

func (g *gateConn) SetWriteBuffer(n int) error {
	if c, ok := g.PacketConn.(interface{ SetWriteBuffer(int) error }); ok {
		return c.SetWriteBuffer(n)
	}
	return nil
}

func (g *gateConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if g.down.Load() {
		return len(p), nil
	}
	return g.PacketConn.WriteTo(p, addr)
}

func (g *gateConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := g.PacketConn.ReadFrom(p)
		if err != nil || !g.down.Load() {
			return n, addr, err
		}
	}
}

// attach connects identity id to router n over a QUIC tunnel and returns
// the client, its endpoint (close it to disconnect) and the socket gate.
func (w *world) attach(n *router.Node, id *certs.Identity, inbox int) (*client.Client, *client.Endpoint, *gateConn) {
	w.t.Helper()
	return w.attachDom(n, w.dom, id, inbox)
}

// attachDom is attach for id, a member of dom (any domain the world's
// routers trust).
func (w *world) attachDom(n *router.Node, dom *routertest.Domain, id *certs.Identity, inbox int) (*client.Client, *client.Endpoint, *gateConn) {
	w.t.Helper()
	member, err := dom.Member(id)
	if err != nil {
		w.t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		w.t.Fatal(err)
	}
	gate := &gateConn{PacketConn: pc}
	ep, err := client.NewEndpoint(client.EndpointConfig{Identity: id, Member: member, Domain: dom.ID.Meta,
		Verifier: w.dom.Verifier, Conn: gate, Options: client.Options{RequestTimeout: time.Second, InboxSize: inbox},
		CountDatagramDrops: w.countDrops})
	if err != nil {
		w.t.Fatal(err)
	}
	// A tunnel handshake is bounded by tunnel.Config.HandshakeTimeout
	// (5 s); a router slowed by a loaded machine (-race beside other
	// tests) can take longer, so the dial is tried again, within 30 s.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// As gdp capsuled does: a lost tunnel (a partition longer than the
	// idle timeout) is redialled and the names advertised again.
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
	return c, ep, gate
}

// replica is a capsule server under test.
type replica struct {
	id   *certs.Identity
	dir  string
	conf capsuled.Config // starting point of the server's config (Dir and the sync timings are set)
	srv  *capsuled.Server
	ep   *client.Endpoint
	gate *gateConn
	mod  func(*capsuled.Config) // test-specific settings, applied at every start
	reg  *prometheus.Registry   // the server's metrics
}

func (w *world) newReplica(n *router.Node, desc string) *replica {
	w.t.Helper()
	return w.newReplicaConf(n, desc, capsuled.Config{})
}

// newReplicaConf is newReplica with a config (policy, limits) of its own.
func (w *world) newReplicaConf(n *router.Node, desc string, conf capsuled.Config) *replica {
	w.t.Helper()
	id, err := certs.NewIdentity(certs.KindServer, desc)
	if err != nil {
		w.t.Fatal(err)
	}
	r := &replica{id: id, dir: w.t.TempDir(), conf: conf}
	w.start(n, r)
	w.t.Cleanup(func() { r.stop() })
	return r
}

// start attaches r to n and runs its server over r.dir.
func (w *world) start(n *router.Node, r *replica) {
	w.t.Helper()
	c, ep, gate := w.attach(n, r.id, 8192)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conf := r.conf
	conf.Dir = r.dir
	if conf.SyncInterval == 0 {
		conf.SyncInterval = 300 * time.Millisecond
	}
	if conf.PeerTimeout == 0 {
		conf.PeerTimeout = time.Second
	}
	if r.mod != nil {
		r.mod(&conf)
	}
	r.reg = prometheus.NewRegistry()
	srv, err := capsuled.New(ctx, conf, capsuled.Deps{Identity: r.id, Client: c, Logger: w.log.Named(r.id.Meta.Description), Registry: r.reg})
	if err != nil {
		_ = ep.Close()
		w.t.Fatal(err)
	}
	r.srv, r.ep, r.gate = srv, ep, gate
}

func (r *replica) stop() {
	if r.srv != nil {
		_ = r.srv.Close()
		_ = r.ep.Close()
		r.srv = nil
	}
}

// user is a capsule client attached to a router.
func (w *world) user(n *router.Node, desc string) *client.CapsuleClient {
	w.t.Helper()
	return w.userWith(n, desc, client.CapsuleOptions{Timeout: time.Second})
}

// reader is a user that reads the end-to-end tests' tens of thousands of
// records back: under -race on a loaded machine a server (a child process,
// itself under -race) can take longer than three 1 s attempts for one page,
// so it tries slow times as often. Every record is still read and checked.
func (w *world) reader(n *router.Node, desc string) *client.CapsuleClient {
	w.t.Helper()
	return w.userWith(n, desc, client.CapsuleOptions{Timeout: time.Second, Attempts: 3 * slow})
}

func (w *world) userWith(n *router.Node, desc string, opts client.CapsuleOptions) *client.CapsuleClient {
	w.t.Helper()
	id, err := certs.NewIdentity(certs.KindClient, desc)
	if err != nil {
		w.t.Fatal(err)
	}
	c, ep, _ := w.attach(n, id, 8192)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Advertise(ctx, c.Self()); err != nil {
		w.t.Fatal(err)
	}
	cc := client.NewCapsuleClient(c, opts)
	w.t.Cleanup(func() {
		_ = cc.Close()
		_ = c.Close()
		_ = ep.Close()
	})
	return cc
}

// testCapsule is a capsule with its owner and writer identities.
type testCapsule struct {
	owner  *certs.Identity
	writer *certs.Identity
	meta   *certs.Metadata
}

func newTestCapsule(t testing.TB, desc string) *testCapsule {
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
	return &testCapsule{owner: owner, writer: writer, meta: meta}
}

// writes opens a writer of tc on cc to the replicas rs, w of them to
// acknowledge (closed when the test ends), and returns write(n): n records
// appended ("r0", "r1", …) and flushed, failing t unless w acknowledged.
func (tc *testCapsule) writes(ctx context.Context, t testing.TB, cc *client.CapsuleClient, w int, rs ...*replica) func(n int) {
	t.Helper()
	var names []pdu.Name
	for _, r := range rs {
		names = append(names, r.id.Name)
	}
	wr, err := cc.NewWriter(ctx, tc.meta.Name(), tc.writer.Key, client.WriterOptions{Cadence: -1, Replicas: names, W: w})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wr.Close(context.Background()) })
	return func(n int) {
		t.Helper()
		for i := range n {
			if _, err := wr.Append(ctx, fmt.Appendf(nil, "r%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		if d, err := wr.Flush(ctx); err != nil || !d.Met {
			t.Fatalf("write: %v %v", d, err)
		}
	}
}

// create places tc on the replicas with durability w.
func (tc *testCapsule) create(t testing.TB, cc *client.CapsuleClient, w int, rs ...*replica) {
	t.Helper()
	var servers []certs.Name
	for _, r := range rs {
		servers = append(servers, r.id.Name)
	}
	places, err := client.PlaceCapsule(tc.owner, tc.meta, servers, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cc.Create(ctx, tc.owner, tc.meta, w, places); err != nil {
		t.Fatal(err)
	}
}

func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metric returns the value of counter or gauge name with the given label
// value (empty: the unlabelled one) in r's registry; 0 when absent.
func (r *replica) metric(name, label string) float64 {
	return gathered(r.reg, name, label)
}

// metricLabels is the counter or gauge name whose labels, in their
// order, have the values given (the first ones: more are not checked).
func (r *replica) metricLabels(name string, values ...string) float64 {
	mfs, err := r.reg.Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			ls := m.GetLabel()
			if len(ls) < len(values) {
				continue
			}
			for i, v := range values {
				if ls[i].GetValue() != v {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// gathered is the counter or gauge name (with its first label equal to
// label, unless label is empty) in g; -1 when g cannot be gathered.
func gathered(g prometheus.Gatherer, name, label string) float64 {
	mfs, err := g.Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && (len(m.GetLabel()) == 0 || m.GetLabel()[0].GetValue() != label) {
				continue
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}
