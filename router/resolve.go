package router

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/resolver"
)

// errForbidden: the name lives in a domain the policy does not let traffic
// cross.
var errForbidden = errors.New("router: destination domain not allowed by policy")

// resolveQueue parks PDUs whose destination missed the FIB while a bounded
// pool of workers asks the resolver, and remembers names the resolver did
// not know (negative cache) so a stream of PDUs to a missing name costs one
// lookup per NegativeTTL, not one per PDU.
//
// Lookups wait fairly: each identity (the verified peer of the face whose
// PDU missed first) has its own FIFO of names to look up, and the workers
// take one name from each identity in turn. An identity may have at most
// resolver.max_waiting_per_identity PDUs parked. A flood of PDUs to random
// names from one member therefore delays another member's first contact by
// at most one lookup per worker, instead of filling the queue.
type resolveQueue struct {
	r *Router

	mu    sync.Mutex
	wait  map[pdu.Name]*waitList
	total int
	neg   map[pdu.Name]negEntry
	// looking holds the names being looked up right now, revived the
	// names that sent a PDU while remembered as missing or looked up
	// (sawSource), and when.
	looking map[pdu.Name]chan struct{}
	revived map[pdu.Name]time.Time
	// watched is len(neg)+len(looking), read without the lock on the
	// forwarding path: while it is 0 a PDU's source costs nothing.
	watched atomic.Int64
	owners  map[*idShare]*resOwner
	ring    []*resOwner // owners with names to look up, served in turn
	next    int
	wake    chan struct{}
	stopped bool
}

// resOwner is one identity's part of the queue.
type resOwner struct {
	key    *idShare
	names  []pdu.Name // lookups this identity triggered, oldest first
	parked int        // PDUs of this identity parked (on any name)
	inRing bool
}

type waitList struct {
	since time.Time
	pdus  []parked
}

type parked struct {
	in *Face
	p  []byte
	// remoteOnly: a MULTICAST PDU whose local holders have their copies
	// already; once resolved it goes to the remote holders only.
	remoteOnly bool
}

type negEntry struct {
	until time.Time
	code  pdu.Code
}

func newResolveQueue(r *Router) *resolveQueue {
	return &resolveQueue{
		r:       r,
		wait:    make(map[pdu.Name]*waitList),
		neg:     make(map[pdu.Name]negEntry),
		looking: make(map[pdu.Name]chan struct{}),
		revived: make(map[pdu.Name]time.Time),
		owners:  make(map[*idShare]*resOwner),
		wake:    make(chan struct{}, max(r.cfg.Resolver.Workers, 1)),
	}
}

// owner returns key's part of the queue, making it (q.mu held).
func (q *resolveQueue) owner(key *idShare) *resOwner {
	o := q.owners[key]
	if o == nil {
		o = &resOwner{key: key}
		q.owners[key] = o
	}
	return o
}

// tidy forgets o once it has nothing waiting (q.mu held).
func (q *resolveQueue) tidy(o *resOwner) {
	if o.parked <= 0 && len(o.names) == 0 && !o.inRing {
		delete(q.owners, o.key)
	}
}

// nextName returns the next name to look up, round robin over identities.
func (q *resolveQueue) nextName() (pdu.Name, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.ring) == 0 {
		return pdu.Name{}, false
	}
	if q.next >= len(q.ring) {
		q.next = 0
	}
	o := q.ring[q.next]
	dst := o.names[0]
	o.names = o.names[1:]
	if len(o.names) == 0 {
		o.names, o.inRing = nil, false
		q.ring = append(q.ring[:q.next], q.ring[q.next+1:]...)
		q.tidy(o)
	} else {
		q.next++
	}
	return dst, true
}

// park keeps a copy of p until dst is resolved. It reports false when p was
// not parked; the caller then NAKs NO_ROUTE. A negative-cache hit for a
// forbidden domain NAKs FORBIDDEN here and reports true.
func (q *resolveQueue) park(in *Face, dst pdu.Name, p []byte) bool {
	return q.parkPDU(in, dst, p, false)
}

// parkRemote parks a copy of the MULTICAST PDU p, already delivered to
// dst's local holders, until the resolver says which other routers hold
// dst. A negative-cache hit (no remote holder known, asked recently) ends
// it silently: nothing is missing.
func (q *resolveQueue) parkRemote(in *Face, dst pdu.Name, p []byte) {
	q.parkPDU(in, dst, p, true)
}

