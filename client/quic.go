package client

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/tunnel"
)

// QUICALPN is the default ALPN of QUIC connections over names.
const QUICALPN = "gdp-quic/1"

// DefaultQUICPacketSize is the QUIC packet size used over names: with the
// 80-byte PDU header (PROTOCOL.md §9.1) a packet is a 1,380-byte PDU, which
// fits one DATAGRAM frame of a QUIC tunnel once its path MTU discovery has
// reached the 1,452-byte packets quic-go caps at (1,412 bytes of datagram
// payload; any Ethernet path with a 1,500-byte MTU), with 32 bytes to spare.
// A PDU that does not fit a hop's datagram still arrives, on a stream of its
// own (PROTOCOL.md §4.1), only slower.
const DefaultQUICPacketSize = 1300

// Error codes QUIC connections over names close with.
const (
	// QUICCodeRefused: the listener refused the connection (a limit).
	QUICCodeRefused quic.ApplicationErrorCode = 0x101
)

// Errors of QUIC over names callers branch on.
var (
	// ErrWrongName: the peer's certificate did not prove the name dialled.
	ErrWrongName = errors.New("client: quic peer did not prove the name dialled")
	// ErrNoQUICCredentials: the client has no credentials to show (a
	// Client made with New; see SetQUICCredentials).
	ErrNoQUICCredentials = errors.New("client: no credentials for quic over names")
	// ErrNameInUse: a listener already serves that name on this client.
	ErrNameInUse = errors.New("client: a quic listener already serves that name")
)

// QUICConfig tunes QUIC connections over names (DialName, ListenName). A
// daemon embeds it in its YAML; zero values take the defaults in the
// comments (docs/OPERATIONS.md lists them too).
type QUICConfig struct {
	// ALPN is the application protocol offered by the dialer and required
	// by the listener. Default "gdp-quic/1".
	ALPN string `yaml:"alpn"`
	// PacketSize is the size of the QUIC packets sent; path MTU discovery
	// is off, as every hop's datagram capacity bounds the PDU and not the
	// UDP path. 1200 to 1452. Default DefaultQUICPacketSize (1300).
	PacketSize int `yaml:"packet_size"`
	// MaxConnsPerPeer bounds the connections a listener keeps open from
	// one peer identity (the name its certificate proves); more are
	// closed at once with QUICCodeRefused, counted in
	// gdp_client_quic_refused_total{limit="peer"}. Default 16.
	MaxConnsPerPeer int `yaml:"max_conns_per_peer"`
	// MaxConns bounds the connections a listener keeps open in all;
	// gdp_client_quic_refused_total{limit="total"}. Default 1024.
	MaxConns int `yaml:"max_conns"`
	// MaxConnsPerDomain bounds the connections a listener keeps open from
	// the members of one other domain (not the listener's own), all
	// together: that domain's operator mints identities at will, each with
	// MaxConnsPerPeer, so 64 of them took all of MaxConns. More are closed
	// at once with QUICCodeRefused, counted in
	// gdp_client_quic_refused_total{limit="domain"}. Default 256 (Session
	// 13). Negative: unbounded.
	MaxConnsPerDomain int `yaml:"max_conns_per_domain"`
	// MaxStreams is how many streams the peer may open at once on one
	// connection (each kind). Default 100.
	MaxStreams int `yaml:"max_streams"`
	// ReceiveWindow is the most unread bytes a connection buffers (its
	// streams share it; one stream up to 6 MiB of it). Default 16 MiB.
	ReceiveWindow int `yaml:"receive_window"`
	// HandshakeTimeout bounds a dial. Default 10s.
	HandshakeTimeout time.Duration `yaml:"handshake_timeout"`
	// IdleTimeout closes a connection that heard nothing for this long;
	// KeepAlive pings an idle one. Defaults 30s and 10s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	KeepAlive   time.Duration `yaml:"keepalive"`
	// Queue is how many received packets per local name may wait for
	// quic-go; more are dropped (gdp_client_quic_dropped_total
	// {reason="queue_full"}). Default 4096.
	Queue int `yaml:"queue"`
}

