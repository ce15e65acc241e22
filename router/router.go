package router

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/internal/clock"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/tunnel"
)

// Errors callers branch on.
var (
	ErrClosed    = errors.New("router: closed")
	ErrForbidden = errors.New("router: peer's domain is not allowed by policy")

	errAlreadyFace = errors.New("router: link is already a face")
)

// Deps are the router's injected parts: who it is, whom it trusts, and the
// transports and services it uses. Config says how; Deps says with what.
type Deps struct {
	// Identity is the router's name and key. Required.
	Identity *certs.Identity
	// Member is the router's membership certificate in Domain. Required:
	// it completes every route chain the router installs.
	Member *certs.Cert
	// Domain is the router's domain metadata. Required.
	Domain *certs.Metadata
	// Verifier holds the trusted domains. Default: trust Domain only.
	Verifier *certs.Verifier
	// Resolver is asked on a FIB miss and told about local routes. Nil:
	// no lookups (a miss is NO_ROUTE) and nothing published.
	Resolver resolver.Resolver
	// Dial opens a tunnel to a peer router. Nil: no configured peers are
	// dialled and no tunnel is opened on demand.
	Dial DialFunc
	// Logger; nil logs nothing.
	Logger *zap.Logger
	// Registry receives the router's collectors. Nil: a private registry
	// (see Router.Gatherer).
	Registry *prometheus.Registry
	// Now is the clock used for certificate checks, the advertisement
	// clock window and route expiry. Nil: clock.Now.
	Now func() time.Time
	// Classify says what a tunnel peer is (PeerBook.Classify). Nil: every
	// peer is an endpoint except configured peer routers.
	Classify func(peer pdu.Name) (FaceKind, pdu.Name, bool)
	// Tick is the housekeeping period: the coarse clocks (duplicate
	// window, route expiry checks) advance and expired routes go this
	// often. Zero: 50 ms. A simulator running thousands of routers in one
	// process sets it coarser, since every router's ticker wakes on it.
	Tick time.Duration
}

// DialFunc opens a tunnel to the router named peer at addr ("ip:port"),
// raw or QUIC, and returns it once the peer has proven its name.
type DialFunc func(ctx context.Context, peer pdu.Name, addr string, raw bool) (Link, error)

// ownCreds are the router's own credentials; replaced whole on reload.
type ownCreds struct {
	id     *certs.Identity
	meta   *certs.Metadata
	member *certs.Cert
	domain *certs.Metadata
}

// policy says which domains traffic may cross: which domains a face's
// peer (router or endpoint) may belong to.
type policy struct {
	own     pdu.Name // the router's own domain: always allowed
	trusted map[pdu.Name]bool
	allow   map[pdu.Name]bool // nil: every trusted domain
}

// withdrawn lists the domains p allowed that next does not (nil p, the
// first policy: none).
func (p *policy) withdrawn(next *policy) []pdu.Name {
	if p == nil {
		return nil
	}
	var gone []pdu.Name
	for _, d := range append([]pdu.Name{p.own}, slices.Collect(maps.Keys(p.trusted))...) {
		if p.allows(d) && !next.allows(d) && !slices.Contains(gone, d) {
			gone = append(gone, d)
		}
	}
	return gone
}

func (p *policy) allows(d pdu.Name) bool {
	if d == p.own {
		return true
	}
	if !p.trusted[d] {
		return false
	}
	return p.allow == nil || p.allow[d]
}

