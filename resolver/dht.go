package resolver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p"
	kad "github.com/libp2p/go-libp2p-kad-dht"
	kadpb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p-kad-dht/records"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

// GlobalPrefix is the protocol prefix of the federation's global DHT.
const GlobalPrefix = "/gdp/global"

// DomainPrefix is the protocol prefix of domain's DHT. Each domain runs its
// own DHT, so nodes of two domains never mix routing tables even when they
// are connected.
func DomainPrefix(domain pdu.Name) protocol.ID { return protocol.ID("/gdp/d/" + domain.String()) }

// DHT is a Resolver backed by go-libp2p-kad-dht in a private network: a
// trust domain's DHT, or the global tier. It is a DHT server (ModeServer:
// ModeAuto never turns server on a private network), admits only peers
// that prove membership, and republishes what it published.
type DHT struct {
	cfg DHTConfig
	log *zap.Logger
	// logLim bounds the lines remote peers can cause per connection or
	// request (refused admissions, refused border exports).
	logLim   *logging.Limiter
	host     host.Host
	kad      *kad.IpfsDHT
	msgr     *kadpb.ProtocolMessenger
	local    *records.ValueStore
	store    *recordStore
	val      *validator
	gate     *gate
	verifier *Verifier
	own      atomic.Pointer[ownProof] // replaced by Reload
	prefix   protocol.ID
	metrics  *dhtMetrics
	// closestPeers is the peer search of a publish and a gather
	// (kad-dht's GetClosestPeers; tests count or extend it).
	closestPeers func(ctx context.Context, key string) ([]peer.ID, error)

	// connsIn and connsOut count the libp2p connections opened
	// (Connections; the dht_connections_total metric).
	connsIn, connsOut atomic.Int64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool

	mu        sync.Mutex
	published map[pubKey]*Record // records this node keeps alive, per name and router
}

var _ Resolver = (*DHT)(nil)