func (q *QUICConfig) withDefaults() QUICConfig {
	var o QUICConfig
	if q != nil {
		o = *q
	}
	if o.ALPN == "" {
		o.ALPN = QUICALPN
	}
	if o.PacketSize == 0 {
		o.PacketSize = DefaultQUICPacketSize
	}
	o.PacketSize = min(max(o.PacketSize, 1200), quicPacketMax)
	if o.MaxConnsPerPeer <= 0 {
		o.MaxConnsPerPeer = 16
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 1024
	}
	if o.MaxConnsPerDomain == 0 {
		o.MaxConnsPerDomain = 256
	}
	if o.MaxStreams <= 0 {
		o.MaxStreams = 100
	}
	if o.ReceiveWindow <= 0 {
		o.ReceiveWindow = 16 << 20
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 30 * time.Second
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = 10 * time.Second
	}
	if o.Queue <= 0 {
		o.Queue = 4096
	}
	return o
}

func (o *QUICConfig) quic() *quic.Config {
	return &quic.Config{
		HandshakeIdleTimeout:           o.HandshakeTimeout,
		MaxIdleTimeout:                 o.IdleTimeout,
		KeepAlivePeriod:                o.KeepAlive,
		InitialPacketSize:              uint16(o.PacketSize),
		DisablePathMTUDiscovery:        true,
		MaxIncomingStreams:             int64(o.MaxStreams),
		MaxIncomingUniStreams:          int64(o.MaxStreams),
		MaxConnectionReceiveWindow:     uint64(o.ReceiveWindow),
		MaxStreamReceiveWindow:         uint64(min(o.ReceiveWindow, 6<<20)),
		InitialConnectionReceiveWindow: uint64(min(o.ReceiveWindow, 1<<20)),
		InitialStreamReceiveWindow:     uint64(min(o.ReceiveWindow, 512<<10)),
	}
}

// quicCreds is what a client shows and believes in QUIC handshakes.
type quicCreds struct {
	cert   *tls.Certificate
	verify tunnel.PeerVerifier
	name   pdu.Name
	domain pdu.Name // the client's own domain
	raw    []byte   // the credentials the certificate carries (PROTOCOL.md §4.2)
}

// quicState is a client's QUIC over names: one packet connection and
// quic.Transport per local name.
type quicState struct {
	mu    sync.Mutex
	ends  map[pdu.Name]*quicEnd
	table atomic.Pointer[map[pdu.Name]*nameConn] // read by HandlePDU without a lock
	creds atomic.Pointer[quicCreds]
	stats quicStats
	// listeners are the open NameListeners (under mu): a change of
	// credentials checks their connections' peers again (recheck).
	listeners map[*NameListener]struct{}
	// dialled are the connections DialName made and not yet closed, by
	// the name dialled (under mu; Session 18): a change of credentials
	// checks their peers again too.
	dialled map[*quic.Conn]pdu.Name

	dialMu sync.Mutex
	dials  map[pdu.Name][]*dialWatch // dials in their handshake, by name dialled
}

// dialWatch lets a NAK about a dial's packets end its handshake at once.
type dialWatch struct{ fail context.CancelCauseFunc }

// watchDial registers a dial to name in its handshake; the returned
// function unregisters it.
func (q *quicState) watchDial(name pdu.Name, fail context.CancelCauseFunc) func() {
	w := &dialWatch{fail: fail}
	q.dialMu.Lock()
	if q.dials == nil {
		q.dials = map[pdu.Name][]*dialWatch{}
	}
	q.dials[name] = append(q.dials[name], w)
	q.dialMu.Unlock()
	return func() {
		q.dialMu.Lock()
		defer q.dialMu.Unlock()
		ws := q.dials[name]
		for i, x := range ws {
			if x == w {
				ws = append(ws[:i], ws[i+1:]...)
				break
			}
		}
		if len(ws) == 0 {
			delete(q.dials, name)
		} else {
			q.dials[name] = ws
		}
	}
}

// nakDial ends the handshakes of dials to dst with err.
func (q *quicState) nakDial(dst pdu.Name, err error) {
	q.dialMu.Lock()
	ws := q.dials[dst]
	q.dialMu.Unlock()
	for _, w := range ws {
		w.fail(err)
	}
}

