package handoffd

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
	"github.com/gdpnet/gdpnet/router/routertest"
)

// world is two routers on loopback with real QUIC tunnels between them and
// a static resolver; cloudlet agents attach one to each.
type world struct {
	tb   testing.TB
	dom  *routertest.Domain
	res  *resolver.Static
	a, b *router.Node
}

func newWorld(tb testing.TB) *world {
	tb.Helper()
	dom, err := routertest.NewDomain("handoff test")
	if err != nil {
		tb.Fatal(err)
	}
	res := resolver.NewStatic(&resolver.Verifier{Certs: dom.Verifier})
	tb.Cleanup(func() { _ = res.Close() })
	w := &world{tb: tb, dom: dom, res: res}
	w.a, w.b = w.router("a"), w.router("b")
	return w
}

func (w *world) router(desc string) *router.Node {
	w.tb.Helper()
	rc, err := w.dom.NewRouter(desc)
	if err != nil {
		w.tb.Fatal(err)
	}
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		w.tb.Fatal(err)
	}
	n, err := router.StartNode(router.Config{Admin: "off"}, router.Deps{
		Identity: rc.ID, Member: rc.Member, Domain: rc.Domain, Verifier: w.dom.Verifier, Resolver: w.res,
	}, conn, nil)
	if err != nil {
		w.tb.Fatal(err)
	}
	w.tb.Cleanup(func() { _ = n.Close() })
	return n
}

// endpoint attaches a new agent identity to n and advertises its name.
func (w *world) endpoint(n *router.Node, desc string) *client.Client {
	w.tb.Helper()
	id, err := certs.NewIdentity(certs.KindClient, desc)
	if err != nil {
		w.tb.Fatal(err)
	}
	c, _ := w.endpointAs(n, id)
	return c
}

// endpointAs attaches identity id to n (again, after a crash) and
// advertises its name.
func (w *world) endpointAs(n *router.Node, id *certs.Identity) (*client.Client, *client.Endpoint) {
	w.tb.Helper()
	member, err := w.dom.Member(id)
	if err != nil {
		w.tb.Fatal(err)
	}
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		w.tb.Fatal(err)
	}
	ep, err := client.NewEndpoint(client.EndpointConfig{Identity: id, Member: member, Domain: w.dom.ID.Meta, Verifier: w.dom.Verifier,
		Conn: conn, Options: client.Options{RequestTimeout: time.Second}})
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

