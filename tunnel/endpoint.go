package tunnel

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

// Endpoint is one node's end of its tunnels: it dials peers, accepts them,
// and owns the sockets and every link's goroutines.
type Endpoint struct {
	cfg Config
	log *zap.Logger
	// logLim bounds the lines remote parties can cause per handshake or
	// frame (refused handshakes, failed accepts, roaming raw peers).
	logLim *logging.Limiter
	// linkLim bounds the link up, accepted and down lines per peer: a
	// peer that reconnects in a loop costs a few lines an interval
	// (gdp_tunnel_links_opened_total and _closed_total count each).
	linkLim *logging.Limiter
	tr      *quic.Transport
	ln      *quic.Listener
	qconf   *quic.Config
	cert    atomic.Pointer[tls.Certificate]
	raw     *rawEndpoint // nil without a raw socket
	stats   counters

	accepted chan Link
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	// rechecks counts RecheckPeers calls: a link verified before one and
	// tracked after its sweep is checked again as it starts.
	rechecks atomic.Uint64

	mu     sync.Mutex
	links  map[*link]struct{}
	closed bool
	creds  []byte      // the credentials shown now (SetIdentity)
	gen    uint64      // +1 whenever creds change
	warned warnedPeers // peers whose expiry was warned about, and which expiry
}

// LinkLogBurst is how many "link up", "link accepted" and "link down"
// lines one peer may cause per logging.DefaultLimitInterval (10 s): enough
// for a restart or two, not one line per attempt of a reconnect loop.
const LinkLogBurst = 4

// NewEndpoint starts an endpoint on the sockets in cfg: it listens for peers
// at once (Accept hands them out) and can dial.
func NewEndpoint(cfg Config) (*Endpoint, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	e := &Endpoint{
		cfg:      c,
		log:      c.Logger.With(logging.Name(c.Identity.Name)),
		logLim:   logging.NewLimiter(0, 64, nil),
		linkLim:  logging.NewBurstLimiter(0, LinkLogBurst, 256, nil),
		accepted: make(chan Link, c.AcceptQueue),
		links:    map[*link]struct{}{},
	}
	if err := e.SetIdentity(c.Identity); err != nil {
		return nil, err
	}
	e.qconf = &quic.Config{
		HandshakeIdleTimeout: c.HandshakeTimeout,
		MaxIdleTimeout:       c.IdleTimeout,
		KeepAlivePeriod:      c.KeepAlivePeriod,
		EnableDatagrams:      true,
		// The control stream, plus the bulk streams a peer may open.
		MaxIncomingStreams: int64(max(c.MaxStreams, 0)) + 1,
		// One stream per PDU that does not fit a datagram. Each open one
		// may pin a MaxPDU buffer at the receiver, so this bounds a peer's
		// claim on our memory (16 × 64 KiB by default).
		MaxIncomingUniStreams:          int64(c.MaxPDUStreams),
		MaxConnectionReceiveWindow:     uint64(c.ReceiveWindow),
		InitialConnectionReceiveWindow: uint64(min(c.ReceiveWindow, 512<<10)),
		MaxStreamReceiveWindow:         uint64(min(c.ReceiveWindow, 6<<20)),
		InitialStreamReceiveWindow:     uint64(min(c.ReceiveWindow, 512<<10)),
	}
	if c.CountDatagramDrops {
		e.qconf.Tracer = e.connTracer
	}
	e.tr = &quic.Transport{
		Conn:                c.Conn,
		StatelessResetKey:   statelessResetKey(c.Identity.Key),
		ConnContext:         e.handshakeStarted,
		VerifySourceAddress: e.wantRetry,
	}
	e.ln, err = e.tr.Listen(e.serverTLS(), e.qconf)
	if err != nil {
		e.tr.Close()
		return nil, fmt.Errorf("tunnel: listen: %w", err)
	}
	if c.Raw != nil {
		e.raw, err = newRawEndpoint(e, c.Raw)
		if err != nil {
			e.ln.Close()
			e.tr.Close()
			return nil, err
		}
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.wg.Add(1)
	go e.acceptLoop()
	e.log.Info("tunnel endpoint up", logging.Addr(c.Conn.LocalAddr().String()), zap.Bool("raw", e.raw != nil))
	return e, nil
}

// SetIdentity replaces the credentials shown to peers (after a membership
// renewal); the name and key must stay the same. New links show them in
// their handshake; a live link whose peer speaks gdp-tunnel/2 is sent them
// at once (RENEW), so that the peer moves the link's expiry and the link
// outlives the old membership. SetIdentity returns once every such link
// has sent them or given up (HandshakeTimeout); a link that could not send
// is logged and keeps the old expiry at its peer.
func (e *Endpoint) SetIdentity(id *Identity) error {
	p, err := e.PrepareIdentity(id)
	if err != nil {
		return err
	}
	p.Apply()
	return nil
}

// PreparedIdentity is an identity the endpoint checked and made its
// certificate for; Apply puts it in force and cannot fail. A caller that
// changes other state along with the identity (a router's reload) prepares
// first, so that a refused identity changes nothing (Session 18).
type PreparedIdentity struct {
	e     *Endpoint
	creds []byte
	cert  *tls.Certificate
}

// PrepareIdentity checks id as SetIdentity does and makes its certificate,
// changing nothing.
func (e *Endpoint) PrepareIdentity(id *Identity) (*PreparedIdentity, error) {
	if id.Name != e.cfg.Identity.Name {
		return nil, errors.New("tunnel: set identity: name changed")
	}
	if !id.Key.Equal(e.cfg.Identity.Key) {
		return nil, errors.New("tunnel: set identity: key changed")
	}
	der, err := selfSignedCert(id, e.cfg.Now())
	if err != nil {
		return nil, fmt.Errorf("tunnel: certificate: %w", err)
	}
	return &PreparedIdentity{e: e, creds: bytes.Clone(id.Credentials), cert: &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: id.Key}}, nil
}