type quicEnd struct {
	nc        *nameConn
	tr        *quic.Transport
	listening bool
}

// SetQUICCredentials sets what the client shows in QUIC handshakes over
// names: a certificate with its identity's metadata and membership
// (PROTOCOL.md §4.2), and the domains whose members it believes. A client
// attached by an Endpoint has the endpoint's; Endpoint.Reload renews them.
// A call that replaces credentials also closes the connections its
// listeners accepted whose dialer does not verify under v (Session 17),
// and those it dialled whose listener does not (Session 18).
func (c *Client) SetQUICCredentials(member *certs.Cert, domain *certs.Metadata, v *certs.Verifier) error {
	id := tunnel.CertIdentity(c.id, member, domain)
	cert, err := tunnel.TLSCertificate(id)
	if err != nil {
		return fmt.Errorf("quic credentials: %w", err)
	}
	if v == nil {
		v = certs.NewVerifier(domain)
	}
	cr := &quicCreds{cert: cert, verify: tunnel.CertVerifier(v), name: c.id.Name, domain: domain.Name(), raw: id.Credentials}
	if old := c.quic.creds.Swap(cr); old != nil {
		c.recheckQUIC(cr)
	}
	return nil
}

// recheckQUIC closes every accepted connection whose dialer's certificate
// does not verify under cr (Session 17): a reload that stopped trusting
// the dialer's domain — or replaced the own domain's key — ends the
// connections it admitted under the old trust, as the routers close the
// faces of a withdrawn domain. Since Session 18 the connections this
// client dialled are checked the same way: a listener whose domain is no
// longer trusted is not talked to on the old trust either. One signature
// check per open connection, at a credentials change only.
func (c *Client) recheckQUIC(cr *quicCreds) {
	q := &c.quic
	q.mu.Lock()
	ls := make([]*NameListener, 0, len(q.listeners))
	for l := range q.listeners {
		ls = append(ls, l)
	}
	dialled := maps.Clone(q.dialled)
	q.mu.Unlock()
	for qc, name := range dialled {
		c.recheckDialled(qc, name, cr)
	}
	for _, l := range ls {
		l.mu.Lock()
		conns := make([]*quic.Conn, 0, len(l.open))
		for qc := range l.open {
			conns = append(conns, qc)
		}
		l.mu.Unlock()
		for _, qc := range conns {
			if qc.Context().Err() != nil {
				continue // closed, not yet forgotten: not closed again, nor counted
			}
			if peer, _, err := dialerName(rawCerts(qc), cr); err != nil {
				q.stats.withdrawn.Add(1)
				l.log.Info("quic connection closed: its peer's credentials do not verify under the reloaded trust", logging.Peer(peer), zap.Error(err))
				qc.CloseWithError(QUICCodeRefused, "trust withdrawn")
			}
		}
	}
}

// recheckDialled closes qc, dialled to name, unless the listener's
// certificate still proves name under cr.
func (c *Client) recheckDialled(qc *quic.Conn, name pdu.Name, cr *quicCreds) {
	if qc.Context().Err() != nil {
		// Closed already (maybe by an earlier reload) and not yet
		// forgotten by trackDialled's goroutine: nothing to close or count.
		return
	}
	got, _, err := tunnel.VerifyCertificate(rawCerts(qc), cr.verify)
	if err == nil && got != name {
		err = fmt.Errorf("%w: got %s, want %s", ErrWrongName, got, name)
	}
	if err == nil {
		return
	}
	c.quic.stats.withdrawnDialed.Add(1)
	c.log.Info("quic connection closed: the peer it dialled does not verify under the reloaded trust", logging.Peer(name), zap.Error(err))
	qc.CloseWithError(QUICCodeRefused, "trust withdrawn")
}

// end returns the packet connection and transport of local name, made on
// first use.
func (c *Client) quicEnd(local pdu.Name, cfg *QUICConfig) (*quicEnd, error) {
	q := &c.quic
	q.mu.Lock()
	defer q.mu.Unlock()
	if c.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if e := q.ends[local]; e != nil {
		return e, nil
	}
	nc := newNameConn(c, local, cfg.Queue)
	e := &quicEnd{nc: nc, tr: &quic.Transport{Conn: nc, Tracer: dropRecorder{&q.stats}}}
	if q.ends == nil {
		q.ends = map[pdu.Name]*quicEnd{}
	}
	q.ends[local] = e
	t := make(map[pdu.Name]*nameConn, len(q.ends))
	for n, e := range q.ends {
		t[n] = e.nc
	}
	q.table.Store(&t)
	return e, nil
}

