package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/tunnel"
)

// RouterAddr is one router an endpoint may attach to: its tunnel address
// ("ip:port") and its name, which the tunnel handshake must prove.
type RouterAddr struct {
	Addr string
	Name pdu.Name
}

// AttachOptions tunes how an attachment is kept up. Zero values take the
// defaults in the comments.
type AttachOptions struct {
	// DialTimeout bounds one dial of one router before the next one is
	// tried. Default 1.5s.
	DialTimeout time.Duration
	// BackoffMin and BackoffMax bound the wait after every configured
	// router failed once: it starts at BackoffMin and doubles up to
	// BackoffMax (±25 % jitter). Defaults 100ms and 5s.
	BackoffMin, BackoffMax time.Duration
	// OthersFirst redials the other routers before the one just lost (a
	// gateway moving between edge routers: the lost one is likely dead,
	// and each dial of a dead router costs DialTimeout). It is still
	// tried, last in each round.
	OthersFirst bool
	// Reattached, when set, is called after every re-attachment (not the
	// first attachment), once the endpoint's names are advertised again
	// over the new tunnel (at most 5 s after it is up), with the router
	// now attached and how long the endpoint was without a tunnel. A
	// tunnel that closes during that wait gets no call: the endpoint
	// redials at once, and the outage the next call reports runs from the
	// loss of the tunnel before it (review7: it ran from that short-lived
	// tunnel's close). It must not block.
	Reattached func(router pdu.Name, after time.Duration)
}

func (o AttachOptions) withDefaults() AttachOptions {
	if o.DialTimeout <= 0 {
		o.DialTimeout = 1500 * time.Millisecond
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = 100 * time.Millisecond
	}
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = max(5*time.Second, o.BackoffMin)
	}
	return o
}

// AttachAny attaches to the first of routers that answers (in order) and
// keeps the attachment up for the client's lifetime: when the tunnel goes
// down it dials again — the router it lost first, then the others in turn,
// then again after a backoff — and re-advertises every name the client
// holds, over the new tunnel. The client's Done is closed only by Close.
// While no tunnel is up, sends fail with tunnel.ErrNotConnected and
// requests time out; the caller's retries carry them over the gap.
func (e *Endpoint) AttachAny(ctx context.Context, routers []RouterAddr, opts AttachOptions) (*Client, error) {
	if len(routers) == 0 {
		return nil, errors.New("attach: no router configured")
	}
	s := &stickyLink{e: e, routers: routers, opts: opts.withDefaults(), done: make(chan struct{}),
		kick: make(chan struct{}, 1), log: e.cfg.Logger}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	var errs []error
	for i := range routers {
		l, err := s.dial(ctx, i)
		if err == nil {
			s.cur, s.idx = l, i
			break
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if s.cur == nil {
		return nil, fmt.Errorf("attach: %w", errors.Join(errs...))
	}
	c := New(e.cfg.Identity, s, e.cfg.Options)
	e.quicCredentials(c)
	s.c = c
	c.wg.Add(1)
	go c.readvertiser()
	e.clients.Store(s.cur, c)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.keep()
	e.sticky.Store(s, struct{}{})
	return c, nil
}

// stickyLink is the Link of an AttachAny client: the current tunnel,
// replaced whenever it goes down.
type stickyLink struct {
	e       *Endpoint
	routers []RouterAddr
	opts    AttachOptions
	log     *zap.Logger
	c       *Client

	mu  sync.Mutex
	cur tunnel.Link // nil while redialing
	idx int         // routers[idx] is (or was last) attached

	// kick ends a redial's backoff wait: the endpoint's credentials were
	// reloaded (a renewed membership the router refused while it was
	// expired), so the next dial may work now (Session 18: a capsule
	// server re-attached up to BackoffMax after its renewal, where a
	// router redials its peers at once).
	kick chan struct{}

	done   chan struct{}
	once   sync.Once
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (s *stickyLink) dial(ctx context.Context, i int) (tunnel.Link, error) {
	ra := s.routers[i]
	ua, err := net.ResolveUDPAddr("udp", ra.Addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ra.Addr, err)
	}
	dctx, cancel := context.WithTimeout(ctx, s.opts.DialTimeout)
	defer cancel()
	l, err := s.e.ep.Dial(dctx, ua, ra.Name, s.e.kind())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ra.Addr, err)
	}
	return l, nil
}

// Peer is the router attached now (or last).
func (s *stickyLink) Peer() pdu.Name {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil {
		return s.cur.Peer()
	}
	return s.routers[s.idx].Name
}

