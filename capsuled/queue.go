package capsuled

import (
	"sync"

	"github.com/gdpnet/gdpnet/pdu"
)

// requestQueue holds the requests waiting for a worker, in two levels
// (Session 15): one group per requester identity (request.group: a proven
// identity of the server's own domain, another domain's members together,
// or every requester that proved nothing together, askerOf), and in each
// group one FIFO per source name (which its router verified the sender
// holds). Groups are served round robin, and the names of a group round
// robin within its turns, so a member flooding the server from the
// thousands of names it may hold (advertise.max_names_per_identity) gets
// one group's turns, not one per name. Before Session 15 the round robin
// was over source names alone; before Session 11 one FIFO of Config.Queue
// requests was shared, and a member sending READs faster than the workers
// serve them kept it full.
//
// At most max requests wait in all. When they do, a newcomer whose group
// holds fewer than the largest group less one takes the place of that
// group's largest name's newest request (max-min fair over groups); else
// a newcomer whose name holds fewer than the largest name of its own
// group less one takes the place of that name's newest (max-min within
// the group: an old client in the unproven pool is not refused while a
// flooding name of the pool holds many). The evicted request is answered
// 503. Otherwise the newcomer is refused 503. A group's first request is
// thus never refused while another group holds two or more.
type requestQueue struct {
	max int
	// ready holds a token per request pushed (at least as many tokens as
	// requests waiting): a worker takes one, then pops. An evicted request
	// leaves its token behind; the pop it wakes finds nothing, harmlessly.
	ready chan struct{}

	mu     sync.Mutex
	n      int
	groups map[pdu.Name]*queueGroup
	ring   ring[*queueGroup] // groups with requests waiting, in serving order
	// counts finds the group holding the most requests in O(1), not by a
	// scan of every group under mu on each push into a full queue.
	counts counted[*queueGroup]
}

// queueGroup is one requester identity's FIFOs, one per source name.
type queueGroup struct {
	key    pdu.Name
	n      int // requests waiting in all its FIFOs
	slot   int // index in requestQueue.counts
	links  links[*queueGroup]
	names  map[pdu.Name]*queued
	ring   ring[*queued] // names with requests waiting, in serving order
	counts counted[*queued]
}

// queued is one source name's FIFO and its place in its group's counts
// and ring.
type queued struct {
	from  pdu.Name
	reqs  []request
	slot  int
	links links[*queued]
}

func (g *queueGroup) link() *links[*queueGroup] { return &g.links }
func (h *queued) link() *links[*queued]         { return &h.links }

// links are an item's neighbours in its ring.
type links[T any] struct{ prev, next T }

// ring is a circular list of items served round robin, cur the next: an
// item added goes last (just before cur), one removed leaves in O(1) (a
// slice's removal moved every item after it: with thousands of names in
// one group, an eviction cost as much as the scan the counts replaced).
type ring[T interface {
	comparable
	link() *links[T]
}] struct {
	cur T
}

func (r *ring[T]) add(x T) {
	var zero T
	l := x.link()
	if r.cur == zero {
		l.prev, l.next, r.cur = x, x, x
		return
	}
	c := r.cur.link()
	p := c.prev
	l.prev, l.next = p, r.cur
	p.link().next = x
	c.prev = x
}

// remove takes x out; when x was cur, cur moves to the item after it.
func (r *ring[T]) remove(x T) {
	var zero T
	l := x.link()
	if l.next == x {
		r.cur = zero
	} else {
		l.prev.link().next = l.next
		l.next.link().prev = l.prev
		if r.cur == x {
			r.cur = l.next
		}
	}
	l.prev, l.next = zero, zero
}

// advance makes the item after cur the next.
func (r *ring[T]) advance() { r.cur = r.cur.link().next }

func (g *queueGroup) count() int   { return g.n }
func (g *queueGroup) slotp() *int  { return &g.slot }
func (h *queued) count() int       { return len(h.reqs) }
func (h *queued) slotp() *int      { return &h.slot }
func (h *queued) newest() *request { return &h.reqs[len(h.reqs)-1] }

// countable is what counted keeps in buckets: its count and its index in
// its bucket.
type countable interface {
	count() int
	slotp() *int
}

