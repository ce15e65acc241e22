package capsuled

import (
	"sync"

	"github.com/gdpnet/gdpnet/pdu"
)

// requestQueue holds the requests waiting for a worker: one FIFO per
// requester (the request's source name, which its router verified the
// sender holds), served round robin, so a requester that floods the server
// makes its own requests wait, not everyone's. Before, one FIFO of
// Config.Queue requests was shared: a member sending READs faster than the
// workers serve them kept it full, and every other requester was answered
// 503 "overloaded" (or waited behind thousands of the flood's requests).
//
// At most max requests wait in all. When they do, a newcomer holding
// fewer than the largest holder less one takes that holder's newest
// request's place (max-min fair, as subscriptions are shared): the evicted
// request is answered 503. Otherwise the newcomer is refused 503. A
// requester's first request is thus never refused while another holds two
// or more.
type requestQueue struct {
	max int
	// ready holds a token per request pushed (at least as many tokens as
	// requests waiting): a worker takes one, then pops. An evicted request
	// leaves its token behind; the pop it wakes finds nothing, harmlessly.
	ready chan struct{}

	mu   sync.Mutex
	n    int
	per  map[pdu.Name]*queued
	ring []pdu.Name // requesters with requests waiting, in serving order
	next int        // ring index served next
	// byCount[k] holds the requesters holding exactly k requests (k ≥ 1;
	// byCount[0] stays empty), most is the largest k with byCount[k] not
	// empty: the largest holder is found in O(1), not by a scan of every
	// requester (up to Config.Queue of them) under mu on each push into a
	// full queue. A count moves by one at a time, so most does too.
	byCount [][]*queued
	most    int
}

// queued is one requester's FIFO and its place in byCount.
type queued struct {
	from pdu.Name
	reqs []request
	slot int // index in byCount[len(reqs)]
}

func newRequestQueue(max int) *requestQueue {
	return &requestQueue{max: max, ready: make(chan struct{}, max), per: map[pdu.Name]*queued{}}
}

// resize moves h from byCount[old] to byCount[len(h.reqs)], each in O(1)
// (swap with the last), and keeps most.
func (q *requestQueue) resize(h *queued, old int) {
	if old > 0 {
		b := q.byCount[old]
		last := b[len(b)-1]
		b[h.slot], last.slot = last, h.slot
		b[len(b)-1] = nil
		q.byCount[old] = b[:len(b)-1]
	}
	if k := len(h.reqs); k > 0 {
		for len(q.byCount) <= k {
			q.byCount = append(q.byCount, nil)
		}
		h.slot = len(q.byCount[k])
		q.byCount[k] = append(q.byCount[k], h)
		q.most = max(q.most, k)
	}
	for q.most > 0 && len(q.byCount[q.most]) == 0 {
		q.most--
	}
}

// push queues r. When the queue is full it either evicts the newest
// request of the largest holder (returned, to be answered 503) to make
// room, or refuses r (ok false). holder is the requester holding the most
// requests when the queue was full (zero otherwise).
func (q *requestQueue) push(r request) (evicted *request, holder pdu.Name, ok bool) {
	q.mu.Lock()
	h := q.per[r.from]
	if q.n >= q.max {
		if q.most == 0 { // max ≤ 0: none to evict
			q.mu.Unlock()
			return nil, holder, false
		}
		top := q.byCount[q.most][0]
		holder = top.from
		mine := 0
		if h != nil {
			mine = len(h.reqs)
		}
		if q.most <= mine+1 {
			q.mu.Unlock()
			return nil, holder, false
		}
		k := len(top.reqs)
		last := top.reqs[k-1]
		top.reqs[k-1] = request{} // the message is not kept alive by the backing array
		top.reqs = top.reqs[:k-1]
		q.resize(top, k) // the holder keeps at least one: it held more than mine+1
		evicted = &last
		q.n--
	}
	if h == nil {
		h = &queued{from: r.from}
		q.per[r.from] = h
		q.ring = append(q.ring, r.from)
	}
	h.reqs = append(h.reqs, r)
	q.resize(h, len(h.reqs)-1)
	q.n++
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default: // as many tokens as the queue holds requests already
	}
	return evicted, holder, true
}

// pop takes the next request, round robin over the requesters; false
// when none waits.
func (q *requestQueue) pop() (request, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return request{}, false
	}
	if q.next >= len(q.ring) {
		q.next = 0
	}
	src := q.ring[q.next]
	h := q.per[src]
	r := h.reqs[0]
	h.reqs[0] = request{} // the message is not kept alive by the backing array
	h.reqs = h.reqs[1:]
	q.resize(h, len(h.reqs)+1)
	if len(h.reqs) == 0 {
		delete(q.per, src)
		q.ring = append(q.ring[:q.next], q.ring[q.next+1:]...)
	} else {
		q.next++
	}
	q.n--
	return r, true
}

// len is the number of requests waiting.
func (q *requestQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}