func (q *resolveQueue) parkPDU(in *Face, dst pdu.Name, p []byte, remoteOnly bool) bool {
	cfg := &q.r.cfg.Resolver
	q.mu.Lock()
	if q.stopped {
		q.mu.Unlock()
		return false
	}
	if e, ok := q.neg[dst]; ok {
		if time.Now().Before(e.until) {
			q.mu.Unlock()
			if remoteOnly {
				return true
			}
			if e.code == pdu.CodeForbidden {
				q.r.drop(in, dropForbidden)
				q.r.nak(in, p, pdu.CodeForbidden)
				return true
			}
			return false
		}
		q.dropNeg(dst)
	}
	o := q.owner(in.share)
	if q.total >= cfg.MaxWaiting && !q.evictFor(o) {
		q.tidy(o)
		q.mu.Unlock()
		q.r.met.quota(quotaResolveFull)
		q.r.drop(in, dropQueueFull)
		return true
	}
	if cfg.MaxWaitingPerIdentity > 0 && o.parked >= cfg.MaxWaitingPerIdentity {
		q.tidy(o)
		q.mu.Unlock()
		q.r.met.quota(quotaResolve)
		q.r.drop(in, dropQueueFull)
		return true
	}
	wl := q.wait[dst]
	if wl != nil && len(wl.pdus) >= cfg.MaxWaitingPerName {
		q.tidy(o)
		q.mu.Unlock()
		q.r.drop(in, dropQueueFull)
		return true
	}
	if wl == nil {
		wl = &waitList{since: time.Now()}
		q.wait[dst] = wl
		o.names = append(o.names, dst)
		if !o.inRing {
			o.inRing = true
			q.ring = append(q.ring, o)
		}
		select {
		case q.wake <- struct{}{}:
		default: // every worker is busy or already woken; they take it next
		}
	}
	wl.pdus = append(wl.pdus, parked{in: in, p: append([]byte(nil), p...), remoteOnly: remoteOnly})
	q.total++
	o.parked++
	q.mu.Unlock()
	return true
}

// evictFor makes room in the full queue for one PDU of o (q.mu held): when
// o holds fewer than the largest holder less one, that holder's newest PDU
// parked on a name it asked for is dropped (counted resolve_evicted), so a
// few identities at their max_waiting_per_identity — or the many
// identities of one domain — cannot fill max_waiting and shut everyone
// else's first contact out: max-min fair, as the capsule server's request
// queue. It reports whether room was made. O(identities with PDUs parked).
func (q *resolveQueue) evictFor(o *resOwner) bool {
	var big *resOwner
	for _, c := range q.owners {
		if big == nil || c.parked > big.parked {
			big = c
		}
	}
	if big == nil || big == o || o.parked >= big.parked-1 {
		return false
	}
	for i := len(big.names) - 1; i >= 0; i-- {
		dst := big.names[i]
		wl := q.wait[dst]
		if wl == nil {
			continue
		}
		for j := len(wl.pdus) - 1; j >= 0; j-- {
			pk := wl.pdus[j]
			if pk.in.share != big.key {
				continue
			}
			wl.pdus = append(wl.pdus[:j], wl.pdus[j+1:]...)
			q.total--
			big.parked--
			if len(wl.pdus) == 0 {
				delete(q.wait, dst)
				big.names = append(big.names[:i], big.names[i+1:]...)
				if len(big.names) == 0 && big.inRing {
					q.leaveRing(big)
				}
			}
			q.r.met.quota(quotaResolveEvicted)
			q.r.drop(pk.in, dropQueueFull)
			return true
		}
	}
	return false
}

// leaveRing takes o, which has no names left to look up, out of the round
// robin (q.mu held).
func (q *resolveQueue) leaveRing(o *resOwner) {
	for i, c := range q.ring {
		if c == o {
			q.ring = append(q.ring[:i], q.ring[i+1:]...)
			if i < q.next {
				q.next--
			}
			break
		}
	}
	o.inRing = false
	q.tidy(o)
}

