package sim

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p"
	kad "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"

	"github.com/gdpnet/gdpnet/internal/config"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
)

// ResolverDHT gives every router its own real kad-dht node
// (resolver.DHT: go-libp2p-kad-dht, the membership gate, the per-router
// record quotas), whose libp2p QUIC traffic crosses the emulated links.
const ResolverDHT = "dht"

// DHTPort is the emulated UDP port of every router's DHT node.
const DHTPort = 4001

// dhtSeeds is how many already running DHT nodes a joining node
// bootstraps from (chosen at random among them).
const dhtSeeds = 3

// dhtRecvQueue is the receive queue of a DHT node's emulated socket.
const dhtRecvQueue = 2048

// dhtState is the simulation's view of its DHT nodes: which are running
// (bootstrap candidates), per domain.
type dhtState struct {
	mu  sync.Mutex
	rng *rand.Rand
	up  map[string][]*simNode // domain -> running DHT nodes
}

// DHT is a router node's DHT node (nil in static mode or while the router
// is down).
func (s *Sim) DHT(node string) *resolver.DHT {
	n := s.nodes[node]
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.dht
}

// DHTOpenConnections is how many libp2p connections the running DHT
// nodes hold open now (each connection counted at both ends).
func (s *Sim) DHTOpenConnections() (conns int) {
	for _, n := range s.order {
		if d := s.DHT(n.spec.Name); d != nil {
			conns += d.OpenConnections()
		}
	}
	return conns
}

// DHTConnections is how many libp2p connections the running DHT nodes
// have dialled so far (each connection counted once, at its dialler:
// a QUIC and TLS handshake, identify and the membership proof).
func (s *Sim) DHTConnections() (conns int64) {
	for _, n := range s.order {
		if d := s.DHT(n.spec.Name); d != nil {
			_, out := d.Connections()
			conns += out
		}
	}
	return conns
}

// resolverFor is the resolver a router embeds: the shared static one, or
// its own DHT node with its publishes paced (pacedDHT).
func (s *Sim) resolverFor(n *simNode) resolver.Resolver {
	if s.top.Resolver == ResolverDHT {
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.dht == nil {
			return nil
		}
		if n.pubQuit != nil {
			close(n.pubQuit)
		}
		n.pubQuit = make(chan struct{})
		return &pacedDHT{DHT: n.dht, slots: s.pubSlots, quit: n.pubQuit}
	}
	return s.res
}

// dialSeeds picks up to dhtSeeds running DHT nodes of n's domain as n's
// bootstrap peers.
func (s *Sim) dialSeeds(n *simNode) []string {
	s.dhts.mu.Lock()
	defer s.dhts.mu.Unlock()
	up := s.dhts.up[n.spec.Domain]
	var out []string
	if len(up) == 0 {
		return nil
	}
	for _, i := range s.dhts.rng.Perm(len(up)) {
		if up[i] == n {
			continue
		}
		out = append(out, s.dhtAddr(up[i]))
		if len(out) == dhtSeeds {
			break
		}
	}
	return out
}

// dhtAddr is a node's DHT multiaddr with its peer id.
func (s *Sim) dhtAddr(n *simNode) string {
	return fmt.Sprintf("%s/p2p/%s", s.dhtListen(n), n.peer)
}

// dhtListen is a node's DHT listening multiaddr: QUIC on the emulated
// UDP port, or the in-memory transport's /ip4/A/tcp/P
// (Options.DHTTransport).
func (s *Sim) dhtListen(n *simNode) string {
	if s.mem != nil {
		return memAddr(netip.AddrPortFrom(n.addr, DHTPort)).String()
	}
	return fmt.Sprintf("/ip4/%s/udp/%d/quic-v1", n.addr, DHTPort)
}

// fixedSource makes quicreuse dial from the node's own listening socket
// (the one address the node has) instead of asking the host's routing
// table, which knows nothing of the emulated network.
type fixedSource net.IP

func (f fixedSource) PreferredSourceIPForDestination(*net.UDPAddr) (net.IP, error) {
	return net.IP(f), nil
}