// counted keeps items in buckets by their count: by[k] holds the items
// counting exactly k (k ≥ 1; by[0] stays empty), most is the largest k
// with a non-empty bucket. A count moves by one at a time, so most does
// too.
type counted[T countable] struct {
	by   [][]T
	most int
}

// resize moves h from by[old] to by[h.count()], each in O(1) (swap with
// the last), and keeps most.
func (c *counted[T]) resize(h T, old int) {
	if old > 0 {
		b := c.by[old]
		last := b[len(b)-1]
		s := h.slotp()
		b[*s], *last.slotp() = last, *s
		var zero T
		b[len(b)-1] = zero
		c.by[old] = b[:len(b)-1]
	}
	if k := h.count(); k > 0 {
		for len(c.by) <= k {
			c.by = append(c.by, nil)
		}
		*h.slotp() = len(c.by[k])
		c.by[k] = append(c.by[k], h)
		c.most = max(c.most, k)
	}
	for c.most > 0 && len(c.by[c.most]) == 0 {
		c.most--
	}
}

// top is an item holding the most (most > 0).
func (c *counted[T]) top() T { return c.by[c.most][0] }

func newRequestQueue(max int) *requestQueue {
	return &requestQueue{max: max, ready: make(chan struct{}, max), groups: map[pdu.Name]*queueGroup{}}
}

// push queues r. When the queue is full it either evicts a newest request
// (returned, to be answered 503) to make room, as the type says, or
// refuses r (ok false). holder is the source name whose request was
// evicted, or, refused, the largest name of the largest group (zero when
// the queue had room).
func (q *requestQueue) push(r request) (evicted *request, holder pdu.Name, ok bool) {
	q.mu.Lock()
	g := q.groups[r.group]
	var h *queued
	mineG, mineN := 0, 0
	if g != nil {
		mineG = g.n
		if h = g.names[r.from]; h != nil {
			mineN = len(h.reqs)
		}
	}
	if q.n >= q.max {
		if q.counts.most == 0 { // max ≤ 0: none to evict
			q.mu.Unlock()
			return nil, holder, false
		}
		var victim *queueGroup
		switch top := q.counts.top(); {
		case q.counts.most > mineG+1:
			victim = top
		case g != nil && g.counts.most > mineN+1:
			victim = g
		default:
			holder = top.counts.top().from
			q.mu.Unlock()
			return nil, holder, false
		}
		vn := victim.counts.top()
		holder = vn.from
		last := *vn.newest()
		*vn.newest() = request{} // the message is not kept alive by the backing array
		vn.reqs = vn.reqs[:len(vn.reqs)-1]
		victim.counts.resize(vn, len(vn.reqs)+1)
		if len(vn.reqs) == 0 { // one of a group's names each holding one
			delete(victim.names, vn.from)
			victim.ring.remove(vn)
		}
		victim.n--
		q.counts.resize(victim, victim.n+1) // it keeps at least one: it held more than mineG+1, or than mineN+1 ≥ 1 in one name
		evicted = &last
		q.n--
	}
	if g == nil {
		g = &queueGroup{key: r.group, names: map[pdu.Name]*queued{}}
		q.groups[r.group] = g
		q.ring.add(g)
	}
	if h == nil {
		h = &queued{from: r.from}
		g.names[r.from] = h
		g.ring.add(h)
	}
	h.reqs = append(h.reqs, r)
	g.counts.resize(h, len(h.reqs)-1)
	g.n++
	q.counts.resize(g, g.n-1)
	q.n++
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default: // as many tokens as the queue holds requests already
	}
	return evicted, holder, true
}

// pop takes the next request, round robin over the groups and, within a
// group's turns, over its names; false when none waits.
func (q *requestQueue) pop() (request, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return request{}, false
	}
	g := q.ring.cur
	h := g.ring.cur
	r := h.reqs[0]
	h.reqs[0] = request{} // the message is not kept alive by the backing array
	h.reqs = h.reqs[1:]
	g.counts.resize(h, len(h.reqs)+1)
	if len(h.reqs) == 0 {
		delete(g.names, h.from)
		g.ring.remove(h)
	} else {
		g.ring.advance()
	}
	g.n--
	q.counts.resize(g, g.n+1)
	if g.n == 0 {
		delete(q.groups, g.key)
		q.ring.remove(g)
	} else {
		q.ring.advance()
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
