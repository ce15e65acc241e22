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
	per  map[pdu.Name][]request
	ring []pdu.Name // requesters with requests waiting, in serving order
	next int        // ring index served next
}

func newRequestQueue(max int) *requestQueue {
	return &requestQueue{max: max, ready: make(chan struct{}, max), per: map[pdu.Name][]request{}}
}

// push queues r. When the queue is full it either evicts the newest
// request of the largest holder (returned, to be answered 503) to make
// room, or refuses r (ok false). holder is the requester holding the most
// requests when the queue was full (zero otherwise).
func (q *requestQueue) push(r request) (evicted *request, holder pdu.Name, ok bool) {
	q.mu.Lock()
	if q.n >= q.max {
		var most int
		for src, f := range q.per {
			if len(f) > most {
				most, holder = len(f), src
			}
		}
		if most <= len(q.per[r.from])+1 {
			q.mu.Unlock()
			return nil, holder, false
		}
		f := q.per[holder]
		last := f[len(f)-1]
		q.per[holder] = f[:len(f)-1]
		evicted = &last
		q.n--
	}
	f, had := q.per[r.from]
	if !had || len(f) == 0 {
		q.ring = append(q.ring, r.from)
	}
	q.per[r.from] = append(f, r)
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
	f := q.per[src]
	r := f[0]
	f[0] = request{} // the message is not kept alive by the backing array
	if f = f[1:]; len(f) == 0 {
		delete(q.per, src)
		q.ring = append(q.ring[:q.next], q.ring[q.next+1:]...)
	} else {
		q.per[src] = f
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