// startDHT starts n's DHT node on the emulated network; with join, it
// bootstraps from running nodes of its domain (a restarted router).
func (s *Sim) startDHT(ctx context.Context, n *simNode, join bool) error {
	addr := n.addr
	listen := func(_ string, laddr *net.UDPAddr) (net.PacketConn, error) {
		port := 0
		if laddr != nil {
			port = laddr.Port
		}
		return s.net.Listen(netip.AddrPortFrom(addr, uint16(port)), dhtRecvQueue)
	}
	src := func() (quicreuse.SourceIPSelector, error) { return fixedSource(addr.AsSlice()), nil }
	var boot []string
	if join {
		boot = s.dialSeeds(n)
	}
	cfg := resolver.DHTConfig{
		Identity: n.id, Member: n.member, Domain: n.dom.Meta, Certs: s.trust,
		Listen:    []string{s.dhtListen(n)},
		Bootstrap: boot,
		// Every router announces its own name and its endpoints' (see
		// DHTConfig.MaxRecordsPerRouter): the default quota holds.
		HostOptions: []libp2p.Option{
			// QUIC over the emulated network: every socket the
			// transport opens is a linkem socket on the node's address.
			libp2p.QUICReuse(quicreuse.NewConnManager, quicreuse.OverrideListenUDP(listen),
				quicreuse.OverrideSourceIPSelector(src)),
			// The per-host resource manager (connection, stream and
			// memory accounting sized for a whole machine) costs memory
			// and CPU per host and bounds nothing a simulation needs.
			// s.dhtCounts counts streams and connections instead.
			libp2p.ResourceManager(s.dhtCounts.host()),
		},
		// startDHTs builds the routing tables; kad-dht's refresh at start
		// and every 10 min would look up a dozen keys per node on top.
		KadOptions: []kad.Option{kad.DisableAutoRefresh(), kad.OnRequestHook(s.dhtCounts.kadRequest)},
		// A deployment's 5 s handshake and 5 s put are minutes of work
		// for a thousand nodes on a shared machine: the simulator gives
		// them 30 s and 20 s (a slow node is slow, not an intruder).
		HandshakeTimeout: 30 * time.Second,
		PutTimeout:       20 * time.Second,
		BucketSize:       s.opts.DHTBucketSize, // 0: kad-dht's 20, as deployed
		Logger:           s.log.Named(n.spec.Name).Named("dht"),
	}
	if s.mem != nil {
		// The in-memory transport instead of QUIC (the host's TCP and
		// QUIC transports removed). It secures and multiplexes nothing
		// itself, so no security transport is set up either (libp2p's
		// default would make each host a TLS certificate).
		cfg.HostOptions = []libp2p.Option{
			libp2p.NoTransports, libp2p.Transport(memTransportFor(s.mem, addr)), libp2p.NoSecurity,
			libp2p.ResourceManager(s.dhtCounts.host()),
			// No AutoNAT probing: every simulated host is reachable
			// (and kad-dht runs in server mode whatever it would say).
			libp2p.ForceReachabilityPublic(),
		}
	}
	if c := s.opts.DHTConns; c > 0 {
		cm, err := connmgr.NewConnManager(max(c/2, 1), c, connmgr.WithGracePeriod(dhtConnGrace),
			connmgr.WithSilencePeriod(dhtConnSilence))
		if err != nil {
			return fmt.Errorf("dht %s: connection manager: %w", n.spec.Name, err)
		}
		cfg.HostOptions = append(cfg.HostOptions, libp2p.ConnectionManager(cm))
	}
	// A joining node's bootstrap dials and first refresh get a minute on a
	// loaded machine; a node none of whose seeds answered is an error.
	jctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	d, err := resolver.NewDHT(jctx, cfg)
	if err != nil {
		return fmt.Errorf("dht %s: %w", n.spec.Name, err)
	}
	n.mu.Lock()
	n.dht, n.peer = d, d.PeerID()
	n.mu.Unlock()
	s.dhts.mu.Lock()
	s.dhts.up[n.spec.Domain] = append(s.dhts.up[n.spec.Domain], n)
	s.dhts.mu.Unlock()
	return nil
}

// stopDHT closes n's DHT node and forgets it as a bootstrap candidate.
// The caller holds n.mu.
func (s *Sim) stopDHTLocked(n *simNode) {
	if n.dht == nil {
		return
	}
	_ = n.dht.Close()
	n.dht = nil
	s.dhts.mu.Lock()
	up := s.dhts.up[n.spec.Domain]
	for i, m := range up {
		if m == n {
			s.dhts.up[n.spec.Domain] = append(up[:i:i], up[i+1:]...)
			break
		}
	}
	s.dhts.mu.Unlock()
}