// Apply puts the prepared identity in force (SetIdentity).
func (p *PreparedIdentity) Apply() {
	e := p.e
	e.mu.Lock()
	first := e.creds == nil
	changed := !first && !bytes.Equal(e.creds, p.creds)
	e.creds = p.creds
	e.cert.Store(p.cert)
	var live []*link
	if changed {
		e.gen++
		for l := range e.links {
			if l.renew {
				live = append(live, l)
			}
		}
	}
	e.mu.Unlock()
	e.presentAll(live)
}

// identity is the credentials shown now and their generation.
func (e *Endpoint) identity() ([]byte, uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.creds, e.gen
}

// Addr is the QUIC socket's address (Listener).
func (e *Endpoint) Addr() net.Addr { return e.cfg.Conn.LocalAddr() }

// RawAddr is the raw socket's address, nil without one.
func (e *Endpoint) RawAddr() net.Addr {
	if e.raw == nil {
		return nil
	}
	return e.raw.pc.LocalAddr()
}

// Name is this endpoint's own name.
func (e *Endpoint) Name() pdu.Name { return e.cfg.Identity.Name }

// verifyChain is the VerifyPeerCertificate both sides run; want, if not
// zero, is the name the dialer expects.
func (e *Endpoint) verifyChain(want pdu.Name) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		_, err := e.verifyPeer(raw, want)
		if err != nil {
			e.stats.handshakeRefused.Add(1)
			// Anyone can try a handshake: one line per claimed name
			// every interval (gdp_tunnel_handshakes_refused_total
			// counts them all); the names an attacker invents share
			// the Limiter's bounded keys.
			peer := claimedPeer(raw)
			e.logLim.Info(e.log, peer, "peer refused at handshake", zap.String("peer", peer), logging.Reason(err.Error()))
		}
		return err
	}
}

// claimedPeer is the name a refused peer's credentials claim, for the log
// line that says who was refused ("unknown" when they do not decode).
func claimedPeer(raw [][]byte) string {
	if _, creds, err := peerFromCert(raw); err == nil {
		if meta, _, _, err := DecodeCredentials(creds); err == nil {
			return meta.Name().String()
		}
	}
	return "unknown"
}

// verifiedPeer is what the handshake proved about a peer.
type verifiedPeer struct {
	name  pdu.Name
	exp   time.Time
	key   ed25519.PublicKey // bound by TLS: a renewal must be for it
	creds []byte
	renew bool // gdp-tunnel/2: RENEW may be sent and received
	// rechecks: Endpoint.rechecks before the check (a RecheckPeers since
	// means the link is checked again as it starts).
	rechecks uint64
}

func (e *Endpoint) verifyPeer(raw [][]byte, want pdu.Name) (verifiedPeer, error) {
	key, creds, err := peerFromCert(raw)
	if err != nil {
		return verifiedPeer{}, err
	}
	rechecks := e.rechecks.Load()
	name, exp, err := e.cfg.Verify(key, creds)
	if err != nil {
		return verifiedPeer{}, fmt.Errorf("%w: %w", ErrPeerRefused, err)
	}
	if !want.IsZero() && name != want {
		return verifiedPeer{}, fmt.Errorf("%w: got %s, want %s", ErrWrongPeer, name, want)
	}
	if name == e.cfg.Identity.Name {
		return verifiedPeer{}, fmt.Errorf("%w: peer claims our own name", ErrPeerRefused)
	}
	return verifiedPeer{name: name, exp: exp, key: key, creds: creds, rechecks: rechecks}, nil
}

