package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/gdpnet/gdpnet/capsuled"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/gateway"
	"github.com/gdpnet/gdpnet/internal/config"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
	"github.com/gdpnet/gdpnet/router/routertest"
)

// world is a trust domain with a static resolver: routers on loopback
// QUIC, capsule servers and a gateway attached to them over real tunnels.
type world struct {
	t   testing.TB
	dom *routertest.Domain
	res *resolver.Static
	log *zap.Logger
	// routers are the routers started, in order.
	routers []*node
	// rtcertLife is the gateways' RtCert lifetime (0: the default, 1h).
	rtcertLife time.Duration
}

func newWorld(t testing.TB) *world {
	t.Helper()
	dom, err := routertest.NewDomain("gateway test domain")
	if err != nil {
		t.Fatal(err)
	}
	res := resolver.NewStatic(&resolver.Verifier{Certs: dom.Verifier})
	t.Cleanup(func() { _ = res.Close() })
	log := zap.NewNop()
	if tt, ok := t.(*testing.T); ok && testing.Verbose() {
		log = zaptest.NewLogger(tt, zaptest.Level(zap.InfoLevel))
	}
	return &world{t: t, dom: dom, res: res, log: log}
}

// fastTunnel notices a silent peer within 1.5 s, as a gateway's uplink
// and its edge routers are configured to (deploy/gateway.yaml).
var fastTunnel = router.TunnelConfig{KeepAlive: config.Duration(300 * time.Millisecond), IdleTimeout: config.Duration(1500 * time.Millisecond)}

// gateConn is a UDP socket that can be cut off: while down, every packet
// in either direction is lost — a router killed with SIGKILL, as far as
// its peers can tell.
type gateConn struct {
	net.PacketConn
	down atomic.Bool
}

// SetReadBuffer and SetWriteBuffer pass through to the UDP socket, so
// quic-go sizes its buffers as on a real node.
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

// node is a router under test; kill cuts it off silently and closes it.
type node struct {
	*router.Node
	gate *gateConn
}

func (n *node) kill() {
	n.gate.down.Store(true)
	_ = n.Node.Close()
}

// router starts a router on a loopback UDP socket, peered with peers.
func (w *world) router(desc string, peers ...*node) *node {
	w.t.Helper()
	rc, err := w.dom.NewRouter(desc)
	if err != nil {
		w.t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		w.t.Fatal(err)
	}
	gate := &gateConn{PacketConn: pc}
	cfg := router.Config{Tunnel: fastTunnel}
	for _, p := range peers {
		cfg.Peers = append(cfg.Peers, router.PeerConfig{Name: p.Router.Name(), Addr: p.Addr()})
	}
	n, err := router.StartNode(cfg, router.Deps{Identity: rc.ID, Member: rc.Member, Domain: rc.Domain,
		Verifier: w.dom.Verifier, Resolver: w.res, Logger: w.log.Named(desc)}, gate, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { _ = n.Close() })
	nd := &node{Node: n, gate: gate}
	w.routers = append(w.routers, nd)
	return nd
}

// replica starts a capsule server attached to n.
func (w *world) replica(n *node, desc string) *certs.Identity {
	w.t.Helper()
	return w.replicaConf(n, desc, capsuled.Config{SyncInterval: 300 * time.Millisecond, PeerTimeout: time.Second})
}

// replicaConf is replica with a config of its own (Dir is set).
func (w *world) replicaConf(n *node, desc string, conf capsuled.Config) *certs.Identity {
	w.t.Helper()
	id, err := certs.NewIdentity(certs.KindServer, desc)
	if err != nil {
		w.t.Fatal(err)
	}
	member, err := w.dom.Member(id)
	if err != nil {
		w.t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		w.t.Fatal(err)
	}
	ep, err := client.NewEndpoint(client.EndpointConfig{Identity: id, Member: member, Domain: w.dom.ID.Meta,
		Verifier: w.dom.Verifier, Conn: pc, KeepAlive: fastTunnel.KeepAlive.Std(), IdleTimeout: fastTunnel.IdleTimeout.Std(),
		Options: client.Options{RequestTimeout: time.Second, InboxSize: 8192}})
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
	conf.Dir = w.t.TempDir()
	srv, err := capsuled.New(ctx, conf,
		capsuled.Deps{Identity: id, Client: c, Logger: w.log.Named(desc), Registry: prometheus.NewRegistry()})
	if err != nil {
		_ = ep.Close()
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { _ = srv.Close(); _ = ep.Close() })
	return id
}

