package router

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/internal/clock"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/tunnel"
)

// PeerBook remembers what each peer the tunnel verified is — a router of a
// given domain, or an endpoint — so that the router makes the right kind of
// face for a link. Its Verifier is the tunnel's PeerVerifier.
type PeerBook struct {
	mu sync.Mutex
	m  map[pdu.Name]peerEntry
}

type peerEntry struct {
	kind   FaceKind
	domain pdu.Name
	exp    time.Time
}

// maxPeerBook bounds the book; expired entries are pruned beyond it.
const maxPeerBook = 1 << 16

// NewPeerBook returns an empty book.
func NewPeerBook() *PeerBook { return &PeerBook{m: make(map[pdu.Name]peerEntry)} }

// Verifier checks peers as tunnel.CertVerifier does (the TLS key is the
// metadata's, the membership is valid in a trusted domain) and records the
// peer's kind and domain.
func (b *PeerBook) Verifier(v *certs.Verifier) tunnel.PeerVerifier {
	return b.VerifierOf(func() *certs.Verifier { return v })
}

// VerifierOf is Verifier with the trusted domains of current(), read at
// each check: a router's reload (trusted_domains, clock_skew) reaches its
// tunnel's handshakes and the renewals on live tunnels at once.
func (b *PeerBook) VerifierOf(current func() *certs.Verifier) tunnel.PeerVerifier {
	return func(key ed25519.PublicKey, creds []byte) (pdu.Name, time.Time, error) {
		name, exp, err := tunnel.CertVerifier(current())(key, creds)
		if err != nil {
			return name, exp, err
		}
		meta, member, _, err := tunnel.DecodeCredentials(creds)
		if err != nil || !bytes.Equal(meta.Key, key) {
			return pdu.Name{}, time.Time{}, errors.New("router: credentials changed under verification")
		}
		e := peerEntry{kind: FaceEndpoint, domain: member.Issuer, exp: exp}
		if meta.Kind == certs.KindRouter {
			e.kind = FaceRouter
		}
		b.mu.Lock()
		if len(b.m) >= maxPeerBook {
			now := clock.Now() // exp is a certificate NotAfter
			for n, old := range b.m {
				if !old.exp.IsZero() && old.exp.Before(now) {
					delete(b.m, n)
				}
			}
		}
		if len(b.m) < maxPeerBook {
			b.m[name] = e
		}
		b.mu.Unlock()
		return name, exp, nil
	}
}

// Classify says what peer is; ok is false for a peer never verified.
func (b *PeerBook) Classify(peer pdu.Name) (kind FaceKind, domain pdu.Name, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.m[peer]
	return e.kind, e.domain, ok
}

// Acceptor hands out authenticated links; *tunnel.Endpoint is one.
type Acceptor interface {
	Accept(ctx context.Context) (tunnel.Link, error)
}

// Serve makes a face of every link ln accepts, until ctx ends or ln
// closes.
func (r *Router) Serve(ctx context.Context, ln Acceptor) error {
	for {
		l, err := ln.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, tunnel.ErrClosed) {
				return nil
			}
			return fmt.Errorf("router: accept: %w", err)
		}
		if _, err := r.adopt(l); err != nil {
			r.logLim.Info(r.log, l.Peer().String(), "link refused", logging.Peer(l.Peer()), zap.Error(err))
			_ = l.Close()
		}
	}
}

// adopt returns l's face, making one if l is new. The kind and domain come
// from Deps.Classify (the tunnel's verification); with Classify set, a peer
// it does not know is refused (its domain is unknown, so the policy cannot
// be applied). Without Classify every peer is an endpoint of the router's
// own domain. A configured peer router is a router face either way.
func (r *Router) adopt(l Link) (*Face, error) {
	if f := r.faceFor(l); f != nil {
		return f, nil
	}
	select {
	case <-l.Done():
		return nil, errors.New("router: link already down")
	default:
	}
	kind, domain := FaceEndpoint, pdu.Name{}
	known := r.classify == nil
	if r.classify != nil {
		if k, d, ok := r.classify(l.Peer()); ok {
			kind, domain, known = k, d, true
		}
	}
	for _, p := range r.cfg.Peers {
		if p.Name == l.Peer() && kind != FaceRouter {
			kind, domain, known = FaceRouter, r.own.Load().domain.Name(), true
		}
	}
	if !known {
		r.met.facesRefused.WithLabelValues("unclassified").Inc()
		return nil, fmt.Errorf("%w: %s was not classified by the tunnel", ErrForbidden, l.Peer())
	}
	addr := ""
	if ra, ok := l.(interface{ RemoteAddr() net.Addr }); ok && ra.RemoteAddr() != nil {
		addr = ra.RemoteAddr().String()
	}
	f, err := r.Attach(l, kind, domain, addr)
	if errors.Is(err, errAlreadyFace) {
		if f := r.faceFor(l); f != nil {
			return f, nil
		}
	}
	return f, err
}

// TunnelDial adapts a tunnel dialer (a *tunnel.Endpoint) to DialFunc.
func TunnelDial(d tunnel.Dialer) DialFunc {
	return func(ctx context.Context, peer pdu.Name, addr string, raw bool) (Link, error) {
		ua, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", addr, err)
		}
		kind := tunnel.KindQUIC
		if raw {
			kind = tunnel.KindRaw
		}
		l, err := d.Dial(ctx, ua, peer, kind)
		if err != nil {
			return nil, err
		}
		return l, nil
	}
}

// TunnelHandler adapts HandlePDU to a tunnel.Handler.
func (r *Router) TunnelHandler() tunnel.Handler {
	return func(l tunnel.Link, p []byte) { r.HandlePDU(l, p) }
}