// dhtConnGrace is how long a new connection is safe from the connection
// manager (Options.DHTConns): longer than a publish (its search, gets and
// puts on the connections it opened) takes on a loaded machine. Trims are
// at least dhtConnSilence apart (libp2p's default). Variables for tests.
var dhtConnGrace, dhtConnSilence = 20 * time.Second, 10 * time.Second

// The seeded join (startDHTs): each node is dialled to its dhtClose
// nearest nodes in the Kademlia key space and to dhtPerBucket nodes at
// each larger distance (common prefix length), chosen from the sorted list
// of every node, instead of finding them through lookups.
const (
	dhtClose     = 8
	dhtPerBucket = 1
)

// startDHTs starts the DHT node of every router and joins them. A node
// joining a running DHT looks itself up (a routing table refresh: a dozen
// lookups, a dial to each peer they meet); a thousand at once cost more
// than the rest of the simulation. The simulator knows every node in
// advance, so it builds the routing tables Kademlia would converge to:
// every host first (no bootstrap), then each node given its nearest
// nodes and one per bucket (seedPairs): put in its table (pre-warmed,
// the default) or dialled (Options.DHTJoin). kad-dht then runs unchanged:
// lookups, puts, the refreshes of its own schedule.
func (s *Sim) startDHTs(ctx context.Context) error {
	s.dhts = &dhtState{rng: rand.New(rand.NewPCG(s.top.Seed, 0x64687473)), up: map[string][]*simNode{}}
	s.dhtCounts = newDHTCounts()
	switch s.opts.DHTTransport {
	case "", DHTTransportQUIC:
	case DHTTransportMem:
		s.mem = newMemNet(s.net)
	default:
		return fmt.Errorf("dht transport %q: want %q or %q", s.opts.DHTTransport, DHTTransportQUIC, DHTTransportMem)
	}
	var routers []*simNode
	for _, n := range s.order {
		if n.spec.Kind == KindRouter {
			routers = append(routers, n)
		}
	}
	if err := s.parallel(ctx, routers, func(n *simNode) error { return s.startDHT(ctx, n, false) }); err != nil {
		return err
	}
	byDom := map[string][]*simNode{}
	for _, n := range routers {
		byDom[n.spec.Domain] = append(byDom[n.spec.Domain], n)
	}
	var pairs [][2]*simNode
	for _, nodes := range byDom {
		pairs = append(pairs, seedPairs(nodes, s.dhts.rng)...)
	}
	if s.opts.DHTJoin == DHTJoinDial {
		return s.dialPairs(ctx, pairs)
	}
	return s.prewarm(pairs)
}

// The in-process DHT's joins (Options.DHTJoin).
const (
	// DHTJoinPrewarm (default): every node's seeds are put in its routing
	// table and peerstore, both ways, without a dial (resolver.DHT
	// AddPeers): a pre-warmed DHT, as if the nodes had joined long ago.
	// The handshakes (QUIC, TLS, membership proofs) happen when a
	// lookup or put first uses a peer.
	DHTJoinPrewarm = "prewarm"
	// DHTJoinDial: every seed pair is dialled (handshakes and membership
	// proofs at build time), dhtHandshakes at a time.
	DHTJoinDial = "dial"
)

// prewarm fills the routing tables from the pairs, both ways.
func (s *Sim) prewarm(pairs [][2]*simNode) error {
	t0 := time.Now()
	added := 0
	for _, p := range pairs {
		for _, ab := range [][2]*simNode{p, {p[1], p[0]}} {
			n, err := ab[0].dht.AddPeers(s.dhtAddr(ab[1]))
			if err != nil {
				return fmt.Errorf("dht %s: %w", ab[0].spec.Name, err)
			}
			added += n
		}
	}
	s.say("DHT pre-warmed: %d seed pairs, %d routing table entries, no dial (%s)", len(pairs), added, time.Since(t0).Round(time.Millisecond))
	return nil
}

