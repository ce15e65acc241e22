package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/quic-go/quic-go"

	"github.com/gdpnet/gdpnet/capsuled"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
	"github.com/gdpnet/gdpnet/sim/linkem"
	"github.com/gdpnet/gdpnet/tunnel"
)

// Options says how to run an experiment.
type Options struct {
	// Out is the results directory (JSON, CSV, plots, pcaps); "" writes
	// nothing.
	Out string
	// Logger receives the nodes' logs (each named after its node); nil
	// logs nothing.
	Logger *zap.Logger
	// Progress gets one line per phase and event; nil: silent.
	Progress io.Writer
	// Plots writes PNG and SVG plots to Out (also when the topology's
	// measure.plots is set).
	Plots bool
	// Parallel bounds how many endpoints attach at once (default 32).
	Parallel int
	// IgnoreMemory starts a topology whose MemoryEstimate exceeds the
	// memory the machine has available; by default Start refuses it
	// (ErrTooLarge) before starting anything.
	IgnoreMemory bool
	// Mode is ModeInProcess (default) or ModeNetns; the topology's
	// mode: applies when this is empty (sim/netns.go).
	Mode string
	// Binary is the gdp executable the netns mode runs routers with
	// (default: this executable).
	Binary string
	// RouterEnv are extra environment variables ("K=V") for the netns
	// mode's router processes, after the simulator's own (QUIC_GO_DISABLE_GSO,
	// GOMAXPROCS=1, GOGC=200), which they override: a Go runtime setting
	// to measure, a GODEBUG.
	RouterEnv []string
	// RouterTimerSlack is the netns mode's router processes' timer slack
	// (prctl PR_SET_TIMERSLACK, inherited by every thread of the
	// process): how late the kernel may wake a sleeping thread to batch
	// wakeups. 0: NetnsTimerSlack (the simulator's setting, not a router
	// default); negative: the kernel's default (50µs).
	RouterTimerSlack time.Duration
	// DHTJoin is how the in-process kad-dht nodes (resolver: dht) get
	// their routing tables: DHTJoinPrewarm (default: filled from the
	// simulator's knowledge, no dial) or DHTJoinDial (every seed pair
	// dialled at build time).
	DHTJoin string
	// PublishParallel bounds the routers' resolver publishes and
	// withdrawals in flight across the simulation in DHT mode (default
	// 16, 64 on the in-memory DHT transport; see dhtPublishes).
	PublishParallel int
	// DHTBucketSize is the in-process kad-dht nodes' bucket size k,
	// which is also the replication factor: a publish gets from and puts
	// to the k closest peers, a first contact (a QUIC, TLS and membership
	// handshake) with each. Default 20, as deployed; a smaller k is a
	// fidelity difference (docs/SIMULATOR.md §6) to be stated with any
	// figure measured with it.
	DHTBucketSize int
	// DHTConns, when > 0, gives every in-process kad-dht host a libp2p
	// connection manager that trims its connections to DHTConns/2 once
	// it holds more than DHTConns (those older than dhtConnGrace; kad-dht's
	// own protected table peers stay). Default 0: libp2p's 160/192, as
	// deployed, which a 1,000-router simulation never reaches. A
	// publish's connections to its k closest peers stay open after it,
	// each with QUIC keep-alives and timers: in one process those cost
	// the sum of every node's (docs/SIMULATOR.md §6, Session 9). A
	// fidelity difference, to be stated with any figure.
	DHTConns int
	// DHTTransport is the in-process kad-dht hosts' libp2p transport:
	// DHTTransportQUIC (default: QUIC and TLS 1.3 over the emulated
	// links, as deployed) or DHTTransportMem (in-memory connections: no
	// handshake crypto, no stream multiplexer, each peer's key the one
	// the simulator knows its host by; the emulated paths' delays and
	// cuts apply, their loss, jitter, bandwidth and taps do not). A
	// fidelity difference
	// (docs/SIMULATOR.md §6, Session 11), to be stated with any figure.
	DHTTransport string

	// rtCertLifetime is the validity of the RtCerts the clients issue (0:
	// client.Options' default, an hour). Tests shorten it.
	rtCertLifetime time.Duration
}

