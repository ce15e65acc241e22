package router

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/tunnel"
)

// Link is what a face needs from a tunnel: the peer's verified name, a way
// to send one PDU (copied by the link, so the caller may reuse its buffer),
// a signal when it goes down and a way to tear it down. tunnel.Link satisfies it; tests use in-memory
// links.
type Link interface {
	Peer() pdu.Name
	Send(p []byte) error
	// Done is closed when the link has gone down.
	Done() <-chan struct{}
	Close() error
}

// FaceKind says what is on the other side of a face.
type FaceKind uint8

// Face kinds.
const (
	// FaceEndpoint: a capsule server, client, gateway or handoff agent. It
	// may advertise names and may only source PDUs from names it holds.
	FaceEndpoint FaceKind = iota + 1
	// FaceRouter: a peer router of a domain the policy trusts.
	FaceRouter
)

func (k FaceKind) String() string {
	switch k {
	case FaceEndpoint:
		return "endpoint"
	case FaceRouter:
		return "router"
	}
	return "unknown"
}

// Face is one attachment of the router: an authenticated tunnel to an
// endpoint or to a peer router. Its counters are read by the admin API.
type Face struct {
	id     uint64
	kind   FaceKind
	peer   pdu.Name
	domain pdu.Name // the peer's verified domain (its membership's issuer)
	link   Link
	addr   string
	since  time.Time

	ingress *tokenBucket // PDUs accepted from the face
	naks    *tokenBucket // NAKs sent to the face
	share   *idShare     // the peer identity's share of the shared limits
	closed  atomic.Bool

	// direct is set for a raw GDP-in-UDP tunnel link: its PDUs are
	// sealed into the tunnel endpoint's frame buffers right where they
	// are routed (the receive loop), with no copy, no queue hop and no
	// goroutine wake-up per PDU; the frames go out in one sendmmsg at
	// the end of the receive batch. When the endpoint's frame queue is
	// full, PDUs wait in out as on other links (and later ones follow
	// them there until it is empty, keeping the order).
	direct trySender
	// out is the face's bounded egress queue, drained by one writer
	// goroutine: forwarding never waits for a slow link, and a face whose
	// link cannot keep up loses only its own traffic.
	out  chan egress
	stop chan struct{}
	// queued is the bytes waiting in out; maxQueued bounds it (0: only
	// the PDU count bounds the queue), so a peer that never reads holds at
	// most that much of the router's memory.
	queued    atomic.Int64
	maxQueued int64
	// shares splits out between the identities whose PDUs wait in it.
	shares queueShares

	mu    sync.RWMutex
	names map[pdu.Name]struct{} // names an endpoint holds routes for

	rxPDUs, txPDUs, drops, sendErrors atomic.Uint64
}

// ID is the face's number, unique within the router's lifetime.
func (f *Face) ID() uint64 { return f.id }

// Kind says whether an endpoint or a router is on the other side.
func (f *Face) Kind() FaceKind { return f.kind }

// Peer is the verified name of the node on the other side.
func (f *Face) Peer() pdu.Name { return f.peer }

// Domain is the face's peer's verified trust domain (the issuer of its
// membership), for endpoints and routers alike.
func (f *Face) Domain() pdu.Name { return f.domain }

// Closed reports whether the face has been detached.
func (f *Face) Closed() bool { return f.closed.Load() }

// errQueueFull: the face's egress queue is full; the PDU was dropped.
var errQueueFull = errors.New("router: face egress queue full")

// errSendFailed: the link refused the PDU (closed, or too big for it).
var errSendFailed = errors.New("router: link refused the pdu")

// errQueueBytes: the face's egress queue holds its bound in bytes; the PDU
// was dropped.
var errQueueBytes = errors.New("router: face egress queue holds its maximum bytes")

// errQueueShare: the PDU's sender (the identity of the face it came in
// on) holds its share of this face's egress queue; the PDU was dropped.
var errQueueShare = errors.New("router: sender holds its share of the face's egress queue")