// dhtHandshakes bounds the seed dials (QUIC and TLS handshake, then the
// membership proof both ways) in flight across the whole simulation.
// Each node used to dial its seeds one after another under a one-minute
// budget, Parallel nodes at a time: on a loaded machine a node's dozen
// and a half sequential dials overran the budget and a quarter of 1,000
// nodes failed to join. Now every seed dial is its own task, at most
// dhtHandshakes at once (enough to keep the cores busy, few enough that
// none waits out its handshake timeout in a queue of hundreds), and a
// pair whose dial failed is dialled once more after the rest.
const dhtHandshakes = 48

// dialPairs dials every pair (p[0] dials p[1]), dhtHandshakes at a time,
// retries the failures once, and fails only for a node that joined no
// peer at all (as the dialling side or the dialled one).
func (s *Sim) dialPairs(ctx context.Context, pairs [][2]*simNode) error {
	joined := map[*simNode]bool{}
	var mu sync.Mutex
	try := func(pairs [][2]*simNode) (failed [][2]*simNode) {
		_ = eachLimited(ctx, pairs, dhtHandshakes, func(p [2]*simNode) error {
			err := p[0].dht.Dial(ctx, s.dhtAddr(p[1]))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, p)
				return nil
			}
			joined[p[0]], joined[p[1]] = true, true
			return nil
		})
		return failed
	}
	t0 := time.Now()
	failed := try(pairs)
	s.say("%d seed dials, %d failed (%s, process CPU %s)", len(pairs), len(failed), time.Since(t0).Round(time.Millisecond), processCPU().Round(time.Millisecond))
	if k := len(failed); k > 0 {
		failed = try(failed)
		s.say("%d seed dials retried, %d failed again", k, len(failed))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var errs []error
	for _, p := range failed {
		if !joined[p[0]] {
			joined[p[0]] = true // one error per node
			errs = append(errs, fmt.Errorf("dht %s: no seed admitted", p[0].spec.Name))
		}
	}
	return errors.Join(errs...)
}

// parallel runs f for every node, opts.Parallel at a time, and joins the
// errors.
func (s *Sim) parallel(ctx context.Context, nodes []*simNode, f func(*simNode) error) error {
	if err := eachLimited(ctx, nodes, s.opts.Parallel, f); err != nil {
		return err
	}
	return ctx.Err()
}

