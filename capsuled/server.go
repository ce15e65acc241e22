package capsuled

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/advert"
	"github.com/gdpnet/gdpnet/capsuled/store"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/internal/clock"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

// Deps are the server's injected parts.
type Deps struct {
	// Identity is the server's name and key. Required.
	Identity *certs.Identity
	// Client is the server's attachment to its router, for Identity.
	// Required. The server consumes its Receive queue and closes it on
	// Close.
	Client *client.Client
	// Logger; nil logs nothing.
	Logger *zap.Logger
	// Registry receives the server's collectors; nil: a private registry.
	Registry prometheus.Registerer
}

// Server is one capsule server.
type Server struct {
	syncLog syncFailures

	cfg  Config
	id   *certs.Identity
	name pdu.Name
	cli  *client.Client
	st   *store.Store
	log  *zap.Logger
	// logLim bounds the lines a requester can cause per request (refused
	// placements, writer conflicts, forked writers).
	logLim *logging.Limiter
	met    *metrics

	places *placements
	pol    atomic.Pointer[policy] // placement policy and subscription limits; Reload swaps them
	dels   deletes
	warned sync.Map // pdu.Name -> time.Time: the AdCert NotAfter already warned about
	pend   *wire.Pending
	subs   *subscriptions
	watch  *watchers

	bulk  *bulkState // nil: bulk reads off (bulk.go)
	queue *requestQueue
	// reqs remembers which source names proved which identity.
	reqs *requesterCache
	// queueWarned is when the last "request queue full" WARN was logged
	// (unix nanoseconds): at most one a minute.
	queueWarned atomic.Int64
	kick        chan pdu.Name
	sync        *syncState
	// syncAnswers counts the SYNCs being answered per peer
	// (SyncAnswersPerPeer).
	syncAnswers peerCount
	// createWaits counts each requester's CREATEs under way off the
	// workers (Config.CreatesPerPeer).
	createWaits peerCount
	// appendWaits counts each requester's APPENDs waiting off the workers
	// for their predecessors (appendWaitsPerPeer).
	appendWaits peerCount
	// creating holds the CREATEs being served, by source and request id:
	// a client's re-sent copy of one that waits for its location record
	// is dropped instead of taking another worker (the answer to the
	// first copy answers it).
	creating sync.Map // createKey -> struct{}
	// storage and groupStorage cache each requester's and each group's
	// bytes stored (storage.go).
	storage      storageSums
	groupStorage storageSums
	repl         replState // peers' heads as last learnt (Status)
	draining     atomic.Bool
	inflight     sync.WaitGroup

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// request is one decoded command waiting for a worker.
type request struct {
	from  pdu.Name // the requester, where the answer goes
	dst   pdu.Name // the name it was addressed to
	msg   *wire.Message
	asker // whose shares it counts in (askerOf)
}

// New opens the server's store and placements under cfg.Dir, advertises
// every capsule it holds (bounded by ctx) and starts serving.
func New(ctx context.Context, cfg Config, deps Deps) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if deps.Identity == nil || deps.Client == nil {
		return nil, errors.New("capsuled: identity and client are required")
	}
	log := deps.Logger
	if log == nil {
		log = zap.NewNop()
	}
	log = log.With(logging.Name(deps.Identity.Name))
	reg := deps.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	places, err := openPlacements(filepath.Join(cfg.Dir, "placements"))
	if err != nil {
		return nil, err
	}
	// Read at each check: a reload may replace the domain (its key).
	places.own = deps.Client.Domain
	if deps.Client.Credentials() == nil {
		log.Warn("the server's client holds no membership to verify requesters with: every CREATE counts in the unproven requesters' pool (placement.max_per_domain); attach it through a client.Endpoint",
			logging.Reason("no_credentials"))
	}
	st, err := store.Open(filepath.Join(cfg.Dir, "store"), store.Options{Engine: cfg.Engine, MaxData: cfg.MaxData, MinFreeBytes: cfg.MinFreeBytes, Logger: log,
		ReadAheadBytes: cfg.ReadAheadBytes, ReadAheadStreams: cfg.ReadAheadStreams, ReadAheadTotal: cfg.ReadAheadTotal, ReadAheadIdle: cfg.ReadAheadIdle})
	if err != nil {
		return nil, fmt.Errorf("capsuled: %w", err)
	}
	if err := registerStoreMetrics(reg, st); err != nil {
		st.Close()
		return nil, fmt.Errorf("capsuled: metrics: %w", err)
	}
	// Requests dropped before the per-requester queue sees them (the
	// endpoint's inbox is one for every source, SECURITY.md §3), and echo
	// answers (gdp ping of the server) dropped while the link held a send
	// (Session 21: 64 places, shared per requester identity).
	inbox := deps.Client
	for _, c := range []struct {
		name, help string
		n          *atomic.Uint64
	}{
		{"inbox_dropped_total", "PDUs dropped before the request queue because the server's endpoint inbox (client.Options.InboxSize) was full: one inbox for every source, bounded only by the routers' per-face rate.", &inbox.Dropped},
		{"inbox_share_dropped_total", "Of inbox_dropped_total, the PDUs dropped because their source held its share of the inbox: past half full, a source holding InboxSize/(k+1), k the sources waiting (Session 14).", &inbox.DroppedShare},
		{"echoes_dropped_total", "Echo answers (gdp ping of this server) dropped because the link's send queue stayed full and 64 answers were already queued, or their requester held its share of them.", &inbox.EchoesDropped},
		{"echoes_share_dropped_total", "Of echoes_dropped_total, the answers dropped because their requester (its identity) held its share of the 64 places: past 32 queued, 64/(k+1), k the requesters with answers queued (Session 21).", &inbox.EchoesDroppedShare},
	} {
		n := c.n
		if err := reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "capsuled", Name: c.name, Help: c.help},
			func() float64 { return float64(n.Load()) })); err != nil {
			st.Close()
			return nil, fmt.Errorf("capsuled: metrics: %w", err)
		}
	}
	s := &Server{
		cfg: cfg, id: deps.Identity, name: deps.Identity.Name, cli: deps.Client, st: st, log: log, met: newMetrics(reg),
		logLim: logging.NewLimiter(0, 0, clock.Now),
		places: places, pend: wire.NewPending(), watch: newWatchers(),
		queue: newRequestQueue(cfg.Queue), reqs: newRequesterCache(cfg.RequesterCache, cfg.RequesterCachePerIdentity), kick: make(chan pdu.Name, 64),
	}
	s.pol.Store(policyOf(cfg))
	s.registerLag(reg)
	s.subs = newSubscriptions(s)
	s.sync = newSyncState(cfg.SyncParallel)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.advertiseAtStart(ctx, s.routes())
	s.cli.Maintain(s.ctx, s.routes, 5*time.Second)
	// The endpoint inbox before the receive loop is shared per proven
	// identity too (Session 17): a source name whose proof the cache holds
	// counts as its identity's.
	s.cli.SetInboxShare(s.reqs.inboxShare)
	s.goRun(s.receive)
	for range cfg.Workers {
		s.goRun(s.worker)
	}
	s.goRun(s.antiEntropy)
	if err := s.startBulk(reg); err != nil {
		_ = s.Close()
		return nil, err
	}
	s.log.Info("capsule server up", zap.Int("capsules", len(st.Capsules())))
	return s, nil
}