// simDedupSlots is each emulated router's duplicate-suppression table.
const simDedupSlots = 1 << 16

// procMeminfo is where Start reads the memory available (tests point it
// at a file of their own).
var procMeminfo = "/proc/meminfo"

// Above bigSim routers an in-process simulation sizes each router for a
// crowd (routerSizing): the per-router memory and goroutines sized for a
// deployment are what limits how many fit on one machine.
const bigSim = 1024

// routerSizing is what an emulated router is given in a simulation of
// routers routers: its duplicate table, its socket's receive queue and
// (static resolver, whose lookups return at once) its resolver workers.
// Up to bigSim routers: 64 Ki dedup slots (512 KiB), an 8,192-packet
// queue and the default 8 workers. Beyond: 8 Ki slots (64 KiB; the
// table is best-effort, a smaller one lets more duplicates through to the
// TTL, never drops a new PDU), 1,024 packets and 2 workers (with kad-dht
// lookups take seconds: the default stays). Above coarseTickRouters the
// routers' housekeeping ticks every 500 ms instead of 50 ms: ten thousand
// tickers at 20 Hz were 200,000 wakeups a second, more CPU than the
// process got on a loaded machine before a single PDU moved (route expiry
// and the duplicate window are then checked to the half second).
type routerSizing struct {
	dedupSlots, recvQueue, workers int
	tick                           time.Duration
}

const coarseTickRouters = 64

func (s *Sim) routerSizing() routerSizing {
	var tick time.Duration // the router's default
	if s.routers > coarseTickRouters {
		tick = 500 * time.Millisecond
	}
	if s.routers <= bigSim {
		return routerSizing{dedupSlots: simDedupSlots, recvQueue: 8192, tick: tick}
	}
	z := routerSizing{dedupSlots: 1 << 13, recvQueue: 1024, tick: tick}
	if s.top.Resolver != ResolverDHT {
		z.workers = 2
	}
	return z
}

// RouterPort is the port every emulated router's tunnel listens on.
const RouterPort = 8009

// Sim is a topology running in this process: every router, capsule server
// and client is the real code, each on its own address of an emulated
// underlay (sim/linkem).
type Sim struct {
	top   *Topology
	opts  Options
	log   *zap.Logger
	net   *linkem.Network
	mem   *memNet // the DHT hosts' in-memory network (Options.DHTTransport mem)
	doms  map[string]*certs.Identity
	trust *certs.Verifier
	res   *resolver.Static // static mode
	dhts  *dhtState        // dht mode
	// dhtCounts counts the DHT hosts' streams and connections (dht mode).
	dhtCounts *dhtCounts
	// pubSlots are the publishes in flight (dht mode, pacedDHT).
	pubSlots chan struct{}
	nodes    map[string]*simNode
	order    []*simNode
	// routers is how many of the nodes are routers.
	routers int
	dir     string // scratch directory (capsule stores)
	own     bool   // dir is ours to remove

	t0    time.Time
	mu    sync.Mutex
	evs   []Event
	parts []*linkem.Link // links a partition took down
	pcaps []io.Closer

	recv sync.Map // stream workload index -> *streamRecv

	ns *nsRun // netns mode (sim/netns_linux.go); nil in-process
}