// eachLimited runs f for every item, at most limit at a time, stops
// starting new ones once ctx ends, and joins f's errors.
func eachLimited[T any](ctx context.Context, items []T, limit int, f func(T) error) error {
	sem := make(chan struct{}, max(limit, 1))
	var wg sync.WaitGroup
	errs := make(chan error, len(items))
	for _, it := range items {
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(it); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return errors.Join(collect(errs)...)
}

// kadKey is a node's position in the Kademlia key space (kad-dht's: the
// SHA-256 of the peer id).
func kadKey(n *simNode) [32]byte { return sha256.Sum256([]byte(n.peer)) }

// cpl is the common prefix length of two keys in bits.
func cpl(a, b *[32]byte) int {
	for i := range a {
		if x := a[i] ^ b[i]; x != 0 {
			return i*8 + bits.LeadingZeros8(x)
		}
	}
	return 256
}

// seedPairs says which node dials which: each node to its seeds
// (seedsOf). Each pair appears once.
func seedPairs(nodes []*simNode, rng *rand.Rand) [][2]*simNode {
	keys := make([][32]byte, len(nodes))
	for i, n := range nodes {
		keys[i] = kadKey(n)
	}
	type pk struct{ a, b int }
	seen := map[pk]bool{}
	var out [][2]*simNode
	for i := range nodes {
		for _, j := range seedsOf(i, keys, rng) {
			if seen[pk{i, j}] || seen[pk{j, i}] {
				continue
			}
			seen[pk{i, j}] = true
			out = append(out, [2]*simNode{nodes[i], nodes[j]})
		}
	}
	return out
}

// seedsOf is node i's seeds among keys (indexes, i excluded): its
// dhtClose nearest by XOR distance, then dhtPerBucket at random at every
// common prefix length it has nodes at — the routing table
// Kademlia converges to, in miniature. The in-process simulator dials
// them; netns mode lists them as a router's bootstrap peers (join:
// seeded).
func seedsOf(i int, keys [][32]byte, rng *rand.Rand) []int {
	idx := make([]int, 0, len(keys))
	for j := range keys {
		if j != i {
			idx = append(idx, j)
		}
	}
	slices.SortFunc(idx, func(x, y int) int {
		for b := range 32 {
			dx, dy := keys[x][b]^keys[i][b], keys[y][b]^keys[i][b]
			if dx != dy {
				return int(dx) - int(dy)
			}
		}
		return 0
	})
	out := slices.Clone(idx[:min(len(idx), dhtClose)])
	chosen := map[int]bool{}
	for _, j := range out {
		chosen[j] = true
	}
	perCpl := map[int]int{}
	for _, j := range rng.Perm(len(keys)) {
		if j == i {
			continue
		}
		// A near node drawn first fills its distance's share.
		if c := cpl(&keys[i], &keys[j]); perCpl[c] < dhtPerBucket {
			perCpl[c]++
			if !chosen[j] {
				chosen[j] = true
				out = append(out, j)
			}
		}
	}
	return out
}

// lookup resolves name as the simulation's routers see it: the static
// resolver, or (dht) the DHT node of router via (any running router when
// via is "").
func (s *Sim) lookup(ctx context.Context, via string, name pdu.Name) (*resolver.Record, error) {
	if s.top.Resolver != ResolverDHT {
		return s.res.Lookup(ctx, name)
	}
	var d *resolver.DHT
	if via != "" {
		d = s.DHT(via)
	} else {
		for _, n := range s.order {
			if d = s.DHT(n.spec.Name); d != nil {
				break
			}
		}
	}
	if d == nil {
		return nil, fmt.Errorf("lookup %s: no running DHT node", name)
	}
	return d.Lookup(ctx, name)
}

// Reachability is what CheckNames found.
type Reachability struct {
	// Lookups asked, and how many found a record pointing at the router
	// that announced the name.
	Lookups, Found int
	// Failed lists up to 10 failures as "from → name: error".
	Failed []string
	// Routers and Names are how many of each the check covered.
	Routers, Names int
}

// NameCheck says which (router, name) pairs CheckNames looks up: every
// advertised name from each of FromRouters random routers, and each of
// ForNames random names from every router. Zero for both checks every
// pair. A pair that failed (a name still being published) is retried, a
// round at a time, until the deadline of the context.
type NameCheck struct {
	FromRouters, ForNames int
	Seed                  uint64
	// Parallel is how many lookups run at once (0: Options.Parallel).
	Parallel int
}

// CheckNames looks names up through the routers' resolvers and reports
// how many resolved to the router that announced them. The names are
// the advertised ones: every router's own name (routers announce
// themselves) and every endpoint's. A pair that fails is retried until ctx
// ends, so CheckNames also waits for convergence.
func (s *Sim) CheckNames(ctx context.Context, c NameCheck) Reachability {
	type target struct {
		name   pdu.Name
		label  string
		router pdu.Name
	}
	var names []target
	var routers []string
	for _, n := range s.order {
		if n.spec.Kind == KindRouter {
			routers = append(routers, n.spec.Name)
			names = append(names, target{n.id.Name, n.spec.Name, n.id.Name})
		} else if n.spec.Kind == KindClient {
			names = append(names, target{n.id.Name, n.spec.Name, s.nodes[n.spec.Attach].id.Name})
		}
	}
	type pair struct {
		from string
		t    target
	}
	var pairs []pair
	rng := rand.New(rand.NewPCG(c.Seed, 0x636b))
	seen := map[[2]string]bool{}
	add := func(from string, t target) {
		if k := [2]string{from, t.label}; !seen[k] {
			seen[k] = true
			pairs = append(pairs, pair{from, t})
		}
	}
	covR, covN := map[string]bool{}, map[string]bool{}
	if c.FromRouters <= 0 && c.ForNames <= 0 {
		for _, r := range routers {
			for _, t := range names {
				add(r, t)
			}
		}
	} else {
		for _, i := range rng.Perm(len(routers))[:min(c.FromRouters, len(routers))] {
			for _, t := range names {
				add(routers[i], t)
			}
		}
		for _, i := range rng.Perm(len(names))[:min(c.ForNames, len(names))] {
			for _, r := range routers {
				add(r, names[i])
			}
		}
	}
	for _, p := range pairs {
		covR[p.from], covN[p.t.label] = true, true
	}
	res := Reachability{Lookups: len(pairs), Routers: len(covR), Names: len(covN)}
	// Pairs are tried in rounds, in random order: each round looks every
	// pending pair up once, Parallel at a time, and the next round retries
	// the ones that failed. A pair that keeps failing (a name not yet
	// published, a router whose lookups time out) takes one attempt a
	// round; when each retried until found, a few such pairs held every
	// worker and the check never reached the other routers.
	pending := make([]pair, len(pairs))
	for i, k := range rng.Perm(len(pairs)) {
		pending[i] = pairs[k]
	}
	var mu sync.Mutex
	errs := map[[2]string]error{}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t0 := time.Now()
		t := time.NewTicker(15 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			mu.Lock()
			s.say("check names: %d of %d lookups found (%s, process CPU %s)", res.Found, len(pairs), time.Since(t0).Round(time.Second), processCPU().Round(time.Second))
			mu.Unlock()
		}
	}()
	for round := 0; len(pending) > 0; round++ {
		if round > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
		if ctx.Err() != nil {
			break
		}
		var failed []pair
		sem := make(chan struct{}, max(cmp.Or(c.Parallel, s.opts.Parallel), 1))
		var wg sync.WaitGroup
		for _, p := range pending {
			if ctx.Err() != nil {
				mu.Lock()
				failed = append(failed, p)
				mu.Unlock()
				continue
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				lctx, cancel := context.WithTimeout(ctx, checkLookupTimeout)
				rec, err := s.lookup(lctx, p.from, p.t.name)
				cancel()
				if err == nil && rec.Router() != p.t.router {
					err = fmt.Errorf("record points at %s, want %s", rec.Router(), p.t.router)
				}
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					res.Found++
					return
				}
				errs[[2]string{p.from, p.t.label}] = err
				failed = append(failed, p)
			}()
		}
		wg.Wait()
		pending = failed
	}
	for _, p := range pending[:min(10, len(pending))] {
		err := errs[[2]string{p.from, p.t.label}]
		if err == nil {
			err = ctx.Err() // never tried: the check ran out of time first
		}
		res.Failed = append(res.Failed, fmt.Sprintf("%s → %s: %v", p.from, p.t.label, err))
	}
	return res
}

