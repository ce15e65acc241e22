package client

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/tunnel"
)

// EndpointConfig says who an endpoint is and which socket it uses.
type EndpointConfig struct {
	// Identity, Member and Domain are the endpoint's name, key and domain
	// membership, shown to routers in the tunnel handshake. Required.
	Identity *certs.Identity
	Member   *certs.Cert
	Domain   *certs.Metadata
	// Verifier holds the domains whose routers are trusted. Default: trust
	// Domain only.
	Verifier *certs.Verifier
	// Conn is the UDP socket for tunnels; owned by the endpoint. Required.
	Conn net.PacketConn
	// Raw is a second UDP socket for raw GDP-in-UDP links (PROTOCOL.md
	// §4.4); with it, Attach asks the router for a raw link (the router
	// needs raw_listen), which batches sends and costs less CPU per PDU
	// than QUIC datagrams. Default nil: QUIC links.
	Raw net.PacketConn
	// Logger; nil logs nothing.
	Logger *zap.Logger
	// Options apply to every Client the endpoint attaches.
	Options Options
	// KeepAlive and IdleTimeout are the tunnels' liveness (tunnel.Config).
	// Defaults tunnel.DefaultKeepAlive and tunnel.DefaultIdleTimeout.
	KeepAlive, IdleTimeout time.Duration
	// RetryAboveHandshakes is tunnel.Config's: incoming handshakes in
	// flight before new clients must prove their address. Default
	// tunnel.DefaultRetryAboveHandshakes.
	RetryAboveHandshakes int
	// CountDatagramDrops is tunnel.Config's: count the QUIC datagrams
	// quic-go discards (costly; default off).
	CountDatagramDrops bool
}

// Endpoint is an endpoint's tunnel side: it dials routers and hands each
// link's PDUs to the Client attached over it.
type Endpoint struct {
	cfg     EndpointConfig
	ep      *tunnel.Endpoint
	clients sync.Map   // tunnel.Link -> *Client
	sticky  sync.Map   // *stickyLink -> struct{}: AttachAny's, kicked by Reload
	mu      sync.Mutex // cfg.Member, cfg.Domain and cfg.Verifier (Reload)
}

// NewEndpoint starts the tunnel endpoint.
func NewEndpoint(cfg EndpointConfig) (*Endpoint, error) {
	if cfg.Identity == nil || cfg.Member == nil || cfg.Domain == nil || cfg.Conn == nil {
		return nil, fmt.Errorf("client: endpoint needs identity, membership, domain and a socket")
	}
	if cfg.Verifier == nil {
		cfg.Verifier = certs.NewVerifier(cfg.Domain)
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Options.Logger == nil {
		cfg.Options.Logger = cfg.Logger
	}
	e := &Endpoint{cfg: cfg}
	ep, err := tunnel.NewEndpoint(tunnel.Config{
		Identity: tunnel.CertIdentity(cfg.Identity, cfg.Member, cfg.Domain),
		// Read at each check: a reload's trusted domains reach the
		// router tunnels' handshakes and renewals at once.
		Verify: func(key ed25519.PublicKey, creds []byte) (pdu.Name, time.Time, error) {
			return tunnel.CertVerifier(e.verifier())(key, creds)
		},
		Conn:    cfg.Conn,
		Raw:     cfg.Raw,
		Handler: e.handle,
		Logger:  cfg.Logger,

		KeepAlivePeriod:      cfg.KeepAlive,
		IdleTimeout:          cfg.IdleTimeout,
		RetryAboveHandshakes: cfg.RetryAboveHandshakes,
		CountDatagramDrops:   cfg.CountDatagramDrops,
	})
	if err != nil {
		return nil, err
	}
	e.ep = ep
	return e, nil
}

func (e *Endpoint) handle(l tunnel.Link, p []byte) {
	if c, ok := e.clients.Load(l); ok {
		c.(*Client).HandlePDU(p)
	}
}

// Attach opens a tunnel to the router named router at addr ("ip:port") and
// returns a Client over it. Advertise its names next.
func (e *Endpoint) Attach(ctx context.Context, addr string, router pdu.Name) (*Client, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("attach %s: %w", addr, err)
	}
	l, err := e.ep.Dial(ctx, ua, router, e.kind())
	if err != nil {
		return nil, fmt.Errorf("attach %s: %w", addr, err)
	}
	c := New(e.cfg.Identity, &unregister{Link: l, e: e}, e.cfg.Options)
	e.quicCredentials(c)
	e.clients.Store(l, c)
	return c, nil
}

// kind is the link kind Attach asks for: raw with a raw socket.
func (e *Endpoint) kind() tunnel.Kind {
	if e.cfg.Raw != nil {
		return tunnel.KindRaw
	}
	return tunnel.KindQUIC
}

// Close closes every link and the socket.
func (e *Endpoint) Close() error { return e.ep.Close() }

// unregister forgets the client when its link is closed.
type unregister struct {
	tunnel.Link
	e *Endpoint
}

func (u *unregister) Close() error {
	u.e.clients.Delete(u.Link)
	return u.Link.Close()
}

// Collector exposes the endpoint's tunnel counters (gdp_tunnel_*) to
// Prometheus.
func (e *Endpoint) Collector() prometheus.Collector { return e.ep.Collector() }

// Reload replaces the membership the endpoint shows routers (a renewal,
// on SIGHUP): new tunnels present it; the identity must stay the same.
// When v is not nil it also replaces the trusted domains (Session 17):
// the router tunnels' handshakes and renewals and every client's QUIC
// over names (its listeners' and dials' peer checks, VerifyCredentials)
// check against v from then on, and (Session 18) the router links open
// are checked again, those whose router v refuses closed; a domain v no
// longer lists proves nothing here. nil keeps the trusted domains in
// force.
func (e *Endpoint) Reload(member *certs.Cert, domain *certs.Metadata, v *certs.Verifier) error {
	if err := e.ep.SetIdentity(tunnel.CertIdentity(e.cfg.Identity, member, domain)); err != nil {
		return err
	}
	trustChanged := v != nil
	e.mu.Lock()
	e.cfg.Member, e.cfg.Domain = member, domain
	if v != nil {
		e.cfg.Verifier = v
	}
	v = e.cfg.Verifier
	e.mu.Unlock()
	// The router links verified under the old trust: one whose router no
	// longer verifies (a partner's router whose domain was withdrawn, the
	// own domain's key replaced) closes now, not when it drops or its
	// router renews (Session 18); the attachment redials under the new
	// trust ("tunnel to the router lost").
	if trustChanged {
		e.ep.RecheckPeers()
	}
	var err error
	e.clients.Range(func(_, c any) bool {
		err = errors.Join(err, c.(*Client).SetQUICCredentials(member, domain, v))
		return true
	})
	// An attachment waiting out its redial backoff tries again now: the
	// router may have refused the credentials just replaced.
	e.sticky.Range(func(s, _ any) bool {
		select {
		case s.(*stickyLink).kick <- struct{}{}:
		default:
		}
		return true
	})
	return err
}

// verifier is the trusted domains in force.
func (e *Endpoint) verifier() *certs.Verifier {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cfg.Verifier
}

// quicCredentials gives c the endpoint's credentials for QUIC over names.
func (e *Endpoint) quicCredentials(c *Client) {
	e.mu.Lock()
	member, domain, v := e.cfg.Member, e.cfg.Domain, e.cfg.Verifier
	e.mu.Unlock()
	if err := c.SetQUICCredentials(member, domain, v); err != nil {
		e.cfg.Logger.Warn("no credentials for quic over names", zap.Error(err))
	}
}