// RecheckPeers verifies again, with Config.Verify as it is now, the
// credentials each live link's peer showed last (at its handshake or its
// latest renewal), and closes the links whose peer it refuses, returning
// how many (Session 18: a client endpoint's reload that stops trusting
// the domain of the router it is attached to — a partner's edge router a
// gateway's trusted_domains listed. Before, that link stayed until it
// dropped or the router renewed its membership). A link whose handshake
// was verified before this call and that is tracked after its sweep is
// checked as it starts.
func (e *Endpoint) RecheckPeers() int {
	e.rechecks.Add(1)
	e.mu.Lock()
	links := make([]*link, 0, len(e.links))
	for l := range e.links {
		links = append(links, l)
	}
	e.mu.Unlock()
	n := 0
	for _, l := range links {
		if !l.recheck() {
			n++
		}
	}
	return n
}

// recheck verifies l's peer's latest credentials again and closes l when
// they are refused; it reports whether l was kept.
func (l *link) recheck() bool {
	if err := l.reverify(); err != nil {
		l.closeWith(err)
		return false
	}
	return true
}

// reverify checks the credentials l's peer showed last with Config.Verify
// as it is now.
func (l *link) reverify() error {
	l.expMu.Lock()
	creds := l.exp.creds
	l.expMu.Unlock()
	name, _, err := l.ep.cfg.Verify(l.peerKey, creds)
	if err == nil && name != l.peer {
		err = fmt.Errorf("%w: credentials of %s, the link's peer is %s", ErrWrongPeer, name, l.peer)
	}
	if err != nil {
		return fmt.Errorf("%w: no longer verifies under the reloaded trust: %w", ErrPeerRefused, err)
	}
	return nil
}

// protos are the ALPNs offered (the first both know wins, ours first).
func (e *Endpoint) protos() []string {
	if e.cfg.onlyV1 {
		return []string{ALPNv1}
	}
	return []string{ALPN, ALPNv1}
}

func (e *Endpoint) baseTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: e.protos(),
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return e.cert.Load(), nil
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return e.cert.Load(), nil
		},
		// The certificate is self-signed: trust comes from the credentials,
		// which VerifyPeerCertificate checks instead of an X.509 chain.
		InsecureSkipVerify: true,
	}
}

func (e *Endpoint) serverTLS() *tls.Config {
	t := e.baseTLS()
	t.ClientAuth = tls.RequireAnyClientCert
	t.VerifyPeerCertificate = e.verifyChain(pdu.Name{})
	return t
}

func (e *Endpoint) clientTLS(want pdu.Name) *tls.Config {
	t := e.baseTLS()
	t.ServerName = "gdp"
	t.VerifyPeerCertificate = e.verifyChain(want)
	return t
}

// Dial opens a link of the given kind to the peer expected at addr. It fails
// with an error wrapping ErrPeerRefused or ErrWrongPeer when the peer does
// not prove peer's name, and ErrNoRaw when a raw link is impossible.
func (e *Endpoint) Dial(ctx context.Context, addr net.Addr, peer pdu.Name, kind Kind) (Link, error) {
	if kind != KindQUIC && kind != KindRaw {
		return nil, fmt.Errorf("tunnel: dial: unknown kind %d", kind)
	}
	if kind == KindRaw && e.raw == nil {
		return nil, ErrNoRaw
	}
	if e.isClosed() {
		return nil, ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.HandshakeTimeout)
	defer cancel()
	_, gen := e.identity() // before the handshake shows the credentials
	qc, err := e.tr.Dial(ctx, addr, e.clientTLS(peer), e.qconf)
	if err != nil {
		e.stats.dialFailed.Add(1)
		return nil, fmt.Errorf("tunnel: dial %s: %w", addr, handshakeErr(err))
	}
	l, err := e.setupDialed(ctx, qc, peer, kind, gen)
	if err != nil {
		e.stats.dialFailed.Add(1)
		qc.CloseWithError(closeRefused, "setup failed")
		// TLS 1.3 lets the client finish before the server has checked its
		// certificate: a refusal of our credentials arrives here.
		return nil, fmt.Errorf("tunnel: dial %s: %w", addr, handshakeErr(err))
	}
	e.stats.linksDialed.Add(1)
	e.linkLim.Info(e.log, peer.String(), "link up", logging.Peer(peer), zap.Stringer("kind", kind), logging.Addr(addr.String()))
	return l, nil
}