// Router is one gdpnet router. Create it with New, feed it links with
// Attach or Serve, and stop it with Drain or Close.
type Router struct {
	cfg  Config
	name pdu.Name
	log  *zap.Logger
	// logLim bounds the lines a peer's PDUs can cause (refused
	// advertisements and records, malformed control payloads).
	logLim *logging.Limiter
	// linkLim bounds the face attached and detached lines per peer, as
	// the tunnel's link lines (gdp_router_face_events_total counts each).
	linkLim *logging.Limiter
	reg     *prometheus.Registry
	met     *metrics
	now     func() time.Time
	res     resolver.Resolver
	dial    DialFunc

	classify func(peer pdu.Name) (FaceKind, pdu.Name, bool)

	fib     *FIB
	dedup   *dedup
	resolve *resolveQueue
	replay  *replayGuard

	own       atomic.Pointer[ownCreds]
	verif     atomic.Pointer[certs.Verifier]
	pol       atomic.Pointer[policy]
	addrs     []string
	ticks     atomic.Uint64 // coarse clock for dedup, in ticks of tickEvery
	tickEvery time.Duration // housekeeping period (Deps.Tick)
	nowNanos  atomic.Int64  // coarse wall clock for route expiry checks
	draining  atomic.Bool
	selfDirty atomic.Bool // credentials reloaded: republish the own record
	// reloaded is closed (and replaced) by every Reload: peer redials
	// waiting out a backoff try again at once with the new credentials.
	reloaded atomic.Pointer[chan struct{}]

	faces    sync.Map // Link -> *Face
	faceN    atomic.Int64
	nextFace atomic.Uint64
	ids      identities

	mu       sync.Mutex // guards peers and dialing
	peers    map[pdu.Name]*Face
	dialing  map[pdu.Name]chan struct{}
	upstream pdu.Name
	upRecs   upstreamRecords // records announced to the upstream
	downSem  chan struct{}   // downstream records being stored
	down     peerSlots       // downstream records being stored, per downstream router

	pubq *pubQueue
	seq  *resolver.Sequencer // sequence numbers of the records this router signs
	pubw pubWaits            // ADVERTISE results waiting for location records

	started time.Time
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closed  atomic.Bool
}

// DefaultTick is the housekeeping period unless Deps.Tick (the YAML's
// tick) says otherwise.
const DefaultTick = 50 * time.Millisecond

// New builds a router and starts its background work (expiry, resolver
// workers, publishing, configured peers). Close stops all of it.
func New(cfg Config, deps Deps) (*Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("router config: %w", err)
	}
	cfg = cfg.WithDefaults()
	if deps.Identity == nil || deps.Member == nil || deps.Domain == nil {
		return nil, errors.New("router: identity, membership and domain are required")
	}
	r := &Router{
		cfg:       cfg,
		name:      deps.Identity.Name,
		log:       deps.Logger,
		now:       deps.Now,
		res:       deps.Resolver,
		dial:      deps.Dial,
		classify:  deps.Classify,
		fib:       NewFIB(cfg.FIBSize),
		replay:    &replayGuard{last: make(map[replayKey]uint64), window: cfg.Advertise.ClockWindow.Std()},
		peers:     make(map[pdu.Name]*Face),
		upRecs:    upstreamRecords{recs: make(map[pdu.Name]*resolver.Record)},
		downSem:   make(chan struct{}, maxDownstreamInFlight),
		dialing:   make(map[pdu.Name]chan struct{}),
		ids:       identities{m: make(map[pdu.Name]*idShare)},
		pubq:      newPubQueue(cfg.Resolver.PublishQueuePerIdentity),
		tickEvery: deps.Tick,
	}
	if r.tickEvery <= 0 {
		r.tickEvery = DefaultTick
	}
	seqPath := ""
	if cfg.StateDir != "" {
		if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
			return nil, fmt.Errorf("router state_dir: %w", err)
		}
		// one file per router identity: routers sharing a directory
		// keep their own floors
		seqPath = filepath.Join(cfg.StateDir, resolver.SequenceFileName+"-"+deps.Identity.Name.String())
	}
	seq, err := resolver.OpenSequencer(seqPath)
	if err != nil {
		return nil, fmt.Errorf("router state_dir: %w", err)
	}
	r.seq = seq
	if r.log == nil {
		r.log = zap.NewNop()
	}
	if r.now == nil {
		r.now = clock.Now
	}
	r.logLim = logging.NewLimiter(0, 0, r.now)
	r.linkLim = logging.NewBurstLimiter(0, tunnel.LinkLogBurst, 0, r.now)
	r.started = r.now()
	reloaded := make(chan struct{})
	r.reloaded.Store(&reloaded)
	if !cfg.Dedup.Disabled {
		r.dedup = newDedup(cfg.Dedup.Slots, uint64(cfg.Dedup.Window.Std()/r.tickEvery)+1)
	}
	if cfg.Upstream != nil {
		r.upstream = *cfg.Upstream
	}
	r.addrs = cfg.Addrs
	if len(r.addrs) == 0 {
		if ap, err := netip.ParseAddrPort(cfg.Listen); err == nil && !ap.Addr().IsUnspecified() {
			r.addrs = []string{ap.String()}
		}
	}
	v := deps.Verifier
	if v == nil {
		v = certs.NewVerifier(deps.Domain)
	}
	if err := r.Reload(deps.Identity, deps.Member, deps.Domain, v, cfg.AllowDomains); err != nil {
		return nil, err
	}
	if r.res != nil {
		r.resolve = newResolveQueue(r)
	}
	r.reg = deps.Registry
	if r.reg == nil {
		r.reg = prometheus.NewRegistry()
	}
	r.met = newMetrics(r.reg, r)
	r.tick()
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.goRun(r.housekeeping)
	if r.resolve != nil {
		for range cfg.Resolver.Workers {
			r.goRun(r.resolve.worker)
		}
		r.goRun(r.publisher)
	}
	for _, p := range cfg.Peers {
		r.goRun(func(ctx context.Context) { r.keepPeer(ctx, p) })
	}
	return r, nil
}

