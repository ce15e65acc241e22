package router

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/resolver"
)

// pubJob tells the resolver about one local route: published with its
// chain, or withdrawn.
type pubJob struct {
	name     pdu.Name
	chain    *certs.Chain
	expiry   time.Time
	withdraw bool
}

// Publishing never blocks the forwarding path: jobs wait in a pubQueue and
// one goroutine talks to the resolver. The queue is fair and loses nothing
// it accepted:
//
//   - Jobs are keyed by name: a newer job for a name replaces the one still
//     waiting (a withdrawal replaces the publish it undoes, a renewal the
//     previous publish), so what waits is the state each name should reach,
//     in the order names first changed.
//   - Each identity (the endpoint that advertised the name; the router
//     itself for its own record) has its own FIFO, and the publisher takes
//     one job from each identity in turn: a flood from one identity delays
//     another's jobs by at most one job per flooding identity.
//   - An identity may have at most resolver.publish_queue_per_identity jobs
//     waiting; the router refuses an advertisement that would need more
//     (rate_limited, the endpoint retries) instead of accepting it and
//     dropping its record. Withdrawals are never refused: each replaces a
//     waiting job for its name or is for a name the identity held, so they
//     are bounded by its names.
//   - A job the resolver failed is retried with backoff (0.5 s doubling to
//     30 s) until it succeeds or a newer job for its name replaces it.
type pubQueue struct {
	mu      sync.Mutex
	byName  map[pdu.Name]*pubEntry // waiting (queued or backing off), not in flight
	owners  map[pdu.Name]*pubOwner
	ring    []*pubOwner // owners with queued jobs, served in turn
	next    int
	retry   []*pubEntry // backing off until due
	perID   int
	pending int // jobs accepted and not yet finished (in flight included)
	wake    chan struct{}
}

type pubOwner struct {
	id     pdu.Name
	queue  []*pubEntry
	count  int // this owner's jobs not yet finished
	inRing bool
}

type pubEntry struct {
	job   pubJob
	owner *pubOwner
	tries int
	due   time.Time
}

func newPubQueue(perID int) *pubQueue {
	return &pubQueue{
		byName: make(map[pdu.Name]*pubEntry),
		owners: make(map[pdu.Name]*pubOwner),
		perID:  perID,
		wake:   make(chan struct{}, 1),
	}
}

// room reports whether id may have one more job waiting (a name it does
// not have a job for already).
func (q *pubQueue) room(id, name pdu.Name) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.byName[name]; ok {
		return true // it would replace the waiting job
	}
	o := q.owners[id]
	return q.perID <= 0 || o == nil || o.count < q.perID
}

// put queues j for id, replacing any job still waiting for j.name. It never
// refuses: callers check room first where refusing is possible.
func (q *pubQueue) put(id pdu.Name, j pubJob) {
	q.mu.Lock()
	if e := q.byName[j.name]; e != nil {
		e.job, e.tries = j, 0
		e.due = time.Time{} // a backing-off job becomes due now
		q.mu.Unlock()
		q.signal()
		return
	}
	o := q.owners[id]
	if o == nil {
		o = &pubOwner{id: id}
		q.owners[id] = o
	}
	e := &pubEntry{job: j, owner: o}
	o.count++
	q.pending++
	q.byName[j.name] = e
	q.enqueue(e)
	q.mu.Unlock()
	q.signal()
}

// enqueue appends e to its owner's FIFO (q.mu held).
func (q *pubQueue) enqueue(e *pubEntry) {
	o := e.owner
	o.queue = append(o.queue, e)
	if !o.inRing {
		o.inRing = true
		q.ring = append(q.ring, o)
	}
}

func (q *pubQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take returns the next job, round robin over owners, or nil and how long
// until a backing-off job is due (0: nothing is waiting).
func (q *pubQueue) take(now time.Time) (*pubEntry, time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var wait time.Duration
	kept := q.retry[:0]
	for _, e := range q.retry {
		if q.byName[e.job.name] != e {
			continue // finished otherwise meanwhile (cannot happen, but be safe)
		}
		if d := e.due.Sub(now); d > 0 {
			kept = append(kept, e)
			if wait == 0 || d < wait {
				wait = d
			}
			continue
		}
		q.enqueue(e)
	}
	clear(q.retry[len(kept):])
	q.retry = kept
	if len(q.ring) == 0 {
		return nil, wait
	}
	if q.next >= len(q.ring) {
		q.next = 0
	}
	o := q.ring[q.next]
	e := o.queue[0]
	o.queue[0] = nil
	o.queue = o.queue[1:]
	if len(o.queue) == 0 {
		o.queue = nil
		o.inRing = false
		q.ring = append(q.ring[:q.next], q.ring[q.next+1:]...)
	} else {
		q.next++
	}
	delete(q.byName, e.job.name)
	return e, 0
}

// finish ends e's job, or schedules it again after a failure unless a
// newer job for its name is waiting.
func (q *pubQueue) finish(e *pubEntry, retry bool, now time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if retry && q.byName[e.job.name] == nil {
		e.tries++
		backoff := 500 * time.Millisecond << min(e.tries-1, 6)
		e.due = now.Add(min(backoff, 30*time.Second))
		q.byName[e.job.name] = e
		q.retry = append(q.retry, e)
		return
	}
	o := e.owner
	o.count--
	q.pending--
	if o.count == 0 && !o.inRing && q.owners[o.id] == o {
		delete(q.owners, o.id)
	}
}

// waiting returns the jobs accepted and not yet finished.
func (q *pubQueue) waiting() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.pending
}

