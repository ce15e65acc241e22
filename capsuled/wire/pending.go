package wire

import (
	"context"
	crand "crypto/rand"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/gdpnet/gdpnet/pdu"
)

// ErrClosed: the Pending table was closed while a request waited.
var ErrClosed = errors.New("capsule requests closed")

// Reasons Deliver refuses an answer.
var (
	// ErrUnsolicited: nobody waits for this id (a late, unsolicited or
	// guessed answer).
	ErrUnsolicited = errors.New("no request with this id")
	// ErrWrongSource: the id is known but the answer comes from a node the
	// request was not sent to, or answers another operation.
	ErrWrongSource = errors.New("answer from a node that was not asked")
	// ErrFull: the waiter's buffer is full.
	ErrFull = errors.New("waiter full")
)

// Reply is a response with the name of the node that sent it. A router's
// NAK about the request (the destination From is unreachable, …) is a
// Reply with NAK set, Reporter naming the router, and no Msg.
type Reply struct {
	From     pdu.Name
	Msg      *Message
	NAK      pdu.Code
	Reporter pdu.Name
}

// waiter is one request waiting for answers: the operation and the nodes
// asked (none: any node may answer, the caller verifies what it gets).
type waiter struct {
	ch   chan Reply
	op   Op
	from []pdu.Name
}

// Pending matches responses to requests by (source, request id): an answer
// counts only when it comes from a node the request was sent to and
// answers the same operation. Ids are drawn at random from a generator
// seeded from the system's CSPRNG, so seeing one id tells nothing about
// the next. One request may collect several responses (an APPEND fanned
// out to every replica), so a waiter is a buffered channel rather than a
// single slot.
type Pending struct {
	mu     sync.Mutex
	rng    *rand.ChaCha8
	m      map[uint64]*waiter
	closed bool
}

// NewPending returns an empty table.
func NewPending() *Pending {
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // never fails on supported platforms
	return &Pending{m: make(map[uint64]*waiter), rng: rand.NewChaCha8(seed)}
}

// Add registers a new request for op whose channel holds up to n replies,
// answerable by the nodes in from (none: by any node; the caller must then
// verify the answer's content, as for a request sent to a capsule's name
// that any of its replicas may answer).
func (p *Pending) Add(op Op, n int, from ...pdu.Name) (uint64, <-chan Reply, error) {
	ch := make(chan Reply, max(n, 1))
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, nil, ErrClosed
	}
	var id uint64
	for id == 0 || p.m[id] != nil {
		id = p.rng.Uint64()
	}
	p.m[id] = &waiter{ch: ch, op: op, from: slices.Clone(from)}
	return id, ch, nil
}

// Done forgets id.
func (p *Pending) Done(id uint64) {
	p.mu.Lock()
	delete(p.m, id)
	p.mu.Unlock()
}

// Deliver hands a response to its waiter. It refuses (ErrUnsolicited,
// ErrWrongSource, ErrFull) an answer nobody waits for, one from a node
// that was not asked or for another operation, and one that overflows the
// waiter.
func (p *Pending) Deliver(from pdu.Name, m *Message) error {
	p.mu.Lock()
	w := p.m[m.ID]
	p.mu.Unlock()
	switch {
	case w == nil:
		return ErrUnsolicited
	case m.Op != w.op || (len(w.from) > 0 && !slices.Contains(w.from, from)):
		return ErrWrongSource
	}
	select {
	case w.ch <- Reply{From: from, Msg: m}:
		return nil
	default:
		return ErrFull
	}
}

// DeliverNAK hands the waiter of request id a router's NAK about the copy
// sent to dst; false when nobody waits, the request was not sent to dst,
// or the buffer is full.
func (p *Pending) DeliverNAK(id uint64, dst pdu.Name, code pdu.Code, reporter pdu.Name) bool {
	p.mu.Lock()
	w := p.m[id]
	p.mu.Unlock()
	if w == nil || (len(w.from) > 0 && !slices.Contains(w.from, dst)) {
		return false
	}
	select {
	case w.ch <- Reply{From: dst, NAK: code, Reporter: reporter}:
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
