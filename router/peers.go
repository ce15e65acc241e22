package router

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

// peerFace returns the live tunnel to router n, if any.
func (r *Router) peerFace(n pdu.Name) *Face {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f := r.peers[n]; f != nil && !f.closed.Load() {
		return f
	}
	return nil
}

// upstreamFace returns the tunnel to the configured upstream, if up.
func (r *Router) upstreamFace() *Face {
	if r.upstream.IsZero() {
		return nil
	}
	return r.peerFace(r.upstream)
}

// dialPeer opens a tunnel to router name at one of addrs (in order) and
// attaches it as a router face of domain. Concurrent calls for one name
// share a single dial.
func (r *Router) dialPeer(ctx context.Context, name, domain pdu.Name, addrs []string) (*Face, error) {
	if !r.policy().allows(domain) {
		return nil, fmt.Errorf("%w: %s in domain %s", ErrForbidden, name, domain)
	}
	for {
		if f := r.peerFace(name); f != nil {
			return f, nil
		}
		r.mu.Lock()
		wait, busy := r.dialing[name]
		if !busy {
			wait = make(chan struct{})
			r.dialing[name] = wait
		}
		r.mu.Unlock()
		if busy {
			select {
			case <-wait:
				if f := r.peerFace(name); f != nil {
					return f, nil
				}
				return nil, fmt.Errorf("dial %s: concurrent dial failed", name)
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		f, err := r.dialOnce(ctx, name, domain, addrs, false)
		r.mu.Lock()
		delete(r.dialing, name)
		r.mu.Unlock()
		close(wait)
		return f, err
	}
}

func (r *Router) dialOnce(ctx context.Context, name, domain pdu.Name, addrs []string, raw bool) (*Face, error) {
	if len(addrs) == 0 {
		return nil, fmt.Errorf("dial %s: no addresses", name)
	}
	var errs []error
	for _, a := range addrs {
		l, err := r.dial(ctx, name, a, raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a, err))
			continue
		}
		if l.Peer() != name {
			_ = l.Close()
			errs = append(errs, fmt.Errorf("%s: peer is %s", a, l.Peer()))
			continue
		}
		f, err := r.Attach(l, FaceRouter, domain, a)
		if err != nil {
			_ = l.Close()
			return nil, err
		}
		return f, nil
	}
	return nil, fmt.Errorf("dial %s: %w", name, errors.Join(errs...))
}

// Redial backoff of configured peers: the first redial after a tunnel
// drops is immediate, then the wait doubles from peerBackoffMin up to
// peerBackoffMax (±25 % jitter, so routers cut off together do not
// redial in step).
const (
	peerBackoffMin = 100 * time.Millisecond
	peerBackoffMax = 5 * time.Second
)

// keepPeer keeps a tunnel to a configured peer up, redialling with
// exponential backoff while it is down. A Reload ends the wait and starts
// the backoff over.
func (r *Router) keepPeer(ctx context.Context, p PeerConfig) {
	if r.dial == nil {
		r.log.Warn("configured peer ignored: no dialer", logging.Peer(p.Name))
		return
	}
	backoff := peerBackoffMin
	var lost time.Time // when the tunnel went down; zero: not lost
	for ctx.Err() == nil {
		f := r.peerFace(p.Name)
		if f != nil && linkDown(f.link) {
			// down and not detached yet: wait for the detach rather than
			// spin (or log the loss again)
			select {
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Millisecond):
			}
			continue
		}
		if f == nil {
			reloaded := r.reloadSignal()
			dctx, cancel := context.WithTimeout(ctx, r.cfg.Resolver.Timeout.Std())
			var err error
			f, err = r.dialOnce(dctx, p.Name, r.own.Load().domain.Name(), []string{p.Addr}, p.Raw)
			cancel()
			if err != nil {
				r.log.Info("peer dial failed", logging.Peer(p.Name), logging.Addr(p.Addr), zap.Error(err),
					zap.Duration("backoff", backoff))
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff*3/4 + rand.N(backoff/2+1)):
					backoff = min(2*backoff, peerBackoffMax)
				case <-reloaded:
					// new credentials (a renewed membership, new trust):
					// the failure may be gone, so the backoff starts over
					backoff = peerBackoffMin
				}
				continue
			}
			backoff = peerBackoffMin
			if p.Name == r.upstream {
				r.pushAllUpstream(f)
			}
		}
		if !lost.IsZero() { // redialled, or the peer dialled us
			r.log.Info("configured peer back", logging.Peer(p.Name), logging.Addr(p.Addr),
				zap.Duration("after", time.Since(lost).Round(time.Millisecond)))
			lost = time.Time{}
		}
		select {
		case <-ctx.Done():
			return
		case <-f.link.Done():
		}
		if ctx.Err() == nil && !r.draining.Load() {
			lost = time.Now()
			var reason error
			if e, ok := f.link.(interface{ Err() error }); ok { // a tunnel.Link says why
				reason = e.Err()
			}
			r.log.Warn("tunnel to a configured peer lost; redialing", logging.Peer(p.Name), logging.Addr(p.Addr),
				zap.NamedError("reason", reason), zap.String("fix", peerLostFix))
		}
	}
}

// linkDown reports whether l has gone down.
func linkDown(l Link) bool {
	select {
	case <-l.Done():
		return true
	default:
		return false
	}
}

// peerLostFix is what an operator does about a configured peer whose
// tunnel went down.
const peerLostFix = "nothing if the peer is restarting: this router redials it on its own (100 ms, doubling to 5 s) and logs 'configured peer back'; if it stays away, check the peer at addr (gdp doctor --remote) and the underlay between them"

// PeerInfo is a peer router as the admin API shows it.
type PeerInfo struct {
	Name     pdu.Name `json:"name"`
	Face     uint64   `json:"face"`
	Domain   pdu.Name `json:"domain"`
	Addr     string   `json:"addr,omitempty"`
	Upstream bool     `json:"upstream,omitempty"`
}

// Peers lists the routers this router has a tunnel to.
func (r *Router) Peers() []PeerInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]PeerInfo, 0, len(r.peers))
	for n, f := range r.peers {
		out = append(out, PeerInfo{Name: n, Face: f.id, Domain: f.domain, Addr: f.addr, Upstream: n == r.upstream})
	}
	return out
}
