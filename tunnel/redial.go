package tunnel

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

// ErrNotConnected: a Redialer has no link up at the moment.
var ErrNotConnected = errors.New("tunnel: not connected")

// Backoff bounds the wait between reconnection attempts: it starts at Min,
// doubles after every failure up to Max, and is randomised by ±25 % so that
// many nodes cut off together do not redial in step. Zero values: Min
// 100 ms, Max 30 s.
type Backoff struct {
	Min, Max time.Duration
}

func (b Backoff) withDefaults() Backoff {
	if b.Min <= 0 {
		b.Min = 100 * time.Millisecond
	}
	if b.Max < b.Min {
		b.Max = max(30*time.Second, b.Min)
	}
	return b
}

// Redialer keeps one link to a peer up: it dials, and whenever the link goes
// down it dials again after a backoff, until Close. An endpoint behind NAT
// uses one to hold its uplink to its upstream router.
type Redialer struct {
	d      Dialer
	addr   net.Addr
	peer   pdu.Name
	kind   Kind
	bo     Backoff
	onLink func(Link)
	log    *zap.Logger

	mu   sync.Mutex
	cur  Link
	ctx  context.Context
	stop context.CancelFunc
	done chan struct{}
}

// NewRedialer starts keeping a link of kind to peer at addr. onLink, if not
// nil, is called with every new link once it is up (from the Redialer's
// goroutine).
func NewRedialer(d Dialer, addr net.Addr, peer pdu.Name, kind Kind, b Backoff, onLink func(Link), log *zap.Logger) *Redialer {
	if log == nil {
		log = zap.NewNop()
	}
	r := &Redialer{d: d, addr: addr, peer: peer, kind: kind, bo: b.withDefaults(), onLink: onLink,
		log: log.With(logging.Peer(peer), logging.Addr(addr.String())), done: make(chan struct{})}
	r.ctx, r.stop = context.WithCancel(context.Background())
	go r.run()
	return r
}

// Link is the current link, nil while reconnecting.
func (r *Redialer) Link() Link {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

// Send sends on the current link, or fails with ErrNotConnected.
func (r *Redialer) Send(p []byte) error {
	l := r.Link()
	if l == nil {
		return ErrNotConnected
	}
	return l.Send(p)
}

// Close stops redialing, closes the current link and waits.
func (r *Redialer) Close() error {
	r.stop()
	<-r.done
	return nil
}

func (r *Redialer) run() {
	defer close(r.done)
	wait := time.Duration(0)
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-time.After(wait):
		}
		l, err := r.d.Dial(r.ctx, r.addr, r.peer, r.kind)
		if err != nil {
			if r.ctx.Err() != nil {
				return
			}
			wait = r.next(wait)
			r.log.Info("dial failed, retrying", zap.Error(err), zap.Duration("backoff", wait))
			continue
		}
		wait = 0
		r.mu.Lock()
		r.cur = l
		r.mu.Unlock()
		if r.onLink != nil {
			r.onLink(l)
		}
		select {
		case <-l.Done():
			r.log.Info("link lost, redialing", logging.Reason(CloseReason(l.Err())))
		case <-r.ctx.Done():
			l.Close()
			<-l.Done()
		}
		r.mu.Lock()
		r.cur = nil
		r.mu.Unlock()
		if r.ctx.Err() != nil {
			return
		}
		wait = r.bo.Min
	}
}

// next doubles the wait within the bounds, with ±25 % jitter.
func (r *Redialer) next(prev time.Duration) time.Duration {
	w := min(max(2*prev, r.bo.Min), r.bo.Max)
	return w*3/4 + rand.N(w/2+1)
}