func (q *resolveQueue) waiting() int {
	if q == nil {
		return 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.total
}

// take removes and returns dst's waiting PDUs.
func (q *resolveQueue) take(dst pdu.Name) []parked {
	q.mu.Lock()
	defer q.mu.Unlock()
	wl := q.wait[dst]
	delete(q.wait, dst)
	if wl == nil {
		return nil
	}
	q.total -= len(wl.pdus)
	for _, w := range wl.pdus {
		if o := q.owners[w.in.share]; o != nil {
			o.parked--
			q.tidy(o)
		}
	}
	return wl.pdus
}

func (q *resolveQueue) remember(dst pdu.Name, code pdu.Code) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.neg) >= q.r.cfg.Resolver.NegativeCacheSize {
		// Bounded: forget expired entries, and if that is not enough,
		// anything (map order is random, which is good enough here).
		now := time.Now()
		for n, e := range q.neg {
			if now.After(e.until) || len(q.neg) >= q.r.cfg.Resolver.NegativeCacheSize {
				q.dropNeg(n)
			}
		}
	}
	if _, ok := q.neg[dst]; !ok {
		q.watched.Add(1)
	}
	q.neg[dst] = negEntry{until: time.Now().Add(q.r.cfg.Resolver.NegativeTTL.Std()), code: code}
}

// dropNeg deletes dst's negative entry (q.mu held).
func (q *resolveQueue) dropNeg(dst pdu.Name) bool {
	if _, ok := q.neg[dst]; !ok {
		return false
	}
	delete(q.neg, dst)
	q.watched.Add(-1)
	return true
}

// forget drops dst from the negative cache (a local advertisement arrived).
func (q *resolveQueue) forget(dst pdu.Name) {
	if q == nil {
		return
	}
	q.mu.Lock()
	q.dropNeg(dst)
	q.mu.Unlock()
}

// revivalWindow is how long after a PDU from a remembered-missing name
// arrived a failed lookup of it is tried again (at revivalBackoff, doubling)
// instead of being remembered: the name is back, and its location record
// may not be published yet (a router answers an advertisement before it
// publishes; through a DHT that takes milliseconds).
const (
	revivalWindow  = 2 * time.Second
	revivalBackoff = 25 * time.Millisecond
)

// sawSource is told the source of every PDU a face delivers (an endpoint's
// source is one it holds; a peer router's is what that authenticated
// router forwarded). A name that sends is back: a negative entry for it
// is forgotten, so the next PDU toward it asks the resolver again instead
// of being refused for the rest of NegativeTTL (a restarted replica's
// first catch-up answers were lost that way), and for revivalWindow a
// miss for it is asked again rather than remembered. Cheap when nothing
// is remembered: one atomic load.
func (q *resolveQueue) sawSource(src pdu.Name) {
	if q == nil || q.watched.Load() == 0 {
		return
	}
	q.mu.Lock()
	forgot := q.dropNeg(src)
	sent, inflight := q.looking[src]
	if inflight {
		select {
		case sent <- struct{}{}:
		default:
		}
	}
	if forgot || inflight {
		if len(q.revived) >= q.r.cfg.Resolver.NegativeCacheSize {
			now := time.Now()
			for n, at := range q.revived {
				if now.Sub(at) > revivalWindow {
					delete(q.revived, n)
				}
			}
		}
		if len(q.revived) < q.r.cfg.Resolver.NegativeCacheSize {
			q.revived[src] = time.Now()
		}
	}
	q.mu.Unlock()
	if forgot {
		q.r.met.negForgotten.Inc()
	}
}

// lookupStarted notes that dst is being looked up. The channel it returns
// is signalled when dst sends a PDU meanwhile.
func (q *resolveQueue) lookupStarted(dst pdu.Name) <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	ch, ok := q.looking[dst]
	if !ok {
		ch = make(chan struct{}, 1)
		q.looking[dst] = ch
		q.watched.Add(1)
	}
	return ch
}

// lookupDone ends what lookupStarted began. It reports whether a failed
// lookup should be asked again: dst sent a PDU within revivalWindow.
func (q *resolveQueue) lookupDone(dst pdu.Name, failed bool) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.looking[dst]; ok {
		delete(q.looking, dst)
		q.watched.Add(-1)
	}
	at, ok := q.revived[dst]
	if !ok {
		return false
	}
	if failed && time.Since(at) <= revivalWindow {
		return true
	}
	delete(q.revived, dst)
	return false
}

// NegativeEntry is a negative-cache entry as the admin API shows it.
type NegativeEntry struct {
	Name  pdu.Name  `json:"name"`
	Until time.Time `json:"until"`
	Code  string    `json:"code"`
}

func (q *resolveQueue) negatives() []NegativeEntry {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]NegativeEntry, 0, len(q.neg))
	for n, e := range q.neg {
		out = append(out, NegativeEntry{Name: n, Until: e.until, Code: e.code.String()})
	}
	return out
}