func (s *Server) goRun(f func(ctx context.Context)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f(s.ctx)
	}()
}

// Name is the server's own name.
func (s *Server) Name() pdu.Name { return s.name }

// Store exposes the store (read-only use: tests, the CLI's info).
func (s *Server) Store() *store.Store { return s.st }

// routes are the names the server advertises: its own and every capsule
// placed on it with an AdCert that has not expired.
func (s *Server) routes() []client.Route {
	out := []client.Route{s.cli.Self()}
	now := clock.Now()
	for _, p := range s.places.all() {
		s.checkExpiry(p, now)
		if p.adcert.ValidAt(now) {
			out = append(out, client.CapsuleRoute(p.meta, p.adcert))
		}
	}
	return out
}

// advertiseConfirmed advertises routes and waits, at most PublishWait in
// all, until the router confirms their location records are in the
// resolver (PROTOCOL.md §5.4). A router older than that wait (§5.2 key 5)
// refuses the ADVERTISE as malformed: then they are advertised as before,
// and old is that refusal (the caller says what it means for it).
func (s *Server) advertiseConfirmed(ctx context.Context, routes ...client.Route) (res []advert.NameResult, old *client.NAKError, err error) {
	res, err = s.cli.AdvertisePublished(ctx, s.cfg.PublishWait, routes...)
	if errors.As(err, &old) && old.Code == pdu.CodeMalformed {
		res, err = s.cli.Advertise(ctx, routes...)
		return res, old, err
	}
	return res, nil, err
}

