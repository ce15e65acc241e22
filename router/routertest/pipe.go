// Package routertest holds test doubles for code above the router: an
// in-memory link pair that behaves like a tunnel (asynchronous, bounded,
// lossy when full) and fixtures that mint a trust domain, routers,
// endpoints, capsules and their certificates.
package routertest

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/gdpnet/gdpnet/pdu"
)

// ErrClosed is returned by Send on a closed link.
var ErrClosed = errors.New("routertest: link closed")

// Handler receives the PDUs a Link delivers; p is valid only during the
// call, as with a tunnel.
type Handler func(l *Link, p []byte)

// Link is one side of an in-memory tunnel. Send copies the PDU into the
// peer side's bounded queue (dropping it when full, like a datagram), and a
// goroutine per side hands queued PDUs to that side's handler.
type Link struct {
	self, peer pdu.Name
	other      *Link
	in         chan []byte
	shared     *pipeState

	mu      sync.Mutex
	handler Handler

	Dropped atomic.Uint64 // PDUs lost because this side's queue was full
}

type pipeState struct {
	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

// Pipe connects a node named a with a node named b. la is a's side (its
// Peer is b); ha receives what b sends. queue bounds each direction
// (default 1024). Start delivery with Start once handlers are set.
func Pipe(a, b pdu.Name, queue int) (la, lb *Link) {
	if queue <= 0 {
		queue = 1024
	}
	st := &pipeState{done: make(chan struct{})}
	la = &Link{self: a, peer: b, in: make(chan []byte, queue), shared: st}
	lb = &Link{self: b, peer: a, in: make(chan []byte, queue), shared: st}
	la.other, lb.other = lb, la
	return la, lb
}

// Start sets l's handler and starts delivering to it.
func (l *Link) Start(h Handler) {
	l.mu.Lock()
	l.handler = h
	l.mu.Unlock()
	l.shared.wg.Add(1)
	go func() {
		defer l.shared.wg.Done()
		for {
			select {
			case <-l.shared.done:
				return
			case p := <-l.in:
				h(l, p)
			}
		}
	}()
}

// Peer is the name of the node on the other side.
func (l *Link) Peer() pdu.Name { return l.peer }

// Send queues a copy of p for the other side.
func (l *Link) Send(p []byte) error {
	select {
	case <-l.shared.done:
		return ErrClosed
	default:
	}
	if len(p) == 0 || len(p) > pdu.MaxPDU {
		return errors.New("routertest: pdu size out of range")
	}
	c := append([]byte(nil), p...)
	select {
	case l.other.in <- c:
	default:
		l.other.Dropped.Add(1)
	}
	return nil
}

// Queued is how many PDUs wait for this side's handler.
func (l *Link) Queued() int { return len(l.in) }

// Done is closed when either side closes.
func (l *Link) Done() <-chan struct{} { return l.shared.done }

// Close closes both sides and waits for their delivery goroutines (unless
// called from one of them).
func (l *Link) Close() error {
	l.shared.once.Do(func() { close(l.shared.done) })
	return nil
}

// Wait waits until both sides' goroutines have stopped (after Close).
func (l *Link) Wait() { l.shared.wg.Wait() }