// closeQUIC closes every QUIC transport (and so every connection) of the
// client.
func (c *Client) closeQUIC() {
	q := &c.quic
	q.mu.Lock()
	ends := q.ends
	q.ends = nil
	q.table.Store(nil)
	q.mu.Unlock()
	for _, e := range ends {
		_ = e.tr.Close()
		_ = e.nc.Close()
	}
}

// quicPacket takes a DATA PDU with the QUIC content option.
func (c *Client) quicPacket(h *pdu.Header) {
	s := &c.quic.stats
	p := h.Payload
	if len(p) == 0 || len(p) > quicPacketMax || p[0]&0x40 == 0 {
		// Every QUIC v1 packet has the fixed bit set (RFC 9000 §17).
		s.drop(dropQUICNotQUIC)
		return
	}
	t := c.quic.table.Load()
	if t == nil {
		s.drop(dropQUICNoListener)
		return
	}
	nc := (*t)[h.Dst]
	if nc == nil {
		s.drop(dropQUICNoListener)
		return
	}
	nc.deliver(h.Src, p)
}

// quicNAK reports whether a NAK is about one of the client's QUIC packets
// (its echo carries the QUIC content option); such NAKs are counted and
// consumed here, never delivered to Receive. QUIC's loss recovery deals
// with the packet lost.
func (c *Client) quicNAK(h *pdu.Header) bool {
	echo := h.Payload
	if len(echo) < quicHeaderLen || int(echo[1])*4 < quicHeaderLen {
		return false
	}
	hl := min(int(echo[1])*4, len(echo))
	eh := pdu.Header{Options: echo[pdu.HeaderLen:hl]}
	if pdu.Type(echo[2]) != pdu.TypeData || eh.Content() != pdu.ContentQUIC {
		return false
	}
	c.quic.stats.drop(dropQUICNAK)
	switch h.Code {
	case pdu.CodeNoRoute, pdu.CodeForbidden, pdu.CodeTTLExpired:
		// The name cannot be reached: a dial still in its handshake
		// fails now rather than at its timeout. (Only routers can send
		// NAKs, PROTOCOL.md §1.9; one on the path could also drop the
		// packets.)
		if pdu.Name(echo[44:76]) == c.ReplyName() || pdu.Name(echo[44:76]) == c.id.Name {
			c.quic.nakDial(pdu.Name(echo[12:44]), &NAKError{Code: h.Code, Reporter: h.Src})
		}
	}
	return true
}

func (c *Client) quicTLS(cfg *QUICConfig) (*tls.Config, error) {
	if c.quic.creds.Load() == nil {
		return nil, ErrNoQUICCredentials
	}
	// The certificate shown and the verifier are the client's current
	// ones at each handshake (SetQUICCredentials renews them).
	cert := func() (*tls.Certificate, error) { return c.quic.creds.Load().cert, nil }
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		NextProtos:           []string{cfg.ALPN},
		GetCertificate:       func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert() },
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert() },
		// The certificate is self-signed: trust comes from the
		// credentials, which VerifyPeerCertificate checks instead.
		InsecureSkipVerify: true,
	}, nil
}

// NameConn is a QUIC connection over names: every quic.Conn method, and
// the peer's name as its certificate proved it.
type NameConn struct {
	*quic.Conn
	peer pdu.Name
}

// Peer is the name the peer's certificate proved: the name dialled, for
// the dialer; the dialer's identity, for the listener.
func (c *NameConn) Peer() pdu.Name { return c.peer }