func (q *resolveQueue) stop() {
	q.mu.Lock()
	q.stopped = true
	q.mu.Unlock()
}

// worker resolves names until ctx ends.
func (q *resolveQueue) worker(ctx context.Context) {
	for {
		dst, ok := q.nextName()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-q.wake:
			}
			continue
		}
		if ctx.Err() != nil {
			return
		}
		q.resolveOne(ctx, dst)
	}
}

func (q *resolveQueue) resolveOne(ctx context.Context, dst pdu.Name) {
	r := q.r
	var err error
	for backoff := revivalBackoff; ; backoff *= 2 {
		sent := q.lookupStarted(dst)
		lctx, cancel := context.WithTimeout(ctx, r.cfg.Resolver.Timeout.Std())
		err = q.learn(lctx, dst, sent)
		cancel()
		if !q.lookupDone(dst, err != nil) || ctx.Err() != nil {
			break
		}
		// dst sent a PDU lately: it is back, and its record is on its
		// way to the resolver. Keep its PDUs parked and ask again.
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
	}
	pdus := q.take(dst)
	if err != nil {
		code := pdu.CodeNoRoute
		if errors.Is(err, errForbidden) {
			code = pdu.CodeForbidden
		}
		q.remember(dst, code)
		r.log.Debug("no route after resolver lookup", logging.Dst(dst), zap.Error(err))
		for _, w := range pdus {
			if w.remoteOnly {
				continue // its local holders have it; no remote one is known
			}
			if code == pdu.CodeForbidden {
				r.drop(w.in, dropForbidden)
			} else {
				r.drop(w.in, dropNoRoute)
			}
			r.nak(w.in, w.p, code)
		}
		return
	}
	for _, w := range pdus {
		var h pdu.Header
		if pdu.Decode(w.p, &h) != nil {
			continue
		}
		if w.remoteOnly {
			r.multicastRemote(w.in, r.fib.Lookup(dst), w.p)
			continue
		}
		r.route(w.in, dst, h.Flags, w.p, false)
	}
}