// checkLookupTimeout bounds one lookup attempt of CheckNames (a kad-dht
// lookup on a loaded machine: the routers' own resolver timeout in DHT
// mode is 30 s).
const checkLookupTimeout = 30 * time.Second

// processCPU is the process's user + system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// dhtRouterConfig gives a router's resolver calls (a publish: gather, find
// the closest peers, put to each; a lookup) the time kad-dht needs on a
// loaded machine: 30 s instead of a deployment's 3 s, which a thousand
// nodes on two cores overrun, and every retry with them.
func (s *Sim) dhtRouterConfig(cfg *router.Config) {
	if s.top.Resolver == ResolverDHT {
		cfg.Resolver.Timeout = config.Duration(30 * time.Second)
	}
}

// WaitPublished waits until no router has a location record job pending
// (gdp_router_publish_pending is 0 at every running router: every record
// it was asked to publish, its own included, is stored, none backing off)
// and returns how many routers still had jobs pending when ctx ended. A
// convergence check that looks names up while the publishes still run
// only adds lookups to the load the publishes are waiting on.
func (s *Sim) WaitPublished(ctx context.Context) int {
	t0 := time.Now()
	last := time.Now()
	for {
		busy := 0
		for _, n := range s.order {
			if n.spec.Kind != KindRouter {
				continue
			}
			// PublishPending is the gauge's value without gathering the
			// router's whole registry (a thousand gathers every 3 s were
			// 7 % of the CPU of a 1,000-router run).
			if r := s.Router(n.spec.Name); r != nil && r.PublishPending() > 0 {
				busy++
			}
		}
		if busy == 0 || ctx.Err() != nil {
			s.say("publishes: %d routers with jobs pending (%s, process CPU %s)", busy, time.Since(t0).Round(time.Millisecond), processCPU().Round(time.Second))
			return busy
		}
		if time.Since(last) > 15*time.Second {
			last = time.Now()
			s.say("publishes: %d routers with jobs pending (%s, process CPU %s)", busy, time.Since(t0).Round(time.Second), processCPU().Round(time.Second))
		}
		select {
		case <-ctx.Done():
		case <-time.After(3 * time.Second):
		}
	}
}