// NewDHT starts a DHT node: a libp2p host on cfg.Listen with the node's
// Ed25519 identity, the membership gate, and kad-dht. It connects to the
// bootstrap peers it can reach (at least one if any are given) and returns
// once the node is serving; use WaitPeers to wait for a routing table.
func NewDHT(ctx context.Context, cfg DHTConfig) (*DHT, error) {
	if err := cfg.populate(); err != nil {
		return nil, err
	}
	d := &DHT{cfg: cfg, log: cfg.Logger, published: map[pubKey]*Record{}, logLim: logging.NewLimiter(0, 0, nil)}
	tier := "domain"
	d.gate = newGate(cfg.Certs, cfg.Domain.Name(), cfg.DenyFor, cfg.MaxDenied)
	d.verifier = &Verifier{Certs: cfg.Certs, Kind: KindLocation, Domain: cfg.Domain.Name(), trust: &d.gate.trust}
	d.prefix = DomainPrefix(cfg.Domain.Name())
	if cfg.Global {
		tier = "global"
		d.gate = newGate(cfg.Certs, pdu.Name{}, cfg.DenyFor, cfg.MaxDenied)
		d.verifier = &Verifier{Certs: cfg.Certs, Kind: KindBorder, trust: &d.gate.trust}
		d.prefix = GlobalPrefix
	}
	// "node", not "name": record logs carry the record's name under "name".
	d.log = d.log.With(zap.Stringer("node", cfg.Identity.Name), zap.String("tier", tier))
	var err error
	if d.metrics, err = newDHTMetrics(cfg.Registerer, tier); err != nil {
		return nil, fmt.Errorf("dht metrics: %w", err)
	}
	// Our own proof must pass our own gate, or peers will refuse us too.
	own := &MembershipProof{Meta: cfg.Identity.Meta, Member: cfg.Member, Domain: cfg.Domain}
	if _, err := d.gate.check(cfg.Identity.Meta.Key, own); err != nil && !cfg.trustOwnProof {
		return nil, fmt.Errorf("dht: own membership: %w", err)
	}
	proof, err := own.marshal()
	if err != nil {
		return nil, err
	}
	d.own.Store(&ownProof{member: cfg.Member, wire: proof})

	priv, err := crypto.UnmarshalEd25519PrivateKey(cfg.Identity.Key)
	if err != nil {
		return nil, fmt.Errorf("dht: node key: %w", err)
	}
	opts := append([]libp2p.Option{
		libp2p.Identity(priv),
		libp2p.ListenAddrStrings(cfg.Listen...),
		libp2p.Transport(libp2pquic.NewTransport),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.ConnectionGater(d.gate),
		// A dial shorter than a put: a peer that left fails its dial while
		// the query is still running, so kad-dht drops it from the routing
		// table (a dial cut short by the query's own deadline does not),
		// instead of every later publish waiting on it until PutTimeout.
		libp2p.WithDialTimeout(cfg.PutTimeout / 2),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		libp2p.UserAgent("gdpnet-resolver"),
	}, cfg.HostOptions...)
	d.host, err = libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("dht: libp2p host: %w", err)
	}
	boot, err := parseBootstrap(cfg.Bootstrap)
	if err != nil {
		d.host.Close()
		return nil, err
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.host.SetStreamHandler(d.prefix+"/member/1.0.0", d.handleProof)
	d.host.Network().Notify(&network.NotifyBundle{ConnectedF: d.connected})

	d.val = newValidator(d.verifier, func(r string) { d.metrics.refused.WithLabelValues(r).Inc() })
	val := d.val
	nsval := record.NamespacedValidator{recordNamespace: val}
	// The publisher stores its own records too (as kad-dht's PutValue
	// would), through a value store over kad-dht's own datastore, so the
	// local copy is validated, selected and stamped exactly like a remote one.
	// Both write through the record store (per-router bound, expiry sweep).
	d.store = newRecordStore(dssync.MutexWrap(ds.NewMapDatastore()), cfg.Identity.Name, cfg.MaxRecordsPerRouter,
		cfg.RecordAge, val.set, d.verifier.now, d.metrics, d.log)
	d.store.ownDomain, d.store.maxDomain = cfg.Domain.Name(), cfg.MaxRecordsPerDomain
	d.store.sel = val.Select
	d.local = records.NewValueStore(d.store, nsval, cfg.RecordAge)
	kopts := []kad.Option{
		kad.ValueDatastore(d.store),
		kad.ValueGCInterval(0), // the record store's own sweep (StoreSweep) replaces it
		kad.Mode(kad.ModeServer),
		kad.ProtocolPrefix(d.prefix),
		kad.Validator(nsval),
		kad.DisableProviders(),
		kad.MaxRecordAge(cfg.RecordAge),
		kad.BucketSize(cfg.BucketSize),
		kad.Concurrency(cfg.Concurrency),
		kad.RoutingTableFilter(func(_ any, p peer.ID) bool { return d.gate.isVerified(p) }),
		kad.QueryFilter(func(_ any, ai peer.AddrInfo) bool { return !d.gate.isDenied(ai.ID) }),
		// Used again whenever the routing table runs empty.
		kad.BootstrapPeers(boot...),
		kad.RoutingTableRefreshPeriod(cfg.RefreshInterval),
	}
	if cfg.Join == JoinSeeded {
		// kad-dht's automatic refresh starts with a full one: the seeded
		// join runs the periodic ones only (d.every below).
		kopts = append(kopts, kad.DisableAutoRefresh())
	}
	d.kad, err = kad.New(gatedHost{Host: d.host, d: d}, append(kopts, cfg.KadOptions...)...)
	if err != nil {
		d.cancel()
		d.host.Close()
		return nil, fmt.Errorf("dht: kad-dht: %w", err)
	}
	d.closestPeers = d.kad.GetClosestPeers
	if d.msgr, err = kadpb.NewProtocolMessenger(d.kad.MessageSender()); err != nil {
		d.Close()
		return nil, fmt.Errorf("dht: messenger: %w", err)
	}
	if err := d.join(ctx, cfg.Bootstrap); err != nil {
		d.Close()
		return nil, err
	}
	if cfg.Join == JoinSeeded {
		d.wg.Add(1)
		// Periodic refreshes, as kad-dht's automatic refresh would do after
		// its first (the seeded join skips only that first one).
		go d.every(d.cfg.RefreshInterval, func() { _ = d.kad.RefreshRoutingTable() }) // asynchronous; kad-dht logs failures
	}
	if d.cfg.BootstrapKeepalive > 0 {
		for _, info := range boot {
			if info.ID == d.host.ID() {
				continue
			}
			d.wg.Add(1)
			go d.keepBootstrap(info, d.cfg.BootstrapKeepalive)
		}
	}
	d.wg.Add(3)
	go d.republishLoop()
	go d.memberSweepLoop()
	go d.sweepLoop()
	d.log.Info("dht node started", zap.Strings("addrs", d.Addrs()), zap.String("protocol", string(d.prefix)),
		zap.String("join", cfg.Join), zap.Int("peers", d.PeerCount()))
	return d, nil
}

