package router

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/tunnel"
)

// Node is a router running on real sockets: a tunnel endpoint whose links
// become the router's faces. It is what `gdp router` runs and what the
// end-to-end tests start on loopback.
type Node struct {
	Router *Router
	Tunnel *tunnel.Endpoint

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// StartNode starts a tunnel endpoint on conn (QUIC) and raw (raw
// GDP-in-UDP; nil disables it), and a router behind it. deps.Dial and
// deps.Classify are filled in from the tunnel; deps.Verifier decides which
// peers the tunnel accepts. The node owns both sockets.
func StartNode(cfg Config, deps Deps, conn, raw net.PacketConn) (*Node, error) {
	if deps.Identity == nil || deps.Member == nil || deps.Domain == nil {
		return nil, errors.New("router: identity, membership and domain are required")
	}
	if deps.Verifier == nil {
		deps.Verifier = certs.NewVerifier(deps.Domain)
	}
	// The bound address, so that a configured port 0 publishes the real one.
	cfg.Listen = conn.LocalAddr().String()
	lim := cfg.WithDefaults().Face
	book := NewPeerBook()
	var rp atomic.Pointer[Router]
	tc := tunnel.Config{
		Identity: tunnel.CertIdentity(deps.Identity, deps.Member, deps.Domain),
		// The router's trusted domains as its last reload set them (the
		// startup ones until the router exists).
		Verify: book.VerifierOf(func() *certs.Verifier {
			if r := rp.Load(); r != nil {
				return r.verifier()
			}
			return deps.Verifier
		}),
		Conn: conn,
		Handler: func(l tunnel.Link, p []byte) {
			if r := rp.Load(); r != nil {
				r.HandlePDU(l, p)
			}
		},
		Logger:          deps.Logger,
		KeepAlivePeriod: cfg.Tunnel.WithDefaults().KeepAlive.Std(),
		IdleTimeout:     cfg.Tunnel.WithDefaults().IdleTimeout.Std(),
		// Source address validation when handshakes pile up.
		RetryAboveHandshakes: cfg.Tunnel.WithDefaults().RetryAboveHandshakes,
		CountDatagramDrops:   cfg.Tunnel.CountDatagramDrops,
		// What one peer may make the router hold per tunnel; the tunnels
		// per identity are bounded by face.max_per_identity.
		MaxStreams:    -1, // a router takes no bulk streams
		MaxPDUStreams: lim.MaxPDUStreams,
		ReceiveWindow: lim.ReceiveWindow,
	}
	if raw != nil {
		tc.Raw = raw
	}
	ep, err := tunnel.NewEndpoint(tc)
	if err != nil {
		return nil, err
	}
	deps.Dial = TunnelDial(ep)
	deps.Classify = book.Classify
	r, err := New(cfg, deps)
	if err != nil {
		_ = ep.Close()
		return nil, err
	}
	rp.Store(r)
	_ = r.reg.Register(ep.Collector()) // gdp_tunnel_*; already there if the registry is shared
	n := &Node{Router: r, Tunnel: ep}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := r.Serve(ctx, ep); err != nil {
			r.log.Warn("accept loop ended", zap.Error(err))
		}
	}()
	return n, nil
}

// Reload puts a reload's credentials, trusted domains and domain policy
// in force in the router and its tunnel's identity (SIGHUP), all or
// nothing (Session 18): both are checked before either changes. Before,
// `gdp router` reloaded the router and then set the tunnel's identity, and
// a tunnel that refused it left the router on the new trust and the
// tunnel showing the old membership.
func (n *Node) Reload(id *certs.Identity, member *certs.Cert, domain *certs.Metadata, v *certs.Verifier, allow []pdu.Name) error {
	if err := n.Router.CheckReload(id, member, domain, v); err != nil {
		return err
	}
	tid, err := n.Tunnel.PrepareIdentity(tunnel.CertIdentity(id, member, domain))
	if err != nil {
		return err
	}
	if err := n.Router.Reload(id, member, domain, v, allow); err != nil {
		return err // checked above with the same arguments: a membership that expired since
	}
	tid.Apply()
	return nil
}

// Addr is the tunnel socket's address.
func (n *Node) Addr() string { return n.Tunnel.Addr().String() }

// Close stops accepting, closes the router (every face) and the sockets.
func (n *Node) Close() error {
	n.cancel()
	err := n.Router.Close()
	err = errors.Join(err, n.Tunnel.Close())
	n.wg.Wait()
	return err
}