// gw is a gateway under test: its uplink, server and an HTTP client for
// its TCP handler (with the token).
type gw struct {
	t      testing.TB
	up     *gateway.Uplink
	srv    *gateway.Server
	ks     *certs.Keystore
	reg    *prometheus.Registry
	http   *httptest.Server
	token  string
	client *http.Client
	// servers are the capsule servers' names (setup's two replicas).
	servers []string
}

// gateway starts a gateway attached to the first of routers that
// answers, with an owner key "alice" in its keystore.
func (w *world) gateway(cfg gateway.Config, routers ...*node) *gw {
	w.t.Helper()
	ks, err := certs.OpenKeystore(w.t.TempDir())
	if err != nil {
		w.t.Fatal(err)
	}
	alice, _ := certs.NewIdentity(certs.KindClient, "alice")
	if err := ks.Save("alice", alice); err != nil {
		w.t.Fatal(err)
	}
	return w.gatewayOn(cfg, ks, nil, routers...)
}

// gatewayOn starts a gateway over keystore ks (a restarted gateway is
// another one on the same keystore) taking lock before it writes a
// capsule (nil: none).
func (w *world) gatewayOn(cfg gateway.Config, ks *certs.Keystore, lock func(pdu.Name) (func(), error), routers ...*node) *gw {
	w.t.Helper()
	id, err := certs.NewIdentity(certs.KindClient, "gateway")
	if err != nil {
		w.t.Fatal(err)
	}
	member, err := w.dom.Member(id)
	if err != nil {
		w.t.Fatal(err)
	}
	var list []client.RouterAddr
	for _, n := range routers {
		list = append(list, client.RouterAddr{Addr: n.Addr(), Name: n.Router.Name()})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	up, err := gateway.DialUplink(ctx, gateway.UplinkConfig{Identity: id, Member: member, Domain: w.dom.ID.Meta,
		Verifier: w.dom.Verifier, Listen: "127.0.0.1:0", Routers: list, KeepAlive: fastTunnel.KeepAlive.Std(),
		IdleTimeout: fastTunnel.IdleTimeout.Std(), RequestTimeout: time.Second, RtCertLifetime: w.rtcertLife, Logger: w.log.Named("gateway")})
	if err != nil {
		w.t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	srv, err := gateway.New(cfg, gateway.Deps{Uplink: up, Keys: ks, Logger: w.log.Named("gateway"), Registry: reg, LockWriter: lock})
	if err != nil {
		w.t.Fatal(err)
	}
	g := &gw{t: w.t, up: up, srv: srv, ks: ks, reg: reg, token: "0123456789abcdef0123456789abcdef"}
	srv.SetToken([]byte(g.token))
	g.http = httptest.NewServer(srv.Handler(true))
	g.client = g.http.Client()
	w.t.Cleanup(func() {
		g.http.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Close(ctx)
		_ = up.Close()
	})
	return g
}

// do sends a request with the token and decodes a JSON answer into out
// (when not nil); it returns the status and the raw body.
func (g *gw) do(method, path, ctype string, body []byte, out any) (int, []byte) {
	g.t.Helper()
	req, err := http.NewRequest(method, g.http.URL+path, bytes.NewReader(body))
	if err != nil {
		g.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Authorization", "Bearer "+g.token)
	resp, err := g.client.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			g.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return resp.StatusCode, b
}

// metric returns counter/gauge name with the label value (empty: any
// labels, summed).
func (g *gw) metric(name, label string) float64 {
	mfs, err := g.reg.Gather()
	if err != nil {
		return -1
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && !strings.Contains(m.String(), `value:"`+label+`"`) {
				continue
			}
			if m.GetCounter() != nil {
				sum += m.GetCounter().GetValue()
			} else {
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
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

// user is a Go SDK capsule client attached to n (an application that does
// not go through the gateway).
func (w *world) user(n *node, desc string) *client.CapsuleClient {
	w.t.Helper()
	id, err := certs.NewIdentity(certs.KindClient, desc)
	if err != nil {
		w.t.Fatal(err)
	}
	member, err := w.dom.Member(id)
	if err != nil {
		w.t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		w.t.Fatal(err)
	}
	ep, err := client.NewEndpoint(client.EndpointConfig{Identity: id, Member: member, Domain: w.dom.ID.Meta,
		Verifier: w.dom.Verifier, Conn: pc, Options: client.Options{RequestTimeout: time.Second, InboxSize: 8192}})
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
	session, err := c.Session()
	if err == nil {
		_, err = c.Advertise(ctx, c.Self(), session)
	}
	if err != nil {
		w.t.Fatal(err)
	}
	cc := client.NewCapsuleClient(c, client.CapsuleOptions{Timeout: time.Second})
	w.t.Cleanup(func() { _ = cc.Close(); _ = c.Close(); _ = ep.Close() })
	return cc
}