// tryGo runs f on a goroutine of r.wg unless r is closed (false then).
// The wg.Add happens under r.mu, which Close takes to mark the router
// closed, so it never races Close's wg.Wait.
func (r *Router) tryGo(f func()) bool {
	r.mu.Lock()
	if r.closed.Load() {
		r.mu.Unlock()
		return false
	}
	r.wg.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		f()
	}()
	return true
}

func (r *Router) goRun(f func(ctx context.Context)) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f(r.ctx)
	}()
}

// Name is the router's name.
func (r *Router) Name() pdu.Name { return r.name }

// FIB exposes the forwarding table (read-only use: admin, tests).
func (r *Router) FIB() *FIB { return r.fib }

// PublishPending is the number of location-record jobs accepted and not yet
// published or withdrawn (gdp_router_publish_pending): until it is 0, a
// name this router just accepted may not be resolvable from other routers.
func (r *Router) PublishPending() int { return r.pubq.waiting() }

// Gatherer is the registry holding the router's metrics.
func (r *Router) Gatherer() prometheus.Gatherer { return r.reg }

// CheckReload reports whether Reload would refuse its arguments, changing
// nothing (Node.Reload asks it before it changes the tunnel's identity).
func (r *Router) CheckReload(id *certs.Identity, member *certs.Cert, domain *certs.Metadata, v *certs.Verifier) error {
	if id.Name != r.name {
		return fmt.Errorf("router: reload: identity %s is not this router (%s)", id.Name, r.name)
	}
	if _, _, err := v.VerifyMember(id.Meta, member, domain); err != nil {
		return fmt.Errorf("router: own membership: %w", err)
	}
	return nil
}

// Reload replaces the router's credentials, trusted domains and domain
// policy (SIGHUP). The name cannot change: a new key is a new router.
func (r *Router) Reload(id *certs.Identity, member *certs.Cert, domain *certs.Metadata, v *certs.Verifier, allow []pdu.Name) error {
	if err := r.CheckReload(id, member, domain, v); err != nil {
		return err
	}
	p := &policy{own: domain.Name(), trusted: make(map[pdu.Name]bool, len(v.Trusted))}
	for n := range v.Trusted {
		p.trusted[n] = true
	}
	if len(allow) > 0 {
		p.allow = make(map[pdu.Name]bool, len(allow))
		for _, n := range allow {
			p.allow[n] = true
		}
	}
	r.own.Store(&ownCreds{id: id, meta: id.Meta, member: member, domain: domain})
	r.verif.Store(v)
	old := r.pol.Swap(p)
	r.selfDirty.Store(true)
	closed := r.enforcePolicy(p)
	if gone := old.withdrawn(p); len(gone) > 0 {
		// Routes learnt from resolver records are believed only under the
		// trust they were verified with: each hop names the domains whose
		// records proved it (Session 18), and one proven only by domains
		// withdrawn goes — its destination is looked up again under the
		// new trust (the resolver's cache is purged on the same reload),
		// so nothing verified only by a withdrawn domain is forwarded to.
		// Routes proven by a domain still trusted stay (before, every
		// learnt route went, and each destination in use waited for a
		// lookup).
		dropped, kept := r.fib.Untrust(p.allows)
		r.log.Info("trust withdrawn: faces of those domains closed, routes learnt from their records dropped (looked up again under the new trust)",
			zap.Stringers("domains", gone), zap.Int("faces_closed", closed), zap.Int("learned_routes_dropped", dropped), zap.Int("learned_routes_kept", kept))
	}
	next := make(chan struct{})
	close(*r.reloaded.Swap(&next))
	return nil
}

// reloadSignal is closed by the next Reload.
func (r *Router) reloadSignal() <-chan struct{} { return *r.reloaded.Load() }