// handshakeErr keeps the verifier's sentinel visible through quic-go's
// TLS alert error, so callers can errors.Is(err, ErrPeerRefused).
func handshakeErr(err error) error {
	var ae *quic.ApplicationError
	if errors.As(err, &ae) && ae.Remote && ae.ErrorCode == closeRefused {
		return fmt.Errorf("%w: %w", ErrPeerRefused, err)
	}
	var te *quic.TransportError
	if errors.As(err, &te) && te.ErrorCode.IsCryptoError() {
		if errors.Is(err, ErrWrongPeer) || errors.Is(err, ErrPeerRefused) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrPeerRefused, err)
	}
	return err
}

// Accept waits for the next authenticated peer.
func (e *Endpoint) Accept(ctx context.Context) (Link, error) {
	select {
	case l := <-e.accepted:
		return l, nil
	case <-e.ctx.Done():
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (e *Endpoint) acceptLoop() {
	defer e.wg.Done()
	for {
		qc, err := e.ln.Accept(e.ctx)
		if err != nil {
			return
		}
		handshakeDone(qc.Context())
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			ctx, cancel := context.WithTimeout(e.ctx, e.cfg.HandshakeTimeout)
			defer cancel()
			l, err := e.setupAccepted(ctx, qc)
			if err != nil {
				e.stats.acceptFailed.Add(1)
				e.logLim.Info(e.log, "", "accept failed", logging.Addr(qc.RemoteAddr().String()), zap.Error(err))
				qc.CloseWithError(closeRefused, err.Error())
				return
			}
			select {
			case e.accepted <- l:
				e.stats.linksAccepted.Add(1)
				e.linkLim.Info(e.log, l.peer.String(), "link accepted", logging.Peer(l.peer), zap.Stringer("kind", l.kind), logging.Addr(qc.RemoteAddr().String()))
			default:
				e.stats.acceptFailed.Add(1)
				l.closeWith(errors.New("accept queue full"))
			}
		}()
	}
}

// handshakeSlot is one incoming QUIC handshake in flight: counted from the
// moment quic-go accepts a first flight (Transport.ConnContext) until the
// listener hands the connection out or its context ends (the handshake
// failed or timed out), whichever comes first.
type handshakeSlot struct {
	e    *Endpoint
	once sync.Once
	stop func() bool
	gen  uint64 // the endpoint's credentials generation when it started
}

type handshakeKey struct{}

func (h *handshakeSlot) release() {
	h.once.Do(func() { h.e.stats.handshakes.Add(-1) })
}

// handshakeStarted is the Transport's ConnContext: it counts the handshake.
func (e *Endpoint) handshakeStarted(ctx context.Context, _ *quic.ClientInfo) (context.Context, error) {
	h := &handshakeSlot{e: e}
	_, h.gen = e.identity()
	e.stats.handshakes.Add(1)
	h.stop = context.AfterFunc(ctx, h.release)
	return context.WithValue(ctx, handshakeKey{}, h), nil
}

// handshakeGen is the credentials generation when ctx's handshake started.
func handshakeGen(ctx context.Context) uint64 {
	if h, ok := ctx.Value(handshakeKey{}).(*handshakeSlot); ok {
		return h.gen
	}
	return 0
}

// handshakeDone releases the slot of an accepted connection.
func handshakeDone(ctx context.Context) {
	if h, ok := ctx.Value(handshakeKey{}).(*handshakeSlot); ok {
		h.stop()
		h.release()
	}
}

// wantRetry is the Transport's VerifySourceAddress: a client that has not
// proved its address must do so (Retry) while handshakes pile up.
func (e *Endpoint) wantRetry(net.Addr) bool {
	if e.stats.handshakes.Load() < int64(e.cfg.RetryAboveHandshakes) {
		return false
	}
	e.stats.retries.Add(1)
	return true
}

func (e *Endpoint) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

// track registers a live link so Close can stop it; false if closing.
// stale: the credentials changed since the link's handshake showed them
// (a renewal that SetIdentity sent to the links tracked then missed it).
func (e *Endpoint) track(l *link) (ok, stale bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return false, false
	}
	e.links[l] = struct{}{}
	return true, l.gen != e.gen
}

func (e *Endpoint) untrack(l *link) {
	e.mu.Lock()
	delete(e.links, l)
	e.mu.Unlock()
}

// Close closes every link, stops accepting, and closes both sockets. It
// waits for every goroutine the endpoint started.
func (e *Endpoint) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	links := make([]*link, 0, len(e.links))
	for l := range e.links {
		links = append(links, l)
	}
	e.mu.Unlock()

	for _, l := range links {
		l.Close()
	}
	e.cancel()
	e.ln.Close()
	e.wg.Wait()
	// links handed to the accept queue but never taken
	for {
		select {
		case l := <-e.accepted:
			l.Close()
			continue
		default:
		}
		break
	}
	err := e.tr.Close()
	if e.raw != nil {
		e.raw.close()
	}
	if cerr := e.cfg.Conn.Close(); err == nil {
		err = cerr
	}
	return err
}
