package gateway

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

// UplinkConfig is how the gateway reaches the overlay.
type UplinkConfig struct {
	Identity *certs.Identity // the gateway's identity (a client key)
	Member   *certs.Cert     // its membership certificate
	Domain   *certs.Metadata // its domain
	Verifier *certs.Verifier // trusted domains (nil: Domain only)
	// Conn is the tunnel socket; nil: a UDP socket on Listen.
	Conn   net.PacketConn
	Listen string
	// Routers are the edge routers, in order of preference: the first that
	// answers is attached; when its tunnel fails the others are tried in
	// turn (and the lost one again), with backoff.
	Routers []client.RouterAddr
	// KeepAlive and IdleTimeout are the tunnel liveness settings; the idle
	// timeout bounds how long a silently dead router goes unnoticed.
	KeepAlive, IdleTimeout time.Duration
	// CountDatagramDrops is tunnel.Config's (YAML tunnel.count_datagram_drops):
	// count the QUIC datagrams quic-go discards on the uplink. Costly: for
	// diagnosis.
	CountDatagramDrops bool
	// RequestTimeout bounds one attempt of a capsule request. Default 2s.
	RequestTimeout time.Duration
	// RtCertLifetime is the validity of the RtCerts the gateway issues
	// for its routes (client.Options; default 1h). Tests shorten it.
	RtCertLifetime time.Duration
	Logger         *zap.Logger
}

// Uplink is the gateway's attachment: an endpoint attached to one of the
// configured routers, its own and session names advertised, and a capsule
// client over it.
type Uplink struct {
	ep   *client.Endpoint
	c    *client.Client
	caps *client.CapsuleClient
	log  *zap.Logger

	reattached atomic.Uint64
	mu         sync.Mutex
	router     pdu.Name
	since      time.Time
	lastGap    time.Duration
	onAttach   []func(pdu.Name, time.Duration)
}

// DialUplink attaches to the first router of cfg.Routers that answers and
// advertises the gateway's own name and its session name.
func DialUplink(ctx context.Context, cfg UplinkConfig) (*Uplink, error) {
	if len(cfg.Routers) == 0 {
		return nil, fmt.Errorf("uplink: no router configured")
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	conn := cfg.Conn
	if conn == nil {
		var err error
		if conn, err = net.ListenPacket("udp", cfg.Listen); err != nil {
			return nil, fmt.Errorf("uplink: listen %s: %w", cfg.Listen, err)
		}
	}
	reqTimeout := cfg.RequestTimeout
	if reqTimeout <= 0 {
		reqTimeout = 2 * time.Second
	}
	ep, err := client.NewEndpoint(client.EndpointConfig{Identity: cfg.Identity, Member: cfg.Member, Domain: cfg.Domain,
		Verifier: cfg.Verifier, Conn: conn, Logger: log, KeepAlive: cfg.KeepAlive, IdleTimeout: cfg.IdleTimeout,
		CountDatagramDrops: cfg.CountDatagramDrops,
		Options:            client.Options{Logger: log, InboxSize: 16384, RequestTimeout: reqTimeout, RtCertLifetime: cfg.RtCertLifetime}})
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("uplink: %w", err)
	}
	u := &Uplink{ep: ep, log: log}
	c, err := ep.AttachAny(ctx, cfg.Routers, client.AttachOptions{Reattached: u.noteReattach, OthersFirst: true})
	if err != nil {
		_ = ep.Close()
		return nil, fmt.Errorf("uplink: %w", err)
	}
	u.c = c
	u.mu.Lock()
	u.router, u.since = c.Router(), time.Now()
	u.mu.Unlock()
	session, err := c.Session()
	if err == nil {
		_, err = c.Advertise(ctx, c.Self(), session)
	}
	if err != nil {
		_ = c.Close()
		_ = ep.Close()
		return nil, fmt.Errorf("uplink: advertise %s: %w", cfg.Identity.Name, err)
	}
	// Routes live until the earliest NotAfter of their chains (the RtCert,
	// an hour; the router's membership): advertised again before that
	// for as long as the gateway runs. Session 20: advertised only here,
	// the gateway's names expired at its router after at most an hour
	// and the answers to its requests were dropped from then on (the
	// life soak, TestUplinkKeepsItsRoutes).
	c.Maintain(context.Background(), func() []client.Route {
		if s, err := c.Session(); err == nil {
			return []client.Route{c.Self(), s}
		}
		return []client.Route{c.Self()}
	}, 5*time.Second)
	u.caps = client.NewCapsuleClient(c, client.CapsuleOptions{Timeout: reqTimeout})
	log.Info("gateway attached", logging.Name(cfg.Identity.Name), logging.Peer(c.Router()))
	return u, nil
}

func (u *Uplink) noteReattach(router pdu.Name, after time.Duration) {
	u.reattached.Add(1)
	u.mu.Lock()
	u.router, u.since, u.lastGap = router, time.Now(), after
	hooks := append([]func(pdu.Name, time.Duration){}, u.onAttach...)
	u.mu.Unlock()
	for _, h := range hooks {
		h(router, after)
	}
}

// OnReattach registers fn, called after every re-attachment.
func (u *Uplink) OnReattach(fn func(router pdu.Name, after time.Duration)) {
	u.mu.Lock()
	u.onAttach = append(u.onAttach, fn)
	u.mu.Unlock()
}

// Caps is the capsule client over the uplink.
func (u *Uplink) Caps() *client.CapsuleClient { return u.caps }

// Client is the attached client.
func (u *Uplink) Client() *client.Client { return u.c }

// Endpoint is the tunnel endpoint (for its metrics and Reload).
func (u *Uplink) Endpoint() *client.Endpoint { return u.ep }

// UplinkStatus is what /v1/status reports of the uplink.
type UplinkStatus struct {
	Router     pdu.Name
	Since      time.Time
	Reattached uint64
	LastOutage time.Duration
}

// Status is the router attached now (or last), since when, and how many
// re-attachments happened.
func (u *Uplink) Status() UplinkStatus {
	u.mu.Lock()
	defer u.mu.Unlock()
	return UplinkStatus{Router: u.router, Since: u.since, Reattached: u.reattached.Load(), LastOutage: u.lastGap}
}

// Close ends the capsule client, the attachment and the endpoint.
func (u *Uplink) Close() error {
	_ = u.caps.Close()
	_ = u.c.Close()
	return u.ep.Close()
}