// advertiseAtStart advertises the server's own name and its capsules'
// and waits, at most PublishWait in all, until the router confirms their
// location records (advertiseConfirmed): a client behind another router
// that sends a CREATE or a read right after the server is up then finds
// it, instead of NO_ROUTE — which that router would also remember for its
// negative TTL. Names not confirmed in time are advertised all the same
// (one WARN): they become resolvable when the router's publisher gets to
// them.
func (s *Server) advertiseAtStart(ctx context.Context, routes []client.Route) {
	res, old, err := s.advertiseConfirmed(ctx, routes...)
	if old != nil {
		s.log.Warn("the router does not confirm location records (an older version): the server is up before other routers can resolve its capsules; upgrade the router",
			logging.Peer(old.Reporter), logging.Reason("router_without_publish_wait"))
	}
	if err != nil {
		// Refused names are in err (a *client.RefusedError), the
		// accepted ones are installed all the same.
		s.log.Warn("advertising held capsules", zap.Error(err))
	}
	pending := 0
	for _, r := range res {
		if r.Status == advert.StatusOK && r.Published == advert.PublishPending {
			pending++
		}
	}
	if pending > 0 {
		s.log.Warn("names not yet resolvable from other routers: the router did not confirm their location records within publish_wait; they become resolvable when it does (check the router's resolver: gdp_router_publish_retries_total)",
			zap.Int("names", pending), zap.Int("advertised", len(routes)), zap.Duration("publish_wait", s.cfg.PublishWait),
			logging.Reason("unpublished_at_start"))
	}
}

// Drain stops taking requests (they are answered "unavailable"), withdraws
// the capsules' names so readers and writers go to other replicas, and
// waits for requests in progress, bounded by ctx. Close follows.
func (s *Server) Drain(ctx context.Context) {
	s.draining.Store(true)
	var names []pdu.Name
	for _, p := range s.places.all() {
		names = append(names, p.name)
	}
	if len(names) > 0 {
		if _, err := s.cli.Withdraw(ctx, names...); err != nil {
			s.log.Warn("withdrawing capsules", zap.Error(err))
		}
	}
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// Close stops every goroutine, closes the client and the store (which
// waits for queued writes to become durable).
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		s.draining.Store(true)
		s.cancel()
		s.pend.Close()
		cerr := s.cli.Close()
		s.wg.Wait()
		s.subs.closeAll()
		err = errors.Join(s.st.Close(), ignoreClosed(cerr))
	})
	return err
}

func ignoreClosed(err error) error {
	if errors.Is(err, client.ErrClosed) {
		return nil
	}
	return err
}