// simNode is one node at run time.
type simNode struct {
	spec   *Node
	addr   netip.Addr
	id     *certs.Identity
	member *certs.Cert
	dom    *certs.Identity

	tap *pduTap // captures at this router (measure.pcap)

	peer peer.ID // the DHT node's libp2p identity (dht mode)

	mu  sync.Mutex
	rn  *router.Node     // a router
	dht *resolver.DHT    // a router's DHT node (dht mode)
	tr  *tappedRouter    // a router whose PDUs are captured
	ep  *client.Endpoint // a server or client
	c   *client.Client
	cc  *client.CapsuleClient
	srv *capsuled.Server
	up  bool

	recvCancel context.CancelFunc
	recvDone   chan struct{}
	pubQuit    chan struct{} // closed when the router stops (pacedDHT)

	ns *nsNode // netns mode: the node's namespace and, for a router, its process
}

// Event is something the experiment did, at a time from its start.
type Event struct {
	At     float64 `json:"at_s"`
	Kind   string  `json:"kind"`
	Target string  `json:"target,omitempty"`
	Err    string  `json:"error,omitempty"`
}

// Start builds the topology: the underlay, then every router, then every
// server and client attached and advertised. Close stops it.
func Start(ctx context.Context, top *Topology, opts Options) (*Sim, error) {
	if err := top.Validate(); err != nil {
		return nil, err
	}
	if !opts.IgnoreMemory {
		mode := (&Sim{top: top, opts: opts}).mode()
		if err := checkMemory(top, mode, procMeminfo); err != nil {
			return nil, err
		}
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 32
	}
	if opts.PublishParallel <= 0 {
		opts.PublishParallel = dhtPublishes
		if opts.DHTTransport == DHTTransportMem {
			opts.PublishParallel = dhtPublishesMem
		}
	}
	s := &Sim{top: top, opts: opts, log: opts.Logger, doms: map[string]*certs.Identity{}, nodes: map[string]*simNode{},
		pubSlots: make(chan struct{}, opts.PublishParallel)}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	var err error
	if s.net, err = top.underlay(); err != nil {
		return nil, err
	}
	if opts.Out != "" {
		if err := os.MkdirAll(opts.Out, 0o755); err != nil {
			s.net.Close()
			return nil, err
		}
	}
	if s.dir, err = os.MkdirTemp("", "gdp-sim-*"); err != nil {
		s.net.Close()
		return nil, err
	}
	s.own = true
	if err := s.buildFor(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Sim) say(format string, a ...any) {
	if s.opts.Progress != nil {
		fmt.Fprintf(s.opts.Progress, format+"\n", a...)
	}
}

// progressEvery is how often a long build or run says how far it got.
var progressEvery = 10 * time.Second

// every prints line() to the progress writer every d until stop is
// called (stop waits for the printer to end).
func (s *Sim) every(d time.Duration, line func() string) (stop func()) {
	if s.opts.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				s.say("%s", line())
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func (s *Sim) build(ctx context.Context) error {
	t0 := time.Now()
	var metas []*certs.Metadata
	for _, d := range s.top.Domains {
		id, err := certs.NewIdentity(certs.KindDomain, "sim domain "+d)
		if err != nil {
			return err
		}
		s.doms[d] = id
		metas = append(metas, id.Meta)
	}
	s.trust = certs.NewVerifier(metas...)
	if s.top.Resolver != ResolverDHT {
		s.res = resolver.NewStatic(&resolver.Verifier{Certs: s.trust})
	}
	// A large topology takes minutes to build (40,000 routers: 4 min):
	// say how far it got every progressEvery, and stop at Ctrl-C.
	var made, up atomic.Int64
	total := len(s.top.Nodes)
	stop := s.every(progressEvery, func() string {
		return fmt.Sprintf("  building: %d/%d nodes made, %d routers up (%s)", made.Load(), total, up.Load(), time.Since(t0).Round(time.Second))
	})
	defer stop()
	for i, n := range s.top.Nodes {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("build stopped: %w", err)
		}
		if err := s.addNode(i, n); err != nil {
			return err
		}
		made.Add(1)
		if n.Kind == KindRouter {
			s.routers++
		}
	}
	for _, l := range s.top.Measure.Pcap {
		if err := s.capture(l); err != nil {
			return err
		}
	}
	if s.top.Resolver == ResolverDHT {
		if err := s.startDHTs(ctx); err != nil {
			return err
		}
		s.say("%d dht nodes joined (%s, process CPU %s)", len(s.order)-s.endpoints(), time.Since(t0).Round(time.Millisecond), processCPU().Round(time.Millisecond))
	}
	for _, n := range s.order {
		if n.spec.Kind == KindRouter {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("build stopped: %w", err)
			}
			if err := s.startRouter(n); err != nil {
				return err
			}
			up.Add(1)
		}
	}
	s.say("%d routers up (%s)", len(s.order)-s.endpoints(), time.Since(t0).Round(time.Millisecond))
	if err := s.startEndpoints(ctx); err != nil {
		return err
	}
	// Every advertised name is in the resolver before the clock starts.
	for _, n := range s.order {
		if n.spec.Kind == KindRouter {
			continue
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if _, err := s.lookup(ctx, "", n.id.Name); err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: its name never reached the resolver", n.spec.Name)
			}
		}
	}
	s.say("%d endpoints attached and advertised; built in %s", s.endpoints(), time.Since(t0).Round(time.Millisecond))
	return nil
}