// reach waits until from's pings reach to by name.
func (w *world) reach(from *client.Client, to pdu.Name) {
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

// cloudlets: a source client behind router a, a destination agent behind
// router b serving handoffs over QUIC over names into dstDir.
type cloudlets struct {
	w      *world
	src    *client.Client
	dst    *client.Client
	dstID  *certs.Identity
	dstEP  *client.Endpoint
	agent  *Agent
	cancel context.CancelFunc
	done   chan error
	// prestart: the agent's PrestartVM (its destination QEMU started at
	// the hello); set before startAgent.
	prestart *QEMUConfig
}

func startCloudlets(t testing.TB, w *world, dstCache *BaseCache, dstDir string, onRecv func(context.Context, *Received) error) *cloudlets {
	t.Helper()
	return startCloudletsPrestart(t, w, dstCache, dstDir, onRecv, nil)
}

// startCloudletsPrestart is startCloudlets with the agent's PrestartVM.
func startCloudletsPrestart(t testing.TB, w *world, dstCache *BaseCache, dstDir string, onRecv func(context.Context, *Received) error, prestart *QEMUConfig) *cloudlets {
	t.Helper()
	id, err := certs.NewIdentity(certs.KindClient, "cloudlet B agent")
	if err != nil {
		t.Fatal(err)
	}
	cl := &cloudlets{w: w, src: w.endpoint(w.a, "cloudlet A agent"), dstID: id, prestart: prestart}
	cl.dst, cl.dstEP = w.endpointAs(w.b, id)
	w.reach(cl.src, cl.dst.Name())
	w.reach(cl.dst, cl.src.Name())
	cl.startAgent(t, dstCache, dstDir, onRecv)
	return cl
}

// crash takes the destination agent off the overlay at once, as a killed
// process would: its endpoint and tunnel close without a word to the peer.
func (cl *cloudlets) crash() {
	cl.dstEP.Close()
	cl.dst.Close()
	cl.stopAgent()
}

// restart brings the destination agent back under the same name.
func (cl *cloudlets) restart(t testing.TB, dstCache *BaseCache, dstDir string, onRecv func(context.Context, *Received) error) {
	t.Helper()
	cl.dst, cl.dstEP = cl.w.endpointAs(cl.w.b, cl.dstID)
	cl.w.reach(cl.src, cl.dst.Name())
	cl.startAgent(t, dstCache, dstDir, onRecv)
}

func (cl *cloudlets) startAgent(t testing.TB, dstCache *BaseCache, dstDir string, onRecv func(context.Context, *Received) error) {
	t.Helper()
	ln, err := client.ListenName(cl.dst, cl.dst.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cl.agent = &Agent{Cache: dstCache, Dir: dstDir, Logger: zaptest.NewLogger(t).Named("agent-b"), OnReceived: onRecv, PrestartVM: cl.prestart}
	cl.cancel, cl.done = cancel, make(chan error, 1)
	go func() { cl.done <- cl.agent.Serve(ctx, OverlayListener(ln)) }()
	t.Cleanup(cl.stopAgent)
}

func (cl *cloudlets) stopAgent() {
	if cl.cancel != nil {
		cl.cancel()
		<-cl.done
		cl.cancel = nil
	}
}

// TestPairHandoffOverOverlay: an image pair handed from cloudlet A to the
// agent on cloudlet B through two routers, QUIC over names; the image at B is
// the current image byte for byte.
func TestPairHandoffOverOverlay(t *testing.T) {
	e := newPairEnv(t, 1200, 100)
	w := newWorld(t)
	out := filepath.Join(e.dir, "out")
	cl := startCloudlets(t, w, e.dst, out, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := DialOverlay(ctx, cl.src, cl.dst.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Send(ctx, st, &Handoff{Images: []Image{{Name: "disk", Base: e.baseID, Path: e.curPath}}},
		SendConfig{Cache: e.src, Logger: zap.NewNop()})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	sameFile(t, e.curPath, filepath.Join(rep.Dest, "disk"))
	t.Logf("over the overlay: %d changed bytes, %d on the wire (ratio %.3f) in %.2fs", rep.ChangedBytes, rep.WireBytes, rep.Ratio, rep.TotalSec)
}

// TestStalledConnectionsDoNotBlockHandoffs: a member the agent does not
// accept handoffs from (not in senders) opens QUIC connections to the
// agent's name and never opens a stream on them. Another sender's handoff
// still goes through at once. Before, the agent waited up to 30 s for each
// accepted connection's first stream, one connection at a time, before it
// even looked at who the peer was: three stalled connections kept every
// handoff out for 90 s.
func TestStalledConnectionsDoNotBlockHandoffs(t *testing.T) {
	e := newPairEnv(t, 300, 20)
	w := newWorld(t)
	out := filepath.Join(e.dir, "out")
	cl := startCloudlets(t, w, e.dst, out, nil)
	cl.agent.Reload(AgentConfig{Senders: []string{cl.src.Name().String()}})
	intruder := w.endpoint(w.a, "intruder")
	w.reach(intruder, cl.dst.Name())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for range 3 {
		nc, err := client.DialName(ctx, intruder, cl.dst.Name(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.CloseWithError(0, "")
	}
	time.Sleep(100 * time.Millisecond) // the agent has taken the stalled connections
	hctx, hcancel := context.WithTimeout(ctx, 10*time.Second)
	defer hcancel()
	start := time.Now()
	st, err := DialOverlay(hctx, cl.src, cl.dst.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Send(hctx, st, &Handoff{Images: []Image{{Name: "disk", Base: e.baseID, Path: e.curPath}}},
		SendConfig{Cache: e.src, Logger: zap.NewNop()})
	st.Close()
	if err != nil {
		t.Fatalf("handoff while a member holds 3 stalled connections to the agent: %v after %s", err, time.Since(start).Round(time.Millisecond))
	}
	sameFile(t, e.curPath, filepath.Join(rep.Dest, "disk"))
	t.Logf("handoff done in %s beside 3 stalled connections", time.Since(start).Round(time.Millisecond))
}

// TestSendEndsWithContext: a sender whose agent accepts the connection and
// never answers returns when its context ends. Before, it waited for the
// agent's answer for as long as the connection stayed open.
func TestSendEndsWithContext(t *testing.T) {
	e := newPairEnv(t, 50, 5)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		time.Sleep(30 * time.Second) // reads nothing, answers nothing
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = Send(ctx, conn, &Handoff{Images: []Image{{Name: "disk", Base: e.baseID, Path: e.curPath}}},
		SendConfig{Cache: e.src, Logger: zap.NewNop()})
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) || took > 5*time.Second {
		t.Fatalf("send to a silent agent with a 500 ms context: %v after %s, want the deadline's error within 5 s", err, took)
	}
}