// Send sends on the current tunnel. While there is none the PDU is
// dropped and counted (Client.Unsent), as a lossy link would: PDUs are
// datagrams, and every request is retried across the gap.
func (s *stickyLink) Send(p []byte) error {
	s.mu.Lock()
	l := s.cur
	s.mu.Unlock()
	if l == nil {
		if s.c != nil {
			s.c.Unsent.Add(1)
		}
		return nil
	}
	err := l.Send(p)
	if err != nil {
		select {
		case <-l.Done():
			// The tunnel went down under us: the same.
			if s.c != nil {
				s.c.Unsent.Add(1)
			}
			return nil
		default:
		}
	}
	return err
}

// Done is closed by Close only.
func (s *stickyLink) Done() <-chan struct{} { return s.done }

// Close stops redialing and closes the current tunnel.
func (s *stickyLink) Close() error {
	s.once.Do(func() {
		s.e.sticky.Delete(s)
		s.cancel()
		s.wg.Wait()
		s.mu.Lock()
		l := s.cur
		s.cur = nil
		s.mu.Unlock()
		if l != nil {
			s.e.clients.Delete(l)
			_ = l.Close()
		}
		close(s.done)
	})
	return nil
}

// keep waits for the tunnel to go down and replaces it.
func (s *stickyLink) keep() {
	defer s.wg.Done()
	// lost is when the endpoint lost its working tunnel: kept across a new
	// tunnel that closes before it was re-advertised on (no Reattached
	// call for it), so the outage Reattached reports is the whole of it.
	var lost time.Time
	for {
		s.mu.Lock()
		l := s.cur
		s.mu.Unlock()
		select {
		case <-s.ctx.Done():
			return
		case <-l.Done():
		}
		if lost.IsZero() {
			lost = time.Now()
		}
		s.log.Warn("tunnel to the router lost; redialing", logging.Peer(l.Peer()), logging.Addr(s.routers[s.idx].Addr),
			logging.Reason(tunnel.CloseReason(l.Err())), zap.String("fix", routerLostFix))
		s.mu.Lock()
		s.cur = nil
		s.mu.Unlock()
		s.e.clients.Delete(l)
		nl, idx, ok := s.redial()
		if !ok {
			return
		}
		s.e.clients.Store(nl, s.c)
		s.mu.Lock()
		s.cur, s.idx = nl, idx
		s.mu.Unlock()
		s.log.Info("re-attached", logging.Peer(nl.Peer()), logging.Addr(s.routers[idx].Addr),
			zap.Duration("after", time.Since(lost)))
		gap := time.Since(lost)
		advertised := s.c.relinked()
		if s.opts.Reattached != nil {
			// What the callback sends (a subscription's renewal) must come
			// from a name the new router has accepted on this link, or it
			// drops it: wait for the re-advertisement, a few seconds at most.
			// A new link that closes meanwhile ends the wait at once: the
			// loop redials (the callback's sends would go nowhere).
			t := time.NewTimer(reattachAdvertiseWait)
			select {
			case <-advertised:
			case <-t.C:
			case <-nl.Done():
				t.Stop()
				continue
			case <-s.ctx.Done():
				t.Stop()
				return
			}
			t.Stop()
			s.opts.Reattached(nl.Peer(), gap)
		}
		lost = time.Time{}
	}
}

// reattachAdvertiseWait bounds how long the Reattached callback waits for
// the re-advertisement over the new tunnel.
const reattachAdvertiseWait = 5 * time.Second

// routerLostFix is what an operator does about an endpoint's lost
// tunnel to its router.
const routerLostFix = "nothing if the router is restarting: this node redials it (then the other routers listed) and advertises its names again on its own, logging 're-attached'; if it stays away, check the router at addr (gdp doctor --remote) or list a second router under routers:"

// redial tries the routers in turn, starting with the one lost, with a
// backoff between rounds, until one answers or the link is closed. A kick
// (the endpoint reloaded its credentials) starts the next round at once
// and the backoff over.
func (s *stickyLink) redial() (tunnel.Link, int, bool) {
	select {
	case <-s.kick: // a reload while attached: nothing to hurry
	default:
	}
	wait := s.opts.BackoffMin
	start := s.idx
	if s.opts.OthersFirst {
		start++
	}
	for {
		for k := range s.routers {
			i := (start + k) % len(s.routers)
			l, err := s.dial(s.ctx, i)
			if err == nil {
				return l, i, true
			}
			if s.ctx.Err() != nil {
				return nil, 0, false
			}
			s.log.Info("router dial failed", logging.Peer(s.routers[i].Name), logging.Addr(s.routers[i].Addr), zap.Error(err))
		}
		t := time.NewTimer(wait*3/4 + rand.N(wait/2+1))
		select {
		case <-s.ctx.Done():
			t.Stop()
			return nil, 0, false
		case <-s.kick:
			t.Stop()
			wait = s.opts.BackoffMin
			continue
		case <-t.C:
		}
		wait = min(2*wait, s.opts.BackoffMax)
	}
}
