package wire

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/gdpnet/gdpnet/pdu"
)

// ErrClosed: the Pending table was closed while a request waited.
var ErrClosed = errors.New("capsule requests closed")

// Reply is a response with the name of the node that sent it.
type Reply struct {
	From pdu.Name
	Msg  *Message
}

// Pending matches responses to requests by request id. One request may
// collect several responses (an APPEND fanned out to every replica), so a
// waiter is a buffered channel rather than a single slot.
type Pending struct {
	next   atomic.Uint64
	mu     sync.Mutex
	m      map[uint64]chan Reply
	closed bool
}

// NewPending returns an empty table whose ids start at a random point (a
// restarted node does not reuse the ids of its previous life right away).
func NewPending() *Pending {
	p := &Pending{m: make(map[uint64]chan Reply)}
	p.next.Store(rand.Uint64() >> 16)
	return p
}

// Add registers a new request id whose channel holds up to n replies.
func (p *Pending) Add(n int) (uint64, <-chan Reply, error) {
	id := p.next.Add(1)
	ch := make(chan Reply, max(n, 1))
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, nil, ErrClosed
	}
	p.m[id] = ch
	return id, ch, nil
}

// Done forgets id.
func (p *Pending) Done(id uint64) {
	p.mu.Lock()
	delete(p.m, id)
	p.mu.Unlock()
}

// Deliver hands a response to its waiter; it reports false when nobody
// waits (a late or unsolicited answer) or the waiter's buffer is full.
func (p *Pending) Deliver(from pdu.Name, m *Message) bool {
	p.mu.Lock()
	ch := p.m[m.ID]
	p.mu.Unlock()
	if ch == nil {
		return false
	}
	select {
	case ch <- Reply{From: from, Msg: m}:
		return true
	default:
		return false
	}
}

// Close fails every later Add.
func (p *Pending) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
}

// Wait returns the next reply on ch, or the context's error.
func Wait(ctx context.Context, ch <-chan Reply) (Reply, error) {
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return Reply{}, ctx.Err()
	}
}