func collect(ch <-chan error) []error {
	var out []error
	for e := range ch {
		out = append(out, e)
	}
	return out
}

func (s *Sim) endpoints() int {
	k := 0
	for _, n := range s.order {
		if n.spec.Kind != KindRouter {
			k++
		}
	}
	return k
}

func (s *Sim) startRouter(n *simNode) error {
	if s.ns != nil {
		return s.ns.startRouter(n)
	}
	z := s.routerSizing()
	conn, err := s.net.Listen(netip.AddrPortFrom(n.addr, RouterPort), z.recvQueue)
	if err != nil {
		return err
	}
	// The duplicate table is sized for a simulation (64 Ki slots,
	// 512 KiB, or 8 Ki beyond bigSim routers) rather than a deployment
	// (1 Mi slots, 8 MiB a router).
	cfg := router.Config{Admin: "off", Dedup: router.DedupConfig{Slots: z.dedupSlots}}
	cfg.Resolver.Workers = z.workers
	s.dhtRouterConfig(&cfg)
	deps := router.Deps{
		Identity: n.id, Member: n.member, Domain: n.dom.Meta, Verifier: s.trust,
		Resolver: s.resolverFor(n), Logger: s.log.Named(n.spec.Name), Tick: z.tick,
	}
	if n.tap != nil {
		tr, err := s.startTappedRouter(n, cfg, deps, conn)
		if err != nil {
			conn.Close()
			return fmt.Errorf("router %s: %w", n.spec.Name, err)
		}
		n.mu.Lock()
		n.tr, n.up = tr, true
		n.mu.Unlock()
		return nil
	}
	rn, err := router.StartNode(cfg, deps, conn, nil)
	if err != nil {
		conn.Close()
		return fmt.Errorf("router %s: %w", n.spec.Name, err)
	}
	n.mu.Lock()
	n.rn, n.up = rn, true
	n.mu.Unlock()
	return nil
}