// egress is one PDU waiting in a face's queue: its copy, the identity it
// came from (nil: the router's own) and what it costs that identity's
// share (queueShares.charge).
type egress struct {
	bp     *[]byte
	from   *idShare
	charge int64
}

// queueShares splits a face's egress queue between the identities whose
// PDUs wait in it, so one sender flooding a slow face (a busy capsule
// server, a congested link) cannot take all of it: while the queue is
// under half full anyone may add; past that, an identity holding
// limit/(k+1) — k the identities with PDUs waiting, itself counted — is
// refused (errQueueShare, quota reason "queue_share"). With one flooder
// the queue stops at about half, and a newcomer always finds about a
// (k+1)-th of it. A PDU costs its bytes but at least unit, the queue's
// byte bound over its PDU bound, so small PDUs cannot fill the PDU count
// behind the byte shares. The identity is the ingress face's verified
// peer: PDUs from a peer router count as that router's. Keyed by the
// peer's name, not its *idShare: that is dropped when the identity's last
// face closes and made anew when it reconnects, while its PDUs still
// wait here, so a key per *idShare gave an identity cycling its tunnels a
// fresh share each time (review7).
type queueShares struct {
	limit int64 // the queue's bound in charged bytes
	unit  int64 // the least a PDU costs

	mu      sync.Mutex
	charged int64
	by      map[pdu.Name]int64
}

func newQueueShares(pdus, bytes int) queueShares {
	limit := int64(bytes)
	if limit <= 0 {
		limit = int64(max(pdus, 1)) * 2048
	}
	return queueShares{limit: limit, unit: max(limit/int64(max(pdus, 1)), 1), by: map[pdu.Name]int64{}}
}

// take charges a PDU of n bytes from to the queue, or reports that from
// holds its share.
func (q *queueShares) take(from *idShare, n int) (int64, bool) {
	c := max(int64(n), q.unit)
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.charged+c > q.limit/2 {
		mine := q.by[from.peer]
		k := int64(len(q.by))
		if mine == 0 {
			k++
		}
		if mine+c > q.limit/(k+1) {
			return 0, false
		}
	}
	q.by[from.peer] += c
	q.charged += c
	return c, true
}

// give returns what take charged.
func (q *queueShares) give(from *idShare, c int64) {
	q.mu.Lock()
	if v := q.by[from.peer] - c; v > 0 {
		q.by[from.peer] = v
	} else {
		delete(q.by, from.peer)
	}
	q.charged -= c
	q.mu.Unlock()
}

// trySender is a link that can send without waiting (a raw tunnel link).
type trySender interface {
	TrySend(p []byte) error
	Kind() tunnel.Kind
}

// directSender returns l as a trySender when it is a raw tunnel link.
func directSender(l Link) trySender {
	if ts, ok := l.(trySender); ok && ts.Kind() == tunnel.KindRaw {
		return ts
	}
	return nil
}

// bufPool recycles egress buffers.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// send queues a copy of p, which came from identity from (nil: the
// router's own PDU, not shared), for the face's link; p may be reused when
// it returns.
func (f *Face) send(from *idShare, p []byte) error {
	if f.direct != nil && f.queued.Load() == 0 {
		// Nothing of this face waits in out (which would be overtaken).
		switch err := f.direct.TrySend(p); err {
		case nil:
			f.txPDUs.Add(1)
			return nil
		case tunnel.ErrBusy:
			// The endpoint's frame queue is full: wait in this face's
			// queue instead, as on any other link.
		default:
			f.sendErrors.Add(1)
			return errSendFailed
		}
	}
	n := int64(len(p))
	if q := f.queued.Add(n); q > f.maxQueued && f.maxQueued > 0 && q > n {
		// Over the byte bound (a lone PDU always fits an empty queue).
		f.queued.Add(-n)
		return errQueueBytes
	}
	var c int64
	if from != nil {
		var ok bool
		if c, ok = f.shares.take(from, len(p)); !ok {
			f.queued.Add(-n)
			return errQueueShare
		}
	}
	bp := bufPool.Get().(*[]byte)
	*bp = append((*bp)[:0], p...)
	select {
	case f.out <- egress{bp, from, c}:
		return nil
	default:
		f.queued.Add(-n)
		if from != nil {
			f.shares.give(from, c)
		}
		bufPool.Put(bp)
		return errQueueFull
	}
}