// DialName opens a QUIC connection over the overlay to the endpoint that
// holds name, from the client's reply name (its session name once
// advertised, so the answers reach this process). The peer must prove
// name with its certificate (PROTOCOL.md §9.2), else the dial fails with an
// error wrapping ErrWrongName or tunnel.ErrPeerRefused. cfg may be nil.
func DialName(ctx context.Context, c *Client, name pdu.Name, cfg *QUICConfig) (*NameConn, error) {
	o := cfg.withDefaults()
	tc, err := c.quicTLS(&o)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", name, err)
	}
	tc.ServerName = "gdp"
	// used: the credentials whose trust verified the listener; a change
	// after it is checked again once the connection is tracked.
	var used atomic.Pointer[quicCreds]
	tc.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
		cr := c.quic.creds.Load()
		used.Store(cr)
		got, _, err := tunnel.VerifyCertificate(raw, cr.verify)
		if err != nil {
			return err
		}
		if got != name {
			return fmt.Errorf("%w: got %s, want %s", ErrWrongName, got, name)
		}
		return nil
	}
	e, err := c.quicEnd(c.ReplyName(), &o)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, o.HandshakeTimeout)
	defer cancel()
	ctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	defer c.quic.watchDial(name, fail)()
	qc, err := e.tr.Dial(ctx, nameAddr(name), tc, o.quic())
	if err != nil {
		var nak *NAKError
		if cause := context.Cause(ctx); errors.As(cause, &nak) {
			return nil, fmt.Errorf("dial %s: %w", name, nak)
		}
		return nil, fmt.Errorf("dial %s: %w", name, quicHandshakeErr(err))
	}
	if quicDialledHook != nil {
		quicDialledHook()
	}
	c.quic.stats.dialed.Add(1)
	c.trackDialled(qc, name, used.Load())
	return &NameConn{Conn: qc, peer: name}, nil
}

// quicDialledHook, set by tests, runs when DialName's handshake is done,
// before the connection is tracked.
var quicDialledHook func()

// quicForgetHook, set by tests, runs when a dialled connection has closed,
// before trackDialled forgets it.
var quicForgetHook func()

// trackDialled keeps qc among the dialled connections a change of
// credentials checks again, until it closes. cr are the credentials the
// handshake verified the listener under: credentials stored since — their
// recheck may have run before qc was tracked — check it again here.
func (c *Client) trackDialled(qc *quic.Conn, name pdu.Name, cr *quicCreds) {
	q := &c.quic
	q.mu.Lock()
	if q.dialled == nil {
		q.dialled = map[*quic.Conn]pdu.Name{}
	}
	q.dialled[qc] = name
	q.mu.Unlock()
	if now := q.creds.Load(); now != cr {
		// Credentials replaced during the handshake, maybe before their
		// recheck saw this connection: check it under them.
		c.recheckDialled(qc, name, now)
	}
	go func() {
		<-qc.Context().Done()
		if h := quicForgetHook; h != nil {
			h()
		}
		q.mu.Lock()
		delete(q.dialled, qc)
		q.mu.Unlock()
	}()
}

// quicHandshakeErr keeps ErrWrongName and tunnel.ErrPeerRefused visible
// through quic-go's errors.
func quicHandshakeErr(err error) error {
	if errors.Is(err, ErrWrongName) || errors.Is(err, tunnel.ErrPeerRefused) {
		return err
	}
	var te *quic.TransportError
	if errors.As(err, &te) && te.ErrorCode.IsCryptoError() {
		return fmt.Errorf("%w: %w", tunnel.ErrPeerRefused, err)
	}
	var ae *quic.ApplicationError
	if errors.As(err, &ae) && ae.Remote && ae.ErrorCode == QUICCodeRefused {
		return fmt.Errorf("%w: %w", tunnel.ErrPeerRefused, err)
	}
	return err
}

// NameListener accepts QUIC connections over names to one name.
type NameListener struct {
	c    *Client
	name pdu.Name
	ln   *quic.Listener
	cfg  QUICConfig
	log  *zap.Logger
	// logLim bounds the refused-connection lines: a peer over its share
	// retrying at once gets one line per interval.
	logLim *logging.Limiter

	mu      sync.Mutex
	perPeer map[pdu.Name]int
	// perDomain counts the connections of each other domain's members.
	perDomain map[pdu.Name]int
	total     int
	// open are the accepted connections not yet closed (recheckQUIC);
	// a closed listener stays in its client's listeners until they are.
	open   map[*quic.Conn]struct{}
	closed bool
}