// Addrs are the node's listen multiaddrs with its /p2p/<peer id> suffix,
// the form Bootstrap takes.
func (d *DHT) Addrs() []string {
	info := peer.AddrInfo{ID: d.host.ID(), Addrs: d.host.Addrs()}
	mas, err := peer.AddrInfoToP2pAddrs(&info)
	if err != nil {
		return nil
	}
	out := make([]string, len(mas))
	for i, m := range mas {
		out[i] = m.String()
	}
	return out
}

// PeerID is the node's libp2p identity (derived from its Ed25519 key).
func (d *DHT) PeerID() peer.ID { return d.host.ID() }

// Connect dials the given peers (multiaddrs with /p2p/) and waits for their
// membership handshakes. It fails only if none of them could be admitted.
func (d *DHT) Connect(ctx context.Context, addrs ...string) error {
	if err := d.Dial(ctx, addrs...); err != nil || len(addrs) == 0 {
		return err
	}
	// Fill the routing table now rather than at the next refresh.
	select {
	case <-d.kad.ForceRefresh():
	case <-ctx.Done():
	}
	return nil
}

// join connects to the bootstrap peers at start. A round in which none
// was admitted is tried again, after 1 s, then twice as long each time up
// to 8 s, until BootstrapTimeout has passed since the start (default 0:
// one round, the error at once); every failed round is logged. Then,
// unless the join is seeded, the routing table is refreshed.
func (d *DHT) join(ctx context.Context, boot []string) error {
	if len(boot) == 0 {
		return nil
	}
	deadline := time.Now().Add(d.cfg.BootstrapTimeout)
	backoff := time.Second
	for round := 1; ; round++ {
		err := d.Dial(ctx, boot...)
		if err == nil {
			break
		}
		if ctx.Err() != nil || time.Now().Add(backoff).After(deadline) {
			return err
		}
		d.log.Warn("no bootstrap peer admitted; trying again", zap.Int("round", round),
			zap.Duration("backoff", backoff), zap.Error(err))
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		backoff = min(2*backoff, 8*time.Second)
	}
	if d.cfg.Join == JoinSeeded {
		return nil // the bootstrap peers are the table
	}
	// Fill the routing table now rather than at the next refresh.
	select {
	case <-d.kad.ForceRefresh():
	case <-ctx.Done():
	}
	return nil
}

// Dial is Connect without the routing table refresh that follows: the
// admitted peers enter the routing table, nothing else is looked up. The
// peers are dialled at once, each bounded by HandshakeTimeout, so one
// that does not answer delays the others by nothing. The simulator joins
// thousands of nodes this way, each to peers chosen from a sorted list of
// every node (its closest and one per distance).
func (d *DHT) Dial(ctx context.Context, addrs ...string) error {
	if len(addrs) == 0 {
		return nil
	}
	var (
		mu   sync.Mutex
		errs []error
		ok   int
		wg   sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for _, a := range addrs {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			fail(fmt.Errorf("bootstrap %q: %w", a, err))
			continue
		}
		info, err := peer.AddrInfoFromP2pAddr(m)
		if err != nil {
			fail(fmt.Errorf("bootstrap %q: %w", a, err))
			continue
		}
		if info.ID == d.host.ID() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, d.cfg.HandshakeTimeout)
			defer cancel()
			err := d.host.Connect(cctx, *info)
			if err == nil && !d.gate.wait(cctx, info.ID) {
				err = fmt.Errorf("peer did not prove membership")
			}
			if err != nil {
				fail(fmt.Errorf("bootstrap %s: %w", info.ID, err))
				return
			}
			mu.Lock()
			ok++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if ok == 0 && len(errs) > 0 {
		return fmt.Errorf("dht: no bootstrap peer admitted: %w", errors.Join(errs...))
	}
	for _, e := range errs {
		d.log.Warn("bootstrap peer unreachable", zap.Error(e))
	}
	return nil
}

