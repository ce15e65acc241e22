package tunnel

import (
	"net"
	"sync"
	"sync/atomic"
)

// frameBuf is one sealed frame waiting for the socket.
type frameBuf struct {
	b     []byte
	n     int
	addr  *net.UDPAddr
	nonce [12]byte // per-buffer, so concurrent senders share no nonce
}

// sendQueue hands sealed frames from Send (any goroutine) to the writer,
// which takes everything queued at once: senders never make a syscall and
// the writer's batches grow with the load. Buffers are preallocated and
// recycled; Send blocks while all of them are queued.
type sendQueue struct {
	mu      sync.Mutex
	notFull sync.Cond
	free    []*frameBuf
	pending []*frameBuf
	made    int // buffers allocated so far, at most limit
	limit   int
	closed  bool
	wake    chan struct{}
	// held is non-zero while the receive loop delivers a batch: frames
	// queued meanwhile (the router forwarding what it received) wait
	// for the batch's end, when the receive loop sends them in one
	// sendmmsg instead of waking the writer for the first.
	held atomic.Int32
}

func (q *sendQueue) init(limit int) {
	q.notFull.L = &q.mu
	q.wake = make(chan struct{}, 1)
	q.limit = limit
	q.free = make([]*frameBuf, 0, limit)
	q.pending = make([]*frameBuf, 0, limit)
}

// get returns a free buffer of at least size bytes, waiting for one; nil
// once closed. Buffers are made on first need and then reused, so an idle
// endpoint costs little and a busy one allocates nothing.
func (q *sendQueue) get(size int) *frameBuf {
	return q.getOr(size, true)
}

// tryGet is get without waiting: nil when every buffer is queued (or the
// queue is closed).
func (q *sendQueue) tryGet(size int) *frameBuf {
	return q.getOr(size, false)
}

func (q *sendQueue) getOr(size int, wait bool) *frameBuf {
	q.mu.Lock()
	for wait && len(q.free) == 0 && q.made >= q.limit && !q.closed {
		// Full: make sure the writer is draining (a put during a held
		// receive batch did not wake it).
		q.signal()
		q.notFull.Wait()
	}
	if q.closed || (len(q.free) == 0 && q.made >= q.limit) {
		q.mu.Unlock()
		return nil
	}
	var fb *frameBuf
	if len(q.free) > 0 {
		fb = q.free[len(q.free)-1]
		q.free = q.free[:len(q.free)-1]
	} else {
		q.made++
		fb = &frameBuf{}
	}
	q.mu.Unlock()
	if cap(fb.b) < size {
		fb.b = make([]byte, size)
	}
	fb.b = fb.b[:cap(fb.b)]
	return fb
}

// put queues a sealed frame for the writer.
func (q *sendQueue) put(fb *frameBuf) {
	q.mu.Lock()
	q.pending = append(q.pending, fb)
	first := len(q.pending) == 1
	q.mu.Unlock()
	if first && q.held.Load() == 0 {
		q.signal()
	}
}

func (q *sendQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// hold starts a receive batch: frames put until release wait for it.
func (q *sendQueue) hold() { q.held.Add(1) }

// release ends a receive batch and reports whether frames wait to be
// sent: the receive loop then sends them itself (rawEndpoint.flush), on
// the CPU it already holds, rather than waking the writer goroutine —
// which, readied by a loop that keeps running, can wait milliseconds for
// a CPU on a busy machine while the loop holds the next batches' frames.
func (q *sendQueue) release() bool {
	if q.held.Add(-1) != 0 {
		return false
	}
	q.mu.Lock()
	pending := len(q.pending) > 0
	q.mu.Unlock()
	return pending
}

// unget returns a buffer that was not queued.
func (q *sendQueue) unget(fb *frameBuf) {
	q.mu.Lock()
	q.free = append(q.free, fb)
	q.notFull.Signal()
	q.mu.Unlock()
}

// take moves everything queued into dst.
func (q *sendQueue) take(dst []*frameBuf) []*frameBuf {
	q.mu.Lock()
	dst = append(dst, q.pending...)
	clear(q.pending)
	q.pending = q.pending[:0]
	q.mu.Unlock()
	return dst
}

// pendingCount is how many frames are queued.
func (q *sendQueue) pendingCount() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

func (q *sendQueue) recycle(bufs []*frameBuf) {
	q.mu.Lock()
	q.free = append(q.free, bufs...)
	q.notFull.Broadcast()
	q.mu.Unlock()
}

func (q *sendQueue) isClosed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed
}

func (q *sendQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.notFull.Broadcast()
	q.mu.Unlock()
}
