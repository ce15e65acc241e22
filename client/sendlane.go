package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gdpnet/gdpnet/pdu"
)

// The send lane (Session 20). A Link's Send may block: quic-go's
// SendDatagram waits while the connection's 32-frame datagram queue is
// full (a congested or dead path), bounded only by the link's idle
// timeout, and nothing can interrupt it. A request with a deadline (a
// ping, an ADVERTISE, a capsule request) therefore never calls Send on its
// own goroutine: it hands the PDU to the lane, whose one drain goroutine
// sends queued PDUs in order, and waits for the send only until its
// deadline. A request that gave up before its PDU's turn came is not sent
// at all (counted in Client.SendsAbandoned); one whose PDU is already
// inside Send leaves it there and returns.
//
// PDUs are never reordered by the lane: while it holds anything (a PDU
// queued or being sent), every other send of the client — DATA, QUIC over
// names, echo answers — queues behind it; when it is empty they call
// Send directly, concurrently, as before. The drain goroutine exists only
// while the lane holds PDUs, so a client whose sends return has no extra
// goroutine.

// errSendBlocked: a request's deadline passed before its PDU could be
// handed to the link (the link's send queue stayed full). It is an
// ErrTimeout.
var errSendBlocked = fmt.Errorf("%w: the request could not be sent (the link's send queue stayed full: a congested or dead path)", ErrTimeout)

// errAbandoned is what a queued PDU whose sender gave up reports.
var errAbandoned = errors.New("client: send abandoned by its request")

type sendLane struct {
	mu      sync.Mutex
	q       []*laneItem
	running bool // a drain goroutine is sending q
	// held is len(q) plus the PDU the drain goroutine is sending: while
	// it is non-zero, every send queues.
	held atomic.Int64
}

type laneItem struct {
	b         []byte
	err       chan error // buffered: the drain goroutine never waits on it
	abandoned atomic.Bool
	// echo, for an echo answer, is the share it holds (Client.echoShares):
	// given back once the answer has left the lane.
	echo   pdu.Name
	isEcho bool
}

// enqueue appends b to the lane, starting the drain goroutine if none runs.
func (c *Client) enqueue(b []byte) *laneItem {
	return c.enqueueItem(&laneItem{b: b, err: make(chan error, 1)})
}

func (c *Client) enqueueItem(it *laneItem) *laneItem {
	l := &c.lane
	l.mu.Lock()
	l.q = append(l.q, it)
	l.held.Add(1)
	start := !l.running
	l.running = true
	l.mu.Unlock()
	if start {
		go c.drain()
	}
	return it
}

// drain sends the lane's PDUs in order until it is empty.
func (c *Client) drain() {
	l := &c.lane
	for {
		l.mu.Lock()
		if len(l.q) == 0 {
			l.running = false
			l.q = nil
			l.mu.Unlock()
			return
		}
		it := l.q[0]
		l.q[0] = nil
		l.q = l.q[1:]
		l.mu.Unlock()
		var err error
		if it.abandoned.Load() {
			err = errAbandoned
			c.SendsAbandoned.Add(1)
		} else {
			err = c.link.Send(it.b)
		}
		l.held.Add(-1)
		if it.isEcho {
			c.echoShares.give(it.echo)
		}
		it.err <- err
	}
}

// linkSend sends b with no deadline: directly when the lane is empty, else
// behind what it holds, waiting for its turn (as Send itself may wait).
func (c *Client) linkSend(b []byte) error {
	if c.lane.held.Load() == 0 {
		return c.link.Send(b)
	}
	return <-c.enqueue(b).err
}

// maxAsyncHeld bounds the lane for sends that do not wait: past it they
// are dropped, counted in Client.EchoesDropped.
const maxAsyncHeld = 64

// linkSendAsync is linkSend for an echo answer (on the link's receive
// path, it must not wait) to a request from share (the requester's
// identity, see echoShare): behind a non-empty lane it queues b and
// returns, or drops it (counted) when the lane already holds maxAsyncHeld
// PDUs — a flood of echo requests at a client whose link is congested must
// not grow its memory without bound (review13) — or when share holds its
// share of the echo answers queued (Session 21: past half of maxAsyncHeld,
// maxAsyncHeld/(k+1), k the requesters with answers queued; counted in
// EchoesDroppedShare too), so one flooding peer cannot take every place
// and leave the others' pings unanswered.
func (c *Client) linkSendAsync(b []byte, share pdu.Name) {
	switch held := c.lane.held.Load(); {
	case held == 0:
		_ = c.link.Send(b)
	case held >= maxAsyncHeld:
		c.EchoesDropped.Add(1)
	case !c.echoShares.take(share):
		c.EchoesDropped.Add(1)
		c.EchoesDroppedShare.Add(1)
	default:
		c.enqueueItem(&laneItem{b: b, err: make(chan error, 1), echo: share, isEcho: true})
	}
}

// sendBy sends b (which the caller must not modify afterwards) through the
// lane and waits for the send at most until deadline or ctx is done. On
// the deadline it returns errSendBlocked (an ErrTimeout), on ctx its
// error; the PDU is then sent later only if it was already being sent.
func (c *Client) sendBy(ctx context.Context, deadline <-chan time.Time, b []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	it := c.enqueue(b)
	select {
	case err := <-it.err:
		return err
	default:
	}
	select {
	case err := <-it.err:
		return err
	case <-deadline:
		it.abandoned.Store(true)
		return errSendBlocked
	case <-ctx.Done():
		it.abandoned.Store(true)
		return ctx.Err()
	case <-c.ctx.Done():
		it.abandoned.Store(true)
		return ErrClosed
	}
}