// receive takes every PDU the client delivers: responses to the server's
// own requests (anti-entropy) go to their waiters, requests to the queue.
func (s *Server) receive(ctx context.Context) {
	for {
		m, err := s.cli.Receive(ctx)
		if err != nil {
			return
		}
		if m.Type == pdu.TypeNAK {
			if !s.sync.nak(s.name, m) {
				s.met.dropped.WithLabelValues("nak").Inc()
			}
			continue
		}
		if m.Type != pdu.TypeData {
			s.met.dropped.WithLabelValues("not_data").Inc()
			continue
		}
		s.sync.heard(m.Src)
		msg, err := wire.Unmarshal(m.Payload)
		if err != nil {
			s.met.dropped.WithLabelValues("malformed").Inc()
			s.log.Debug("malformed capsule message", logging.Src(m.Src), zap.Error(err))
			continue
		}
		if msg.IsResponse() {
			if err := s.pend.Deliver(m.Src, msg); err != nil {
				s.met.dropped.WithLabelValues(dropReason(err)).Inc()
				if errors.Is(err, wire.ErrWrongSource) {
					s.log.Debug("answer from a node that was not asked", logging.Src(m.Src), zap.Stringer("op", msg.Op))
				}
			}
			continue
		}
		if msg.Op == wire.OpEvent {
			s.met.dropped.WithLabelValues("unexpected_event").Inc()
			continue
		}
		r := request{from: m.Src, dst: m.Dst, msg: msg}
		if s.draining.Load() {
			s.reply(r, r.msg.Reply(wire.StatusUnavailable), "draining")
			continue
		}
		r.asker = s.askerOf(m.Src, msg.Proof)
		s.inflight.Add(1) // before the hand-over: the worker's Done may come first
		evicted, holder, ok := s.queue.push(r)
		switch {
		case !ok:
			s.inflight.Done()
			s.met.queueRefused.WithLabelValues("full").Inc()
			s.warnQueueFull(holder)
			s.reply(r, r.msg.Reply(wire.StatusUnavailable), "overloaded: request queue full; retry later")
		case evicted != nil:
			s.inflight.Done()
			s.met.queueRefused.WithLabelValues("evicted").Inc()
			s.warnQueueFull(holder)
			s.reply(*evicted, evicted.msg.Reply(wire.StatusUnavailable), "overloaded: this requester holds the most of the full request queue; retry later")
		}
	}
}

// warnQueueFull logs, at most once a minute, that the request queue is
// full and who holds most of it.
func (s *Server) warnQueueFull(holder pdu.Name) {
	now := time.Now().UnixNano()
	last := s.queueWarned.Load()
	if now-last < int64(time.Minute) || !s.queueWarned.CompareAndSwap(last, now) {
		return
	}
	s.log.Warn("request queue full: requests answered 503 overloaded, the largest holder's first",
		logging.Src(holder), zap.Int("queue", s.cfg.Queue), zap.Int("workers", s.cfg.Workers),
		zap.String("fix", "if src is one member flooding, its share is what it loses (gdp_capsuled_queue_refused_total); if load is honest, raise workers or add replicas"))
}

func (s *Server) worker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.queue.ready:
			if r, ok := s.queue.pop(); ok {
				s.serve(ctx, r)
				s.inflight.Done()
			}
		}
	}
}

// serve runs one request and sends its answer.
func (s *Server) serve(ctx context.Context, r request) {
	var resp *wire.Message
	switch r.msg.Op {
	case wire.OpCreate:
		// A CREATE waits for the router to confirm the location record
		// (up to PublishWait): it waits on its own goroutine, so a slow
		// resolver never holds the workers that serve reads, appends and
		// syncs; each requester has CreatesPerPeer of those at once (a
		// proven identity over all its names, every requester that proved
		// nothing together: Session 16).
		// A copy the client re-sent while its CREATE waits is dropped.
		k := createKey{r.from, r.msg.ID}
		if _, busy := s.creating.LoadOrStore(k, struct{}{}); busy {
			s.met.dropped.WithLabelValues("create_in_progress").Inc()
			return
		}
		share := r.asker.shareOf(r.from)
		if !s.createWaits.admit(share, s.cfg.CreatesPerPeer) {
			s.creating.Delete(k)
			reason := refuseCreates
			if r.asker.ident == unprovenGroup {
				reason = refuseCreatesUnproven
			}
			s.met.placementsRefused.WithLabelValues(reason).Inc()
			resp = fail(r.msg, fmt.Errorf("create: %w: %d CREATEs of this requester are waiting for their location records (creates_per_peer); retry later",
				errBusy, s.cfg.CreatesPerPeer))
			break
		}
		s.wg.Add(1)
		s.inflight.Add(1) // a drain waits for it as for any request
		go func() {
			defer s.wg.Done()
			defer s.inflight.Done()
			defer s.createWaits.release(share)
			defer s.creating.Delete(k)
			if resp := s.handleCreate(ctx, r); resp != nil {
				s.reply(r, resp, "")
			}
		}()
		return
	case wire.OpAppend:
		// A batch that starts beyond the head waits for its predecessors
		// (the store's reorder window, then ReorderWait): it waits on its
		// own goroutine, so the worker is free to serve the predecessor
		// queued behind it (with one worker, or as many reordered batches
		// as workers, they used to wait for each other until the later
		// batch was refused as a gap). Each requester has
		// appendWaitsPerPeer of those — a proven identity over all its
		// names, every requester that proved nothing together (Session
		// 17; before, per source name: a member holding many names had as
		// many shares, and as many goroutines); beyond, it waits on the
		// worker, counted.
		if s.startsBeyondHead(r.msg) {
			share := r.asker.shareOf(r.from)
			if s.appendWaits.admit(share, appendWaitsPerPeer) {
				s.wg.Add(1)
				s.inflight.Add(1)
				go func() {
					defer s.wg.Done()
					defer s.inflight.Done()
					defer s.appendWaits.release(share)
					s.reply(r, s.handleAppend(ctx, r), "")
				}()
				return
			}
			s.met.appendWaitsLimited.WithLabelValues(r.asker.shareLabel()).Inc()
		}
		resp = s.handleAppend(ctx, r)
	case wire.OpRead:
		resp = s.handleRead(r)
	case wire.OpSubscribe:
		resp = s.handleSubscribe(r)
	case wire.OpUnsubscribe:
		resp = s.handleUnsubscribe(r)
	case wire.OpMetadata:
		resp = s.handleMetadata(r)
	case wire.OpProof:
		resp = s.handleProof(r)
	case wire.OpSync:
		resp = s.handleSync(r)
	case wire.OpDelete:
		resp = s.handleDelete(ctx, r)
	default:
		resp = r.msg.Reply(wire.StatusBadRequest)
		resp.Error = "unsupported operation"
	}
	if resp == nil {
		return // a duplicate left unanswered on purpose (counted where decided)
	}
	s.reply(r, resp, "")
}