// enforcePolicy closes every face whose peer's domain p no longer allows
// (a reload narrowed allow_domains): its routes go, and a new tunnel from
// it is refused at Attach.
func (r *Router) enforcePolicy(p *policy) (closed int) {
	r.faces.Range(func(_, v any) bool {
		f := v.(*Face)
		if !p.allows(f.domain) && !f.closed.Load() {
			r.met.facesRefused.WithLabelValues("forbidden_domain").Inc()
			r.log.Info("face closed: domain no longer allowed", logging.Face(f.id), logging.Peer(f.peer), zap.Stringer("domain", f.domain))
			r.detach(f)
			closed++
		}
		return true
	})
	return closed
}

func (r *Router) verifier() *certs.Verifier { return r.verif.Load() }
func (r *Router) policy() *policy           { return r.pol.Load() }

func (r *Router) tick() {
	now := r.now()
	r.nowNanos.Store(now.UnixNano())
	r.ticks.Store(uint64(now.UnixNano() / int64(r.tickEvery)))
}

// housekeeping advances the coarse clocks and expires routes.
func (r *Router) housekeeping(ctx context.Context) {
	t := time.NewTicker(r.tickEvery)
	defer t.Stop()
	lastSweep := time.Now()
	// The constructor's Reload marked the own record dirty; this first
	// publish is the one it asks for (was: a second at the first tick).
	r.selfDirty.Store(false)
	r.publishSelf()
	lastSelf := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.tick()
		r.expire(r.now())
		if time.Since(lastSweep) > time.Minute {
			r.replay.sweep(r.now())
			lastSweep = time.Now()
		}
		if time.Since(lastSelf) > selfRecordLifetime/2 || r.selfDirty.Swap(false) {
			r.publishSelf()
			lastSelf = time.Now()
		}
	}
}

// expire removes routes whose chain (or cached record) has expired.
func (r *Router) expire(now time.Time) {
	if next := r.fib.NextExpiry(); next.IsZero() || next.After(now) {
		return
	}
	for _, e := range r.fib.Expire(now) {
		if e.Hop.Origin != OriginLocal {
			continue
		}
		e.Hop.Face.dropName(e.Name)
		r.log.Info("route expired", logging.Name(e.Name), logging.Face(e.Hop.Face.id), logging.Expiry(e.Hop.Expiry))
		r.routeGone(e.Hop.Face.peer, e.Name, "expiry")
	}
}

// Attach makes l a face of the given kind. Every face's peer — router or
// endpoint — must be in a domain the policy allows (domain is the issuer of
// the membership the tunnel verified); the router's own domain always is.
// A zero domain for an endpoint means the router's own domain (an
// in-process attachment whose membership the caller checked). The face
// lives until l goes down, the policy stops allowing its domain, or the
// router closes.
func (r *Router) Attach(l Link, kind FaceKind, domain pdu.Name, addr string) (*Face, error) {
	if r.closed.Load() {
		return nil, ErrClosed
	}
	if kind == FaceEndpoint && domain.IsZero() {
		domain = r.own.Load().domain.Name()
	}
	if !r.policy().allows(domain) {
		r.met.facesRefused.WithLabelValues("forbidden_domain").Inc()
		return nil, fmt.Errorf("%w: %s in domain %s", ErrForbidden, l.Peer(), domain)
	}
	foreign := domain != r.own.Load().domain.Name()
	share, err := r.ids.acquire(l.Peer(), domain, foreign, r.cfg.Face.MaxPerIdentity, r.cfg.Face.MaxPerDomain, func() *tokenBucket {
		return newTokenBucket(r.cfg.Advertise.Rate, r.cfg.Advertise.Burst)
	}, func() *tokenBucket {
		return newTokenBucket(r.cfg.Advertise.DomainRate, r.cfg.Advertise.DomainBurst)
	}, func() *tokenBucket {
		return domainRateFloor(r.cfg.Advertise.DomainRate, r.cfg.Advertise.DomainBurst, r.cfg.Face.MaxPerDomain)
	})
	if err != nil {
		if errors.Is(err, errDomainTunnelQuota) {
			r.met.quota(quotaDomainTunnels)
		} else {
			r.met.quota(quotaTunnels)
		}
		return nil, err
	}
	f := &Face{
		id:        r.nextFace.Add(1),
		kind:      kind,
		peer:      l.Peer(),
		domain:    domain,
		link:      l,
		addr:      addr,
		since:     time.Now(),
		ingress:   newTokenBucket(r.cfg.Face.RatePPS, r.cfg.Face.Burst),
		naks:      newTokenBucket(r.cfg.Face.NAKRate, r.cfg.Face.NAKBurst),
		share:     share,
		direct:    directSender(l),
		out:       make(chan egress, r.cfg.Face.Queue),
		maxQueued: int64(max(r.cfg.Face.QueueBytes, 0)),
		shares:    newQueueShares(r.cfg.Face.Queue, r.cfg.Face.QueueBytes),
		stop:      make(chan struct{}),
	}
	if _, loaded := r.faces.LoadOrStore(l, f); loaded {
		r.ids.release(share)
		return nil, fmt.Errorf("%w: %s", errAlreadyFace, l.Peer())
	}
	r.faceN.Add(1)
	if kind == FaceRouter {
		r.mu.Lock()
		if old := r.peers[f.peer]; old == nil || old.closed.Load() {
			r.peers[f.peer] = f
		}
		r.mu.Unlock()
	}
	r.met.faceEvents.WithLabelValues("attached").Inc()
	r.linkLim.Info(r.log, f.peer.String(), "face attached", logging.Face(f.id), logging.Peer(f.peer), zap.Stringer("kind", kind), logging.Addr(addr))
	if p := r.policy(); !p.allows(domain) {
		// A reload narrowed the policy between the check above and now.
		r.detach(f)
		return nil, fmt.Errorf("%w: %s in domain %s", ErrForbidden, l.Peer(), domain)
	}
	// Close may have begun between the check at the top and here: the
	// goroutines are added to r.wg only under r.mu, which Close takes to
	// mark the router closed, so a wg.Add never races Close's wg.Wait.
	r.mu.Lock()
	if r.closed.Load() {
		r.mu.Unlock()
		r.detach(f)
		return nil, ErrClosed
	}
	r.wg.Add(2)
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		f.writer()
	}()
	go func() {
		defer r.wg.Done()
		select {
		case <-l.Done():
		case <-r.ctx.Done():
		}
		r.detach(f)
	}()
	return f, nil
}