// learn runs learnRoute for dst. If dst sends a PDU meanwhile it is alive
// somewhere, most likely just re-attached at another router, while this
// lookup dials the router its old record names (a dead one costs the whole
// lookup timeout): the resolver is asked again at once, and then at
// doubling intervals from reviveRetry while its new record is on its way,
// and a hop toward a holder this router already has a tunnel to is
// installed: PDUs to one holder go at once, multicast ones when the
// lookup (the dial) ends.
func (q *resolveQueue) learn(ctx context.Context, dst pdu.Name, sent <-chan struct{}) error {
	done := make(chan error, 1)
	go func() { done <- q.r.learnRoute(ctx, dst, func() { q.flushUnicast(dst) }) }()
	select {
	case err := <-done:
		return err
	case <-sent:
	}
	for wait := reviveRetry; ; wait *= 2 {
		if len(q.r.fib.Lookup(dst)) > 0 {
			return <-done // the lookup found a hop meanwhile
		}
		if q.r.learnTunnelHolders(dst) {
			q.r.met.lookups.WithLabelValues("revived").Inc()
			q.flushUnicast(dst)
			<-done // the dials of the other holders, for multicast PDUs
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case err := <-done:
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// flushUnicast forwards dst's parked PDUs that go to one holder (not
// MULTICAST) now that dst has a hop; the others stay parked until the
// lookup ends.
func (q *resolveQueue) flushUnicast(dst pdu.Name) {
	q.mu.Lock()
	wl := q.wait[dst]
	type unicast struct {
		parked
		flags pdu.Flags
	}
	var out []unicast
	if wl != nil {
		kept := wl.pdus[:0]
		for _, w := range wl.pdus {
			var h pdu.Header
			if w.remoteOnly || pdu.Decode(w.p, &h) != nil || h.Flags&pdu.FlagMulticast != 0 {
				kept = append(kept, w)
				continue
			}
			out = append(out, unicast{w, h.Flags})
			q.total--
			if o := q.owners[w.in.share]; o != nil {
				o.parked--
				q.tidy(o)
			}
		}
		clear(wl.pdus[len(kept):])
		wl.pdus = kept
	}
	q.mu.Unlock()
	for _, w := range out {
		q.r.route(w.in, dst, w.flags, w.p, false)
	}
}

// reviveRetry is the first wait between asking the resolver again for a
// name that sent a PDU during its lookup.
const reviveRetry = 100 * time.Millisecond

// learnTunnelHolders asks the resolver for dst past its cache and installs
// a hop toward each holder this router has a tunnel to. It reports
// whether it installed one.
func (r *Router) learnTunnelHolders(dst pdu.Name) bool {
	if inv, ok := r.res.(invalidator); ok {
		inv.Invalidate(dst)
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.Resolver.Timeout.Std())
	defer cancel()
	recs, err := r.res.LookupAll(ctx, dst)
	if err != nil {
		return false
	}
	expiry := r.now().Add(r.cfg.Resolver.RouteCacheTTL.Std())
	installed := false
	for _, rec := range recs {
		holder := recordHolder(rec)
		if holder == r.name || !r.policy().allows(rec.Domain()) {
			continue
		}
		f := r.peerFace(holder)
		if f == nil {
			continue
		}
		if r.installRecordHop(dst, rec, f, 1, hopExpiry(rec, expiry), holder) == nil {
			installed = true
		}
	}
	return installed
}

// errSelfOnly: the resolver knows only this router as dst's holder, and no
// local endpoint holds it (or only local ones do, for a multicast).
var errSelfOnly = errors.New("router: resolver points at this router only")

// learnRoute asks the resolver for every router holding dst and installs a
// FIB hop toward each (several servers attached to different routers may
// hold one capsule): a tunnel it already has, one it opens on demand from
// the record's addresses, or its upstream. Each hop expires with its record
// or after RouteCacheTTL, whichever is first, so a name that moved is
// looked up again. It fails when no hop could be installed.
func (r *Router) learnRoute(ctx context.Context, dst pdu.Name, first func()) error {
	start := time.Now()
	recs, err := r.res.LookupAll(ctx, dst)
	r.met.latency.Observe(time.Since(start).Seconds())
	expiry := r.now().Add(r.cfg.Resolver.RouteCacheTTL.Std()) // the FIB expires hops on r.now (a skewed clock included)
	if err != nil {
		if errors.Is(err, resolver.ErrNotFound) {
			r.met.lookups.WithLabelValues("not_found").Inc()
		} else {
			r.met.lookups.WithLabelValues("error").Inc()
		}
		// The upstream may know more (another domain, the global tier).
		if up := r.upstreamFace(); up != nil {
			return r.installLearned(dst, up, 2, expiry, pdu.Name{}, up.domain)
		}
		return err
	}
	installed, self, forbidden := 0, 0, 0
	var lastErr error
	seen := make(map[pdu.Name]bool, len(recs))
	try := func(recs []*resolver.Record) {
		// Holders this router has a tunnel to first: a holder that must be
		// dialled may be dead (a stale record), and its dial would hold
		// up the live ones for the whole lookup timeout.
		var tunnel, dial []*resolver.Record
		for _, rec := range recs {
			if r.peerFace(recordHolder(rec)) != nil {
				tunnel = append(tunnel, rec)
			} else {
				dial = append(dial, rec)
			}
		}
		for _, rec := range slices.Concat(tunnel, dial) {
			holder := recordHolder(rec)
			switch {
			case holder == r.name:
				self++
				continue
			case seen[holder]:
				continue
			case !r.policy().allows(rec.Domain()):
				forbidden++
				continue
			}
			seen[holder] = true
			if err := r.learnHolder(ctx, dst, holder, rec, hopExpiry(rec, expiry)); err != nil {
				if errors.Is(err, errForbidden) {
					forbidden++ // withdrawn while it was looked up
				} else {
					lastErr = err
				}
				continue
			}
			installed++
			if installed == 1 && first != nil {
				// dst has a hop: PDUs to one holder need not wait for
				// the dials of the others (a dead one costs the lookup
				// timeout); multicast ones wait for them all.
				first()
			}
		}
	}
	try(recs)
	if installed == 0 && lastErr != nil && r.ctx.Err() == nil {
		// Every holder named was unreachable — a router that died with
		// the name's record still published — and its dial may have used
		// up ctx. Meanwhile the name may have moved (an endpoint
		// re-attached elsewhere and was published there): ask once more,
		// past any cache and with a fresh deadline, and try the holders
		// not tried yet, instead of failing (and caching the failure for
		// NegativeTTL) on a stale record set.
		if inv, ok := r.res.(invalidator); ok {
			inv.Invalidate(dst)
		}
		actx, cancel := context.WithTimeout(r.ctx, r.cfg.Resolver.Timeout.Std())
		if again, err := r.res.LookupAll(actx, dst); err == nil {
			ctx = actx
			try(again)
		}
		cancel()
	}
	switch {
	case installed > 0:
		r.met.lookups.WithLabelValues("found").Inc()
		return nil
	case forbidden > 0 && lastErr == nil:
		r.met.lookups.WithLabelValues("forbidden").Inc()
		return errForbidden
	case lastErr != nil:
		r.met.lookups.WithLabelValues("found").Inc()
		return lastErr
	}
	r.met.lookups.WithLabelValues("stale").Inc()
	return fmt.Errorf("%w (%d records)", errSelfOnly, self)
}

// recordHolder is the router a location record sends traffic to: the
// router that published it, or for a global-tier answer (a name in another
// domain) that domain's border router, whose addresses the record holds.
func recordHolder(rec *resolver.Record) pdu.Name {
	if rec.Kind == resolver.KindBorder && rec.Border != nil {
		return rec.Border.Name()
	}
	return rec.Router()
}

// hopExpiry is when a hop learnt from rec expires: with the record, or at
// expiry (now + RouteCacheTTL), whichever is first.
func hopExpiry(rec *resolver.Record, expiry time.Time) time.Time {
	if e := rec.EffectiveExpiry(); e.Before(expiry) {
		return e
	}
	return expiry
}

// learnHolder installs dst's hop toward holder, the router rec names.
func (r *Router) learnHolder(ctx context.Context, dst, holder pdu.Name, rec *resolver.Record, expiry time.Time) error {
	if f := r.peerFace(holder); f != nil {
		return r.installRecordHop(dst, rec, f, 1, expiry, holder)
	}
	if *r.cfg.DialOnDemand && r.dial != nil {
		f, err := r.dialPeer(ctx, holder, rec.Domain(), rec.Addrs)
		if err == nil {
			return r.installRecordHop(dst, rec, f, 1, expiry, holder)
		}
		r.logLim.Info(r.log, holder.String(), "on-demand tunnel failed", logging.Peer(holder), zap.Error(err))
	}
	if up := r.upstreamFace(); up != nil {
		return r.installRecordHop(dst, rec, up, 2, expiry, holder)
	}
	return errors.New("router: holder unreachable: no tunnel, no dial, no upstream")
}

// installRecordHop installs dst's hop on f learnt from rec, then checks
// rec's domain against the policy again (Session 17): a reload that
// withdrew it after the lookup's check — during an on-demand dial, say —
// may have swept the learnt routes (Router.Reload: FIB.Untrust) before
// this hop was in, and it would be forwarded to for route_cache_ttl. The
// reload stores its policy before it sweeps, and this reads it after
// installing: one of the two sees the hop. The hop stays when another
// record's domain, still trusted, proved it too (through the same face).
func (r *Router) installRecordHop(dst pdu.Name, rec *resolver.Record, f *Face, cost uint32, expiry time.Time, holder pdu.Name) error {
	if err := r.installLearned(dst, f, cost, expiry, holder, rec.Domain()); err != nil {
		return err
	}
	if d := rec.Domain(); !r.policy().allows(d) {
		r.fib.untrustHop(dst, f, r.policy().allows)
		return fmt.Errorf("%w: %s's record is of domain %s, withdrawn during the lookup", errForbidden, dst, d)
	}
	return nil
}

// installLearned installs dst's resolver-learned hop on f toward holder,
// proven by a record of domain.
func (r *Router) installLearned(dst pdu.Name, f *Face, cost uint32, expiry time.Time, holder, domain pdu.Name) error {
	if holder.IsZero() {
		holder = f.peer
	}
	return r.fib.Install(dst, Hop{Face: f, Cost: cost, Expiry: expiry, Origin: OriginResolver, Router: holder, Domains: []pdu.Name{domain}})
}

// invalidator is a resolver with a cache that can forget one name
// (resolver.Cache, and resolver.Service which embeds it).
type invalidator interface{ Invalidate(name pdu.Name) }

// forgetLearned drops a resolver-learned hop for dst through face f, and
// the resolver's cached record for dst: the record that pointed there is
// stale, and the next lookup must ask past the cache.
func (r *Router) forgetLearned(dst pdu.Name, f *Face) {
	for _, h := range r.fib.Lookup(dst) {
		if h.Face == f && h.Origin == OriginResolver {
			r.fib.Remove(dst, f)
			if inv, ok := r.res.(invalidator); ok {
				inv.Invalidate(dst)
			}
			return
		}
	}
}