func (s *Sim) startEndpoint(ctx context.Context, n *simNode) error {
	conn, err := s.listenUDP(n, 0, 8192)
	if err != nil {
		return err
	}
	ep, err := client.NewEndpoint(client.EndpointConfig{Identity: n.id, Member: n.member, Domain: n.dom.Meta, Verifier: s.trust,
		Conn: conn, Logger: s.log.Named(n.spec.Name), Options: client.Options{InboxSize: 8192, RequestTimeout: time.Second, RtCertLifetime: s.opts.rtCertLifetime}})
	if err != nil {
		conn.Close()
		return err
	}
	r := s.nodes[n.spec.Attach]
	actx, cancel := context.WithTimeout(ctx, s.attachBudget())
	defer cancel()
	// The first attach is retried: one tunnel handshake (5 s) can be
	// overrun by a router starved of CPU, as the first of a hundred netns
	// routers is while the last ones join through it (a 100-router build
	// failed on one "control accept: deadline exceeded"). A refusal (the
	// router does not accept the endpoint's credentials, or is not the
	// name expected) is not: waiting would not change it.
	var c *client.Client
	err = retryUntil(actx, 250*time.Millisecond, permanentAttachError, func() error {
		var err error
		c, err = ep.AttachAny(actx, []client.RouterAddr{{Addr: netip.AddrPortFrom(r.addr, RouterPort).String(), Name: r.id.Name}},
			client.AttachOptions{BackoffMin: 50 * time.Millisecond, BackoffMax: time.Second})
		return err
	})
	if err != nil {
		ep.Close()
		return err
	}
	var srv *capsuled.Server
	var cc *client.CapsuleClient
	if n.spec.Kind == KindServer {
		srv, err = capsuled.New(actx, capsuled.Config{Dir: filepath.Join(s.dir, n.spec.Name), SyncInterval: 300 * time.Millisecond},
			capsuled.Deps{Identity: n.id, Client: c, Logger: s.log.Named(n.spec.Name)})
		if err != nil {
			c.Close()
			ep.Close()
			return err
		}
	} else {
		// Advertised again before the route expires (the RtCert's hour,
		// the router's membership), for as long as the client runs: an
		// experiment of more than an hour lost its clients' answers
		// (Session 21). The renewals end with the client (Close), not
		// with the build's ctx; the first advertisement is bounded by the
		// client's attempts (3 of RequestTimeout).
		if _, err := c.KeepAdvertised(context.WithoutCancel(ctx), func() []client.Route { return []client.Route{c.Self()} }, time.Second); err != nil {
			c.Close()
			ep.Close()
			return err
		}
		if s.capsuleClient(n.spec.Name) {
			cc = client.NewCapsuleClient(c, client.CapsuleOptions{Timeout: time.Second})
		}
	}
	n.mu.Lock()
	n.ep, n.c, n.srv, n.cc, n.up = ep, c, srv, cc, true
	n.mu.Unlock()
	if cc == nil && srv == nil {
		s.startReceiver(n)
	}
	return nil
}

// attachBudget is how long an endpoint has to attach to its router and
// advertise its name: 15 s in-process, 60 s in netns mode, where its
// router is a process sharing the cores with up to a hundred others (the
// netns build waits as long for the names: waitNames).
func (s *Sim) attachBudget() time.Duration {
	if s.ns != nil {
		return 60 * time.Second
	}
	return 15 * time.Second
}

// retryUntil calls f until it succeeds, fails permanently (permanent
// says so of its error; nil: never) or ctx ends, pause apart; it returns
// f's last error, with the attempts it took.
func retryUntil(ctx context.Context, pause time.Duration, permanent func(error) bool, f func() error) error {
	for try := 1; ; try++ {
		err := f()
		if err == nil {
			return nil
		}
		if permanent != nil && permanent(err) {
			if try > 1 {
				return fmt.Errorf("%w (%d attempts)", err, try)
			}
			return err
		}
		select {
		case <-ctx.Done():
			if try > 1 {
				return fmt.Errorf("%w (%d attempts)", err, try)
			}
			return err
		case <-time.After(pause):
		}
	}
}

// permanentAttachError says whether an attach failed in a way a retry
// cannot mend: the router refused the endpoint's credentials in the TLS
// handshake or refused the link's kind, proved another name, or presented
// a key its metadata does not carry. A router that closes the connection
// after a failed setup also reports a refusal (a QUIC application close),
// but that failure may be its own deadline on a starved router — the case
// the retry is for — so it is retried.
func permanentAttachError(err error) bool {
	if errors.Is(err, tunnel.ErrWrongPeer) || errors.Is(err, tunnel.ErrKeyMismatch) {
		return true
	}
	var closed *quic.ApplicationError
	return errors.Is(err, tunnel.ErrPeerRefused) && !errors.As(err, &closed)
}