// AddPeers puts peers (multiaddrs with /p2p/) in the routing table and
// their addresses in the peerstore without dialling them, and returns
// how many entered the table: a pre-warmed DHT, for a simulator that
// knows every node. A peer is dialled, and proves its membership (both
// ways, as any peer), when a lookup or put first uses it; one that fails
// is dropped from the table by kad-dht as any unreachable peer is. A
// deployment does not call it (its tables come from joins and lookups).
func (d *DHT) AddPeers(addrs ...string) (int, error) {
	infos, err := parseBootstrap(addrs)
	if err != nil {
		return 0, err
	}
	added := 0
	for _, info := range infos {
		if info.ID == d.host.ID() {
			continue
		}
		d.host.Peerstore().AddAddrs(info.ID, info.Addrs, peerstore.PermanentAddrTTL)
		// Replaceable: a peer the node actually talks to may take its
		// place in a full bucket.
		if ok, _ := d.kad.RoutingTable().TryAddPeer(info.ID, true, true); ok {
			added++
		}
	}
	return added, nil
}

// PeerCount is the number of peers in the routing table.
func (d *DHT) PeerCount() int { return d.kad.RoutingTable().Size() }

// Connections is how many libp2p connections this node has opened so
// far: accepted (in) and dialled (out). Each is a QUIC and TLS handshake,
// then identify and the membership proof both ways.
func (d *DHT) Connections() (in, out int64) { return d.connsIn.Load(), d.connsOut.Load() }

// OpenConnections is how many libp2p connections the node holds open.
func (d *DHT) OpenConnections() int { return len(d.host.Network().Conns()) }

// StoredNames is how many names (record sets) this node's store holds:
// its own and those peers put to it as one of a name's closest.
func (d *DHT) StoredNames() int {
	d.store.mu.Lock()
	defer d.store.mu.Unlock()
	return len(d.store.routers)
}

// AdmittedCount is the number of peers that proved membership.
func (d *DHT) AdmittedCount() int { return d.gate.count() }

// WaitPeers waits until the routing table holds at least n peers,
// refreshing it every two seconds meanwhile (a peer whose handshake timed
// out on a loaded machine is found again by the next refresh).
func (d *DHT) WaitPeers(ctx context.Context, n int) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	lastRefresh := time.Now()
	for d.PeerCount() < n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %d peers (have %d): %w", n, d.PeerCount(), ctx.Err())
		case <-t.C:
		}
		if time.Since(lastRefresh) > 2*time.Second {
			lastRefresh = time.Now()
			_ = d.kad.RefreshRoutingTable() // asynchronous; the result is the table size
		}
	}
	return nil
}

// Close stops republishing, the DHT and the host, and waits for the
// node's goroutines.
func (d *DHT) Close() error {
	if d.closed.Swap(true) {
		return nil
	}
	d.cancel()
	var errs []error
	if d.kad != nil {
		errs = append(errs, d.kad.Close())
	}
	errs = append(errs, d.host.Close())
	d.wg.Wait()
	return errors.Join(errs...)
}

// Published returns the records this node keeps alive.
func (d *DHT) Published() []*Record {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]*Record, 0, len(d.published))
	for _, r := range d.published {
		out = append(out, r)
	}
	return out
}

// pubKey identifies a published record: a node (a border on the global
// tier) may announce one name for several routers.
type pubKey struct{ name, router pdu.Name }

func keyOf(r *Record) pubKey { return pubKey{r.Name, r.Router()} }

// publishedFor returns the records this node announces for name.
func (d *DHT) publishedFor(name pdu.Name) []*Record {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*Record
	for k, r := range d.published {
		if k.name == name {
			out = append(out, r)
		}
	}
	return out
}

// Name is the node's principal name (its identity's).
func (d *DHT) Name() pdu.Name { return d.cfg.Identity.Name }

// parseBootstrap turns multiaddrs ending in /p2p/<id> into peer infos.
func parseBootstrap(addrs []string) ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	for _, a := range addrs {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			return nil, fmt.Errorf("dht: bootstrap %q: %w", a, err)
		}
		info, err := peer.AddrInfoFromP2pAddr(m)
		if err != nil {
			return nil, fmt.Errorf("dht: bootstrap %q: %w", a, err)
		}
		out = append(out, *info)
	}
	return out, nil
}