// forget takes l out of its client's listeners once it is closed and
// holds no open connection.
func (l *NameListener) forget() {
	l.mu.Lock()
	done := l.closed && len(l.open) == 0
	l.mu.Unlock()
	if done {
		l.c.quic.mu.Lock()
		delete(l.c.quic.listeners, l)
		l.c.quic.mu.Unlock()
	}
}

// ListenName accepts QUIC connections over the overlay to name, which must
// be the client's own name (its certificate proves no other); advertise it
// as usual. Dialers must show a certificate the client's verifier accepts
// (a member of a trusted domain); each is kept to cfg.MaxConnsPerPeer
// connections. cfg may be nil.
func ListenName(c *Client, name pdu.Name, cfg *QUICConfig) (*NameListener, error) {
	o := cfg.withDefaults()
	if name != c.Name() {
		return nil, fmt.Errorf("listen %s: only the client's own name %s can be proven", name, c.Name())
	}
	tc, err := c.quicTLS(&o)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", name, err)
	}
	l := &NameListener{c: c, name: name, cfg: o, log: c.log.With(logging.Name(name)), logLim: logging.NewLimiter(0, 0, nil), perPeer: map[pdu.Name]int{}, perDomain: map[pdu.Name]int{}}
	tc.ClientAuth = tls.RequireAnyClientCert
	tc.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
		peer, _, err := dialerName(raw, c.quic.creds.Load())
		if err != nil {
			return err
		}
		// Refuse early a peer already at its limit (checked again at
		// Accept, which decides).
		l.mu.Lock()
		full := l.perPeer[peer] >= l.cfg.MaxConnsPerPeer
		l.mu.Unlock()
		if full {
			c.quic.stats.refused.Add(1)
			return fmt.Errorf("%w: %s has %d connections open", errPeerLimit, peer, l.cfg.MaxConnsPerPeer)
		}
		return nil
	}
	e, err := c.quicEnd(name, &o)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", name, err)
	}
	c.quic.mu.Lock()
	if e.listening {
		c.quic.mu.Unlock()
		return nil, fmt.Errorf("listen %s: %w", name, ErrNameInUse)
	}
	e.listening = true
	c.quic.mu.Unlock()
	ln, err := e.tr.Listen(tc, o.quic())
	if err != nil {
		c.quic.mu.Lock()
		e.listening = false
		c.quic.mu.Unlock()
		return nil, fmt.Errorf("listen %s: %w", name, err)
	}
	l.ln = ln
	c.quic.mu.Lock()
	if c.quic.listeners == nil {
		c.quic.listeners = map[*NameListener]struct{}{}
	}
	c.quic.listeners[l] = struct{}{}
	c.quic.mu.Unlock()
	return l, nil
}

var errPeerLimit = errors.New("too many connections from this peer")

// dialerName is the name a dialer's certificate proves to a listener: a
// member of a domain the listener trusts (PROTOCOL.md §9.2); domain is the
// domain whose membership it showed, zero when it is the listener's own.
func dialerName(raw [][]byte, cr *quicCreds) (peer, domain pdu.Name, err error) {
	peer, _, err = tunnel.VerifyCertificate(raw, func(key ed25519.PublicKey, creds []byte) (pdu.Name, time.Time, error) {
		m, err := cr.member(key, creds)
		if err != nil {
			return pdu.Name{}, time.Time{}, err
		}
		if !m.Own {
			domain = m.Domain
		}
		return m.Meta.Name(), m.NotAfter, nil
	})
	return peer, domain, err
}

// member checks credentials shown for key (PROTOCOL.md §4.2) with the
// client's verifier: a node's metadata of that key, a membership valid now,
// issued and signed by a trusted domain. QUIC listeners (dialerName) and
// capsule servers (VerifyCredentials) both ask it.
func (cr *quicCreds) member(key ed25519.PublicKey, creds []byte) (Member, error) {
	meta, member, _, err := tunnel.DecodeCredentials(creds)
	if err != nil {
		return Member{}, err
	}
	_, exp, err := cr.verify(key, creds) // tunnel.CertVerifier: the name is meta's
	if err != nil {
		return Member{}, err
	}
	return Member{Meta: meta, Domain: member.Issuer, Own: member.Issuer == cr.domain, NotAfter: exp}, nil
}

