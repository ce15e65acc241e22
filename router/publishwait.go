package router

import (
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/advert"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

// A pubWaiter holds the ADVERTISE_RESULT of one ADVERTISE that asked to
// wait (advert.Advertise.Wait) until the location records of its accepted
// names are stored in the resolver (PROTOCOL.md §5.4): the publisher marks
// each name as its job succeeds, and the result goes out when every name
// is marked or the wait ends, whichever comes first.
type pubWaiter struct {
	r     *Router
	share *idShare
	mu    sync.Mutex
	res   *advert.Result
	idx   map[pdu.Name][]int // names still waiting -> their places in res
	// done are the places in res of names whose records were stored. They
	// are marked in res only when it is sent: until arm, res is still
	// being filled (a fast publisher may finish a name's job before its
	// result is in place).
	done  []int
	send  func(*advert.Result)
	timer *time.Timer
	armed bool // send is set: the result may go out
	sent  bool
}

// pubWaits maps names to the waiters that wait for their records.
type pubWaits struct {
	mu sync.Mutex
	m  map[pdu.Name]map[*pubWaiter]struct{}
}

// newPubWaiter starts a waiter for res, or returns nil when in's identity
// has advertise.max_publish_waits_per_identity waiting already (counted):
// its names are then answered pending at once.
func (r *Router) newPubWaiter(in *Face, res *advert.Result) *pubWaiter {
	n := in.share.waits.Add(1)
	if max := r.cfg.Advertise.MaxPublishWaitsPerIdentity; max > 0 && n > int64(max) {
		in.share.waits.Add(-1)
		r.met.quota(quotaPublishWaits)
		return nil
	}
	return &pubWaiter{r: r, share: in.share, res: res, idx: map[pdu.Name][]int{}}
}

// add makes w wait for name's record (result index i). It is called before
// the name's publish job is queued, so the job's outcome cannot be missed.
func (w *pubWaiter) add(name pdu.Name, i int) {
	w.mu.Lock()
	w.idx[name] = append(w.idx[name], i)
	w.mu.Unlock()
	pw := &w.r.pubw
	pw.mu.Lock()
	if pw.m == nil {
		pw.m = map[pdu.Name]map[*pubWaiter]struct{}{}
	}
	set := pw.m[name]
	if set == nil {
		set = map[*pubWaiter]struct{}{}
		pw.m[name] = set
	}
	set[w] = struct{}{}
	pw.mu.Unlock()
}

// arm sets how the result is sent and for how long at most it waits; it
// sends at once when nothing is left to wait for.
func (w *pubWaiter) arm(wait time.Duration, send func(*advert.Result)) {
	w.mu.Lock()
	w.send, w.armed = send, true
	if w.r.closed.Load() {
		// Closed meanwhile: stopWaiters may have passed this waiter by
		// (it was not armed); it ends here, untimed.
		w.mu.Unlock()
		w.stop()
		return
	}
	if len(w.idx) == 0 {
		w.mu.Unlock()
		w.finish(false)
		return
	}
	w.timer = time.AfterFunc(wait, func() { w.finish(true) })
	w.mu.Unlock()
}

// published marks name's record stored for every waiter on it.
func (r *Router) published(name pdu.Name) {
	pw := &r.pubw
	pw.mu.Lock()
	set := pw.m[name]
	delete(pw.m, name)
	pw.mu.Unlock()
	for w := range set {
		w.mark(name)
	}
}

func (w *pubWaiter) mark(name pdu.Name) {
	w.mu.Lock()
	w.done = append(w.done, w.idx[name]...)
	delete(w.idx, name)
	done := len(w.idx) == 0 && w.armed
	w.mu.Unlock()
	if done {
		w.finish(false)
	}
}

// finish sends the result once: names not marked stay pending.
func (w *pubWaiter) finish(expired bool) {
	w.mu.Lock()
	if !w.claim() {
		w.mu.Unlock()
		return
	}
	left := w.idx
	w.idx = nil
	asked := len(left) > 0 || len(w.done) > 0 // no name accepted: nothing to count
	for _, i := range w.done {
		w.res.Names[i].Published = advert.PublishDone
	}
	send := w.send
	w.mu.Unlock()
	w.share.waits.Add(-1)
	pw := &w.r.pubw
	pw.mu.Lock()
	for n := range left {
		if set := pw.m[n]; set != nil {
			delete(set, w)
			if len(set) == 0 {
				delete(pw.m, n)
			}
		}
	}
	pw.mu.Unlock()
	result := "published"
	if expired && len(left) > 0 {
		result = "pending"
		var first pdu.Name
		for n := range left {
			first = n
			break
		}
		w.r.log.Warn("location records not published within the advertiser's wait: other routers cannot resolve these names yet; check the resolver (gdp_router_publish_retries_total, resolver.timeout)",
			logging.Name(first), zap.Int("names", len(left)), logging.Reason("publish_wait_expired"))
	}
	if asked {
		w.r.met.publishWaits.WithLabelValues(result).Inc()
	}
	send(w.res)
}

// stop ends w without sending its result (the router closed): its timer
// would otherwise fire after Close, count, log and send into a closed
// face.
func (w *pubWaiter) stop() {
	w.mu.Lock()
	claimed := w.claim()
	w.mu.Unlock()
	if claimed {
		w.share.waits.Add(-1)
	}
}

// claim marks w ended and stops its timer; false when it had ended
// already. w.mu is held.
func (w *pubWaiter) claim() bool {
	if w.sent {
		return false
	}
	w.sent = true
	if w.timer != nil {
		w.timer.Stop()
	}
	return true
}

// stopWaiters ends every waiter still waiting for a record, at Close.
func (r *Router) stopWaiters() {
	pw := &r.pubw
	pw.mu.Lock()
	ws := map[*pubWaiter]struct{}{}
	for _, set := range pw.m {
		for w := range set {
			ws[w] = struct{}{}
		}
	}
	pw.m = nil
	pw.mu.Unlock()
	for w := range ws {
		w.stop()
	}
}