// publish queues a location record for name, advertised by identity id.
func (r *Router) publish(id, name pdu.Name, chain *certs.Chain, exp time.Time) {
	if r.res == nil {
		return
	}
	r.pubq.put(id, pubJob{name: name, chain: chain, expiry: exp})
}

// unpublish queues the withdrawal of name's record, on behalf of id.
func (r *Router) unpublish(id, name pdu.Name) {
	if r.res == nil {
		return
	}
	r.pubq.put(id, pubJob{name: name, withdraw: true})
}

// publishRoom reports whether identity id may have a publish job for name
// queued; when not, it counts the refusal.
func (r *Router) publishRoom(id, name pdu.Name) bool {
	if r.res == nil || r.pubq.room(id, name) {
		return true
	}
	r.met.quota(quotaPublish)
	return false
}

func (r *Router) publisher(ctx context.Context) {
	for {
		e, wait := r.pubq.take(time.Now())
		if e == nil {
			var timer <-chan time.Time
			var t *time.Timer
			if wait > 0 {
				t = time.NewTimer(wait)
				timer = t.C
			}
			select {
			case <-ctx.Done():
			case <-r.pubq.wake:
			case <-timer:
			}
			if t != nil {
				t.Stop()
			}
			if ctx.Err() != nil {
				return
			}
			continue
		}
		jctx, cancel := context.WithTimeout(ctx, r.cfg.Resolver.Timeout.Std())
		retry := r.doPub(jctx, e.job)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if retry {
			r.met.pubRetries.Inc()
		}
		r.pubq.finish(e, retry, time.Now())
	}
}

// doPub runs one job; it reports whether it failed in a way worth retrying.
func (r *Router) doPub(ctx context.Context, j pubJob) (retry bool) {
	if j.withdraw {
		// Only withdraw a record that still points here: the name may
		// have moved to another router meanwhile. The resolver checks
		// and withdraws in one step (a lookup here, then a withdrawal,
		// could delete the record the new router published in between).
		err := r.res.WithdrawIf(ctx, j.name, r.name)
		switch {
		case err == nil:
			r.withdrawUpstream(j.name)
		case errors.Is(err, resolver.ErrSuperseded), errors.Is(err, resolver.ErrNotPublished):
			r.log.Debug("resolver record left in place", logging.Name(j.name), zap.Error(err))
		default:
			r.log.Info("resolver withdraw failed; will retry", logging.Name(j.name), zap.Error(err))
			return true
		}
		return false
	}
	own := r.own.Load()
	seq, err := r.seq.Next()
	if err != nil {
		r.log.Error("location record not published: its sequence number cannot be recorded in state_dir; will retry (check the disk and the directory's permissions)",
			logging.Name(j.name), logging.Reason("state_dir"), zap.Error(err))
		return true
	}
	rec, err := resolver.NewLocation(own.id.Key, j.name, j.chain, r.addrs, seq, j.expiry)
	if err != nil {
		r.log.Warn("location record", logging.Name(j.name), zap.Error(err))
		return false // the same job would fail the same way
	}
	if err := r.res.Publish(ctx, rec); err != nil {
		r.log.Warn("resolver publish failed; will retry", logging.Name(j.name), zap.Error(err))
		return true
	}
	r.published(j.name) // answers ADVERTISEs that wait for this record (PROTOCOL.md §5.4)
	r.pushUpstream(rec)
	return false
}

// selfRecordLifetime bounds the RtCert a router issues itself for its own
// location record; it is renewed at half its life.
const selfRecordLifetime = 2 * time.Hour

// publishSelf publishes a location record for the router's own name, so
// that `gdp ping ROUTER` and tunnels to a router by name work from
// anywhere the resolver reaches. The chain is the router advertising
// itself: its own RtCert, its membership.
func (r *Router) publishSelf() {
	if r.res == nil || len(r.addrs) == 0 {
		return
	}
	own := r.own.Load()
	now := r.now()
	na := now.Add(selfRecordLifetime)
	if own.member.NotAfter.Before(na) {
		na = own.member.NotAfter
	}
	rt, err := certs.IssueRtCert(own.id, r.name, now.Add(-time.Minute), na)
	if err != nil {
		r.log.Warn("own location record", zap.Error(err))
		return
	}
	chain := &certs.Chain{Target: own.meta, Endpoint: own.meta, RtCert: rt, Router: own.meta, Member: own.member, Domain: own.domain}
	r.publish(r.name, r.name, chain, na)
}