// Addr is the name listened on.
func (l *NameListener) Addr() net.Addr { return nameAddr(l.name) }

// Close stops accepting; open connections stay up (until the client closes).
func (l *NameListener) Close() error {
	err := l.ln.Close()
	l.c.quic.mu.Lock()
	if e := l.c.quic.ends[l.name]; e != nil {
		e.listening = false
	}
	l.c.quic.mu.Unlock()
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.forget()
	return err
}

// Accept waits for the next connection from a verified peer within its
// limits. A peer over MaxConnsPerPeer, or any peer once MaxConns are open,
// has its connection closed with QUICCodeRefused (counted) and Accept
// waits for the next.
func (l *NameListener) Accept(ctx context.Context) (*NameConn, error) {
	for {
		qc, err := l.ln.Accept(ctx)
		if err != nil {
			if errors.Is(err, quic.ErrServerClosed) || errors.Is(err, quic.ErrTransportClosed) {
				return nil, fmt.Errorf("accept %s: %w", l.name, ErrClosed)
			}
			return nil, fmt.Errorf("accept %s: %w", l.name, err)
		}
		cr := l.c.quic.creds.Load()
		peer, domain, err := dialerName(rawCerts(qc), cr)
		if err != nil { // verified in the handshake; only a credentials change gets here
			qc.CloseWithError(QUICCodeRefused, "credentials refused")
			continue
		}
		if reason, ok := l.admit(peer, domain); !ok {
			l.logLim.Info(l.log, reason+" "+peer.String(), "quic connection refused", logging.Peer(peer), logging.Reason(reason))
			qc.CloseWithError(QUICCodeRefused, reason)
			continue
		}
		l.c.quic.stats.accepted.Add(1)
		l.mu.Lock()
		if l.open == nil {
			l.open = map[*quic.Conn]struct{}{}
		}
		l.open[qc] = struct{}{}
		l.mu.Unlock()
		if now := l.c.quic.creds.Load(); now != cr {
			// Credentials replaced since the check above, maybe before
			// their recheck saw this connection: check it under them.
			if _, _, err := dialerName(rawCerts(qc), now); err != nil {
				l.c.quic.stats.withdrawn.Add(1)
				qc.CloseWithError(QUICCodeRefused, "trust withdrawn")
			}
		}
		go func() {
			<-qc.Context().Done()
			l.mu.Lock()
			delete(l.open, qc)
			l.mu.Unlock()
			l.release(peer, domain)
			l.forget()
		}()
		return &NameConn{Conn: qc, peer: peer}, nil
	}
}

// admit counts a connection from peer, a member of domain (zero: the
// listener's own), if the limits allow it.
func (l *NameListener) admit(peer, domain pdu.Name) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := &l.c.quic.stats
	if l.perPeer[peer] >= l.cfg.MaxConnsPerPeer {
		s.refused.Add(1)
		return "max_conns_per_peer", false
	}
	if !domain.IsZero() && l.cfg.MaxConnsPerDomain > 0 && l.perDomain[domain] >= l.cfg.MaxConnsPerDomain {
		s.refusedDomain.Add(1)
		return "max_conns_per_domain", false
	}
	if l.total >= l.cfg.MaxConns {
		s.refusedAll.Add(1)
		return "max_conns", false
	}
	l.perPeer[peer]++
	if !domain.IsZero() {
		l.perDomain[domain]++
	}
	l.total++
	return "", true
}

func (l *NameListener) release(peer, domain pdu.Name) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perPeer[peer]--; l.perPeer[peer] <= 0 {
		delete(l.perPeer, peer)
	}
	if !domain.IsZero() {
		if l.perDomain[domain]--; l.perDomain[domain] <= 0 {
			delete(l.perDomain, domain)
		}
	}
	l.total--
}

func rawCerts(qc *quic.Conn) [][]byte {
	pc := qc.ConnectionState().TLS.PeerCertificates
	raw := make([][]byte, len(pc))
	for i, c := range pc {
		raw[i] = c.Raw
	}
	return raw
}