// detach removes a face and every route through it.
func (r *Router) detach(f *Face) {
	if f.closed.Swap(true) {
		return
	}
	close(f.stop)
	r.faces.Delete(f.link)
	r.faceN.Add(-1)
	if f.kind == FaceRouter {
		r.mu.Lock()
		if r.peers[f.peer] == f {
			delete(r.peers, f.peer)
		}
		r.mu.Unlock()
	}
	names := r.fib.RemoveFace(f)
	for _, n := range names {
		if f.kind == FaceEndpoint {
			r.routeGone(f.peer, n, "disconnect")
		}
	}
	f.dropAllNames()
	r.ids.release(f.share)
	_ = f.link.Close()
	r.met.faceEvents.WithLabelValues("detached").Inc()
	r.linkLim.Info(r.log, f.peer.String(), "face detached", logging.Face(f.id), logging.Peer(f.peer), zap.Int("routes", len(names)))
}

func (r *Router) faceFor(l Link) *Face {
	v, ok := r.faces.Load(l)
	if !ok {
		return nil
	}
	return v.(*Face)
}

func (r *Router) faceCount() int { return int(r.faceN.Load()) }

// Faces lists the attached faces.
func (r *Router) Faces() []FaceInfo {
	var out []FaceInfo
	r.faces.Range(func(_, v any) bool {
		out = append(out, v.(*Face).info())
		return true
	})
	return out
}

// Drain prepares a graceful stop: it refuses new work, withdraws every local
// route from the resolver so traffic moves elsewhere, and waits (bounded by
// ctx) for the withdrawals to be sent. Close follows.
func (r *Router) Drain(ctx context.Context) {
	r.draining.Store(true)
	seen := map[pdu.Name]bool{}
	r.fib.Walk(func(n pdu.Name, hops []Hop) bool {
		for _, h := range hops {
			if h.Origin == OriginLocal {
				seen[n] = true
			}
		}
		return true
	})
	seen[r.name] = true // and the router's own record
	for n := range seen {
		r.unpublish(r.name, n)
	}
	for r.pubq.waiting() > 0 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
}

// Close stops the router: background work ends, every face is detached.
func (r *Router) Close() error {
	r.mu.Lock()
	was := r.closed.Swap(true)
	r.mu.Unlock()
	if was {
		return nil
	}
	r.draining.Store(true)
	if r.resolve != nil {
		r.resolve.stop()
	}
	r.cancel()
	r.wg.Wait()
	r.stopWaiters()
	return nil
}