// writer drains the egress queue into the link until the face stops.
func (f *Face) writer() {
	for {
		select {
		case <-f.stop:
			return
		case e := <-f.out:
			bp := e.bp
			err := f.link.Send(*bp)
			// Counted out only once sent: a direct send (send) must not
			// overtake it.
			f.queued.Add(-int64(len(*bp)))
			if e.from != nil {
				f.shares.give(e.from, e.charge)
			}
			if err != nil {
				f.sendErrors.Add(1)
			} else {
				f.txPDUs.Add(1)
			}
			if cap(*bp) <= 1<<16 {
				bufPool.Put(bp)
			}
		}
	}
}

// holds reports whether an endpoint face may use n as a source name: its
// own name or one it has a route for.
func (f *Face) holds(n pdu.Name) bool {
	if n == f.peer {
		return true
	}
	f.mu.RLock()
	_, ok := f.names[n]
	f.mu.RUnlock()
	return ok
}

// addName records that the face holds n. It reports whether n is new to
// the face (false also once the face is closed: nothing is added then).
// The caller has reserved the name in the identity's share and gives the
// reservation back when addName reports false.
func (f *Face) addName(n pdu.Name) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed.Load() {
		return false
	}
	if _, ok := f.names[n]; ok {
		return false
	}
	if f.names == nil {
		f.names = make(map[pdu.Name]struct{})
	}
	f.names[n] = struct{}{}
	return true
}

// dropName forgets n and gives its place in the identity's share back.
func (f *Face) dropName(n pdu.Name) {
	f.mu.Lock()
	_, ok := f.names[n]
	delete(f.names, n)
	f.mu.Unlock()
	if ok && f.share != nil {
		f.share.giveName(1)
	}
}

// dropAllNames forgets every name (the face is detached) and gives them
// back to the identity's share.
func (f *Face) dropAllNames() {
	f.mu.Lock()
	n := len(f.names)
	f.names = nil
	f.mu.Unlock()
	if f.share != nil {
		f.share.giveName(n)
	}
}

// FaceInfo is a face as the admin API shows it.
type FaceInfo struct {
	ID         uint64    `json:"id"`
	Kind       string    `json:"kind"`
	Peer       pdu.Name  `json:"peer"`
	Domain     *pdu.Name `json:"domain,omitempty"`
	Addr       string    `json:"addr,omitempty"`
	Since      time.Time `json:"since"`
	Names      int       `json:"names"`
	RxPDUs     uint64    `json:"rx_pdus"`
	TxPDUs     uint64    `json:"tx_pdus"`
	Drops      uint64    `json:"drops"`
	SendErrors uint64    `json:"send_errors"`
	Queued     int       `json:"queued"`
	// QueuedBytes is the bytes of the PDUs waiting to be sent.
	QueuedBytes int64 `json:"queued_bytes"`
}

func (f *Face) info() FaceInfo {
	f.mu.RLock()
	n := len(f.names)
	f.mu.RUnlock()
	fi := FaceInfo{
		ID: f.id, Kind: f.kind.String(), Peer: f.peer, Addr: f.addr, Since: f.since, Names: n,
		RxPDUs: f.rxPDUs.Load(), TxPDUs: f.txPDUs.Load(), Drops: f.drops.Load(), SendErrors: f.sendErrors.Load(),
		Queued: len(f.out), QueuedBytes: f.queued.Load(),
	}
	if !f.domain.IsZero() {
		d := f.domain
		fi.Domain = &d
	}
	return fi
}