// capsuleClient says whether a client takes part in a capsule workload
// (its inbox then belongs to the capsule client).
func (s *Sim) capsuleClient(name string) bool {
	for _, w := range s.top.Workloads {
		if w.Kind != WorkCapsule {
			continue
		}
		if w.From == name {
			return true
		}
		for _, r := range w.Readers {
			if r == name {
				return true
			}
		}
	}
	return false
}

// stop crashes a node: its sockets close at once, nothing is said to peers.
func (s *Sim) stop(n *simNode) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.up {
		return
	}
	n.up = false
	if n.pubQuit != nil {
		close(n.pubQuit) // a publish waiting for a slot gives up
		n.pubQuit = nil
	}
	if n.recvCancel != nil {
		n.recvCancel()
		<-n.recvDone
		n.recvCancel = nil
	}
	if n.rn != nil {
		_ = n.rn.Close()
		n.rn = nil
	}
	if s.ns != nil && n.spec.Kind == KindRouter {
		s.ns.stopRouter(n)
	}
	if n.tr != nil {
		_ = n.tr.Close()
		n.tr = nil
	}
	s.stopDHTLocked(n)
	if n.cc != nil {
		_ = n.cc.Close()
		n.cc = nil
	}
	if n.srv != nil {
		_ = n.srv.Close()
		n.srv = nil
	}
	if n.c != nil {
		_ = n.c.Close()
		n.c = nil
	}
	if n.ep != nil {
		_ = n.ep.Close()
		n.ep = nil
	}
}

// restart starts a crashed node again with the same identity, address and
// (for a server) store.
func (s *Sim) restart(ctx context.Context, n *simNode) error {
	n.mu.Lock()
	up := n.up
	n.mu.Unlock()
	if up {
		return nil
	}
	if n.spec.Kind == KindRouter {
		if s.top.Resolver == ResolverDHT {
			if err := s.startDHT(ctx, n, true); err != nil {
				return err
			}
		}
		return s.startRouter(n)
	}
	return s.startEndpoint(ctx, n)
}

// Close stops every node and the underlay, and removes scratch files.
func (s *Sim) Close() error {
	for i := len(s.order) - 1; i >= 0; i-- {
		if s.order[i].spec.Kind != KindRouter {
			s.stop(s.order[i])
		}
	}
	for _, n := range s.order {
		s.stop(n)
	}
	if s.ns != nil {
		s.ns.close()
	}
	if s.res != nil {
		_ = s.res.Close()
	}
	if s.net != nil {
		_ = s.net.Close()
	}
	for _, c := range s.pcaps {
		_ = c.Close()
	}
	if s.own && s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
	return nil
}

// Network is the emulated underlay (links, counters, taps).
func (s *Sim) Network() *linkem.Network { return s.net }

// Name is a node's gdpnet name.
func (s *Sim) Name(node string) (pdu.Name, bool) {
	n := s.nodes[node]
	if n == nil {
		return pdu.Name{}, false
	}
	return n.id.Name, true
}

// Client is a client or server node's attachment (nil while it is down).
func (s *Sim) Client(node string) *client.Client {
	n := s.nodes[node]
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.c
}

// Router is a router node's router (nil while it is down).
func (s *Sim) Router(node string) *router.Router {
	n := s.nodes[node]
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.rn != nil:
		return n.rn.Router
	case n.tr != nil:
		return n.tr.r
	}
	return nil
}

// Ping sends one echo request from a client node to another node by name.
func (s *Sim) Ping(ctx context.Context, from, to string, size int, timeout time.Duration) (client.Reply, error) {
	c := s.Client(from)
	dst, ok := s.Name(to)
	if c == nil || !ok {
		return client.Reply{}, fmt.Errorf("ping %s→%s: no such client or node, or it is down", from, to)
	}
	return c.Ping(ctx, dst, size, timeout)
}