// reply sends resp to the requester from the server's own name, so a
// writer that fanned an APPEND out can tell the replicas apart.
func (s *Server) reply(r request, resp *wire.Message, why string) {
	if why != "" && resp.Error == "" {
		resp.Error = why
	}
	s.met.requests.WithLabelValues(r.msg.Op.String(), resp.Status.String()).Inc()
	b, err := resp.Marshal()
	if err != nil {
		s.log.Error("encoding a response", zap.Stringer("op", r.msg.Op), zap.Error(err))
		resp = r.msg.Reply(wire.StatusInternal)
		resp.Error = "response does not fit a pdu"
		if b, err = resp.Marshal(); err != nil {
			return
		}
	}
	if _, err := s.cli.SendFrom(s.name, r.from, 0, b); err != nil {
		s.met.dropped.WithLabelValues("send_error").Inc()
	}
}

// fail builds a failure response for err.
func fail(m *wire.Message, err error) *wire.Message {
	resp := m.Reply(statusOf(err))
	resp.Error = clip(err.Error())
	return resp
}

func clip(s string) string {
	if len(s) > 1000 {
		return s[:1000]
	}
	return s
}

// dropReason is the dropped_total label of an answer Deliver refused.
func dropReason(err error) string {
	switch {
	case errors.Is(err, wire.ErrWrongSource):
		return "wrong_source"
	case errors.Is(err, wire.ErrFull):
		return "waiter_full"
	}
	return "late_response"
}

// ask sends a request to dst and waits for its answer (anti-entropy),
// at most PeerTimeout, cut short by a NAK for the request (NO_ROUTE and
// the like: the peer cannot be reached now). Only an answer from dst
// itself with the request's (random) id counts: no other replica can
// answer on dst's behalf.
func (s *Server) ask(ctx context.Context, dst pdu.Name, m *wire.Message) (*wire.Message, error) {
	id, ch, err := s.pend.Add(m.Op, 1, dst)
	if err != nil {
		return nil, err
	}
	defer s.pend.Done(id)
	m.ID = id
	// Our proof (Session 15), until dst answered one: the peer counts our
	// SYNCs in our identity's turns of its request queue, not in the
	// unproven pool's.
	m.Proof = s.cli.RequestProof(s.name, dst, client.DefaultProofRefresh)
	b, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	naks := s.sync.expectNAK(id, dst, b)
	defer s.sync.forgetNAK(id)
	if _, err := s.cli.SendFrom(s.name, dst, 0, b); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.PeerTimeout)
	defer cancel()
	select {
	case rep := <-ch:
		s.cli.RequestAnswered(s.name, dst, dst, m.Proof != nil)
		return rep.Msg, nil
	case code := <-naks:
		s.cli.RequestUnanswered(dst)
		return nil, fmt.Errorf("%s to %s: %w: %s", m.Op, dst, errNAK, code)
	case <-ctx.Done():
		// The peer may be restarting (and forget our proof): the next
		// request to it carries the proof again.
		s.cli.RequestUnanswered(dst)
		return nil, fmt.Errorf("%s to %s: %w", m.Op, dst, ctx.Err())
	}
}

// registerStoreMetrics exports the store's counters: the disk-full guard
// and the read-ahead of sequential READs (store.ReadRawFor).
func registerStoreMetrics(reg prometheus.Registerer, st *store.Store) error {
	counter := func(name, help string, labels prometheus.Labels, f func(store.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "capsuled", Name: name, Help: help, ConstLabels: labels},
			func() float64 { return float64(f(st.Stats())) })
	}
	const limited = "Read-ahead cut short or dropped by a bound: requester_bytes (read_ahead_bytes), total_bytes (read_ahead_total), requester_streams (read_ahead_streams, the least recently used stream dropped), idle (read_ahead_idle), streams_full (one stream in all per 4 KiB of read_ahead_total: a READ of a new stream read without read-ahead)."
	cs := []prometheus.Collector{
		counter("disk_full_total", "Appends (from writers and from peers catching up) refused because the store's file system has less than min_free_bytes free.",
			nil, func(s store.Stats) uint64 { return s.DiskFull }),
		counter("readahead_hits_total", "One-record READs of a sequential reader answered from the records read ahead for it.",
			nil, func(s store.Stats) uint64 { return s.ReadAheadHits }),
		counter("readahead_fills_total", "Scans reading records ahead of a sequential reader.",
			nil, func(s store.Stats) uint64 { return s.ReadAheadFills }),
		counter("readahead_limited_total", limited, prometheus.Labels{"reason": "requester_bytes"}, func(s store.Stats) uint64 { return s.ReadAheadLimitedRequester }),
		counter("readahead_limited_total", limited, prometheus.Labels{"reason": "total_bytes"}, func(s store.Stats) uint64 { return s.ReadAheadLimitedTotal }),
		counter("readahead_limited_total", limited, prometheus.Labels{"reason": "requester_streams"}, func(s store.Stats) uint64 { return s.ReadAheadEvicted }),
		counter("readahead_limited_total", limited, prometheus.Labels{"reason": "idle"}, func(s store.Stats) uint64 { return s.ReadAheadIdled }),
		counter("readahead_limited_total", limited, prometheus.Labels{"reason": "streams_full"}, func(s store.Stats) uint64 { return s.ReadAheadFull }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "gdp", Subsystem: "capsuled", Name: "readahead_bytes",
			Help: "Bytes of records read ahead and not yet asked for (all requesters)."},
			func() float64 { return float64(st.Stats().ReadAheadBytes) }),
		// Session 21: the store's memory outside the Go heap, what a
		// capsule server's RSS grows with in its first hour of light writes
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "gdp", Subsystem: "capsuled", Name: "store_memtable_bytes",
			Help: "Bytes the store's engine (pebble) has allocated to memtables: the one being written, those waiting for their flush, one kept for reuse. Outside the Go heap; resident as records fill them (64 MiB each at most)."},
			func() float64 { return float64(st.Memory().MemTables) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "gdp", Subsystem: "capsuled", Name: "store_unflushed_bytes",
			Help: "Bytes of the store's write-ahead log whose records are held in memtables, not yet flushed to tables (pebble flushes once 32 MiB wait; replayed at a restart)."},
			func() float64 { return float64(st.Memory().Unflushed) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "gdp", Subsystem: "capsuled", Name: "store_block_cache_bytes",
			Help: "Bytes in the store's block cache (32 MiB at most, less what memtables reserve of it). Outside the Go heap."},
			func() float64 { return float64(st.Memory().BlockCache) }),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