func (s *Sim) event(kind, target string, err error) {
	e := Event{At: time.Since(s.t0).Seconds(), Kind: kind, Target: target}
	if err != nil {
		e.Err = err.Error()
	}
	s.mu.Lock()
	s.evs = append(s.evs, e)
	s.mu.Unlock()
	if err != nil {
		s.say("%7.3fs %s %s: %v", e.At, kind, target, err)
	} else {
		s.say("%7.3fs %s %s", e.At, kind, target)
	}
}

// Fail applies one failure now.
func (s *Sim) Fail(ctx context.Context, f *Failure) error {
	var err error
	target := f.Node + f.Link
	switch f.Kind {
	case FailLinkDown, FailLinkUp:
		l := s.linkFor(f.Link)
		if l == nil {
			err = fmt.Errorf("no link %q", f.Link)
			break
		}
		s.net.SetLinkDown(l, f.Kind == FailLinkDown)
	case FailCrash:
		s.stop(s.nodes[f.Node])
	case FailRestart:
		err = s.restart(ctx, s.nodes[f.Node])
	case FailPartition:
		group := map[string]int{}
		for i, g := range f.Groups {
			for _, n := range g {
				group[n] = i + 1
			}
		}
		for _, l := range s.net.Links() {
			ga, gb := group[l.A.Name], group[l.B.Name]
			if ga != 0 && gb != 0 && ga != gb && !l.Dirs[0].Config().Down {
				s.net.SetLinkDown(l, true)
				s.mu.Lock()
				s.parts = append(s.parts, l)
				s.mu.Unlock()
			}
		}
		target = fmt.Sprint(f.Groups)
	case FailHeal:
		s.mu.Lock()
		parts := s.parts
		s.parts = nil
		s.mu.Unlock()
		for _, l := range parts {
			s.net.SetLinkDown(l, false)
		}
	default:
		err = fmt.Errorf("unknown failure %q", f.Kind)
	}
	s.event(f.Kind, target, err)
	return err
}

func (s *Sim) linkFor(id string) *linkem.Link {
	tl := s.top.linkByID(id)
	if tl == nil {
		return nil
	}
	for _, l := range s.net.Links() {
		if (l.A.Name == tl.A && l.B.Name == tl.B) || (l.A.Name == tl.B && l.B.Name == tl.A) {
			return l
		}
	}
	return nil
}

// startEndpoints attaches every server and client, Parallel at a time.
func (s *Sim) startEndpoints(ctx context.Context) error {
	var eps []*simNode
	for _, n := range s.order {
		if n.spec.Kind != KindRouter {
			eps = append(eps, n)
		}
	}
	return eachLimited(ctx, eps, s.opts.Parallel, func(n *simNode) error {
		if err := s.startEndpoint(ctx, n); err != nil {
			return fmt.Errorf("%s: %w", n.spec.Name, err)
		}
		return nil
	})
}

// addNode gives node n (the i-th of the topology) its identity and a week's
// membership of its domain, and adds it to s.nodes and s.order.
func (s *Sim) addNode(i int, n *Node) error {
	kind := map[string]certs.Kind{KindRouter: certs.KindRouter, KindServer: certs.KindServer, KindClient: certs.KindClient}[n.Kind]
	id, err := certs.NewIdentity(kind, "sim "+n.Name)
	if err != nil {
		return err
	}
	dom := s.doms[n.Domain]
	now := time.Now()
	m, err := certs.IssueMember(dom, id.Name, now.Add(-time.Minute), now.Add(7*24*time.Hour))
	if err != nil {
		return err
	}
	sn := &simNode{spec: n, addr: nodeAddr(i), id: id, member: m, dom: dom}
	s.nodes[n.Name] = sn
	s.order = append(s.order, sn)
	return nil
}
