package tunnel

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

// link is both kinds of Link: a QUIC connection with its control stream,
// plus the raw session state for KindRaw.
type link struct {
	ep     *Endpoint
	qc     *quic.Conn
	ctrl   *quic.Stream
	ctrlMu sync.Mutex // serialises control writes
	peer   pdu.Name
	kind   Kind
	dialer bool
	raw    *rawLink // KindRaw only

	// The peer's credentials: those of the handshake until a RENEW
	// replaces them (renew.go). peerKey is the key TLS bound; a renewal
	// must be for it.
	peerKey  ed25519.PublicKey
	renew    bool   // gdp-tunnel/2: RENEW may be sent and received
	gen      uint64 // our credentials generation when the handshake showed them
	rechecks uint64 // the endpoint's RecheckPeers count when the handshake verified the peer
	expMu    sync.Mutex
	exp      peerExpiry
	moved    chan struct{} // a renewal moved exp (cap 1)
	bucket   renewBucket   // controlLoop's only
	refusals int           // renewals refused (controlLoop's only)
	renewLog time.Time     // when an accepted renewal was last logged (controlLoop's only)

	bulk     chan *quic.Stream
	lastSend atomic.Int64 // Unix nanoseconds of the last PDU sent (liveness)
	ctx      context.Context
	cancel   context.CancelCauseFunc
	wg       sync.WaitGroup
	done     chan struct{}
	once     sync.Once
}

func newLink(e *Endpoint, qc *quic.Conn, ctrl *quic.Stream, p verifiedPeer, kind Kind, dialer bool, gen uint64) *link {
	l := &link{
		ep: e, qc: qc, ctrl: ctrl, peer: p.name, kind: kind, dialer: dialer,
		peerKey: p.key, renew: p.renew, gen: gen, rechecks: p.rechecks,
		exp:   newPeerExpiry(p.exp, p.creds),
		moved: make(chan struct{}, 1),
		bulk:  make(chan *quic.Stream), // handed over only to a waiting AcceptStream
		done:  make(chan struct{}),
	}
	l.ctx, l.cancel = context.WithCancelCause(qc.Context())
	return l
}

// abandon undoes a link whose setup failed before start.
func (l *link) abandon() {
	l.cancel(ErrClosed)
	if l.raw != nil {
		l.raw.stop()
	}
}

// start registers the link and launches its goroutines; it fails when
// the endpoint is closing, or when a RecheckPeers since the handshake's
// check refuses the peer.
func (l *link) start() error {
	if l.ep.cfg.beforeTrack != nil {
		l.ep.cfg.beforeTrack()
	}
	ok, stale := l.ep.track(l)
	if !ok {
		l.abandon()
		l.qc.CloseWithError(closeNormal, "endpoint closing")
		return ErrClosed
	}
	if l.ep.rechecks.Load() != l.rechecks {
		// RecheckPeers ran after this link's handshake was verified,
		// maybe before it was tracked: checked under the trust now.
		if err := l.reverify(); err != nil {
			l.ep.untrack(l)
			l.abandon()
			l.qc.CloseWithError(closeRefused, "trust withdrawn")
			return err
		}
	}
	l.wg.Add(5)
	go l.livenessLoop()
	go l.datagramLoop()
	go l.uniLoop()
	go l.bidiLoop()
	go l.controlLoop()
	if l.raw != nil && l.dialer {
		l.wg.Add(1)
		go l.rekeyLoop()
	}
	l.ep.wg.Add(1)
	go l.watch()
	if stale && l.renew {
		l.present() // renewed while this link's handshake ran
	}
	return nil
}

// watch closes the link when its connection dies or its credentials expire,
// then waits for the link's goroutines and marks it Done.
func (l *link) watch() {
	defer l.ep.wg.Done()
	l.watchExpiry()
	l.closeWith(context.Cause(l.ctx))
	l.wg.Wait()
	l.ep.untrack(l)
	close(l.done)
}

func (l *link) closeWith(err error) {
	l.once.Do(func() {
		if err == nil {
			err = ErrClosed
		}
		l.cancel(err)
		if l.raw != nil {
			l.raw.stop()
		}
		l.qc.CloseWithError(closeNormal, "")
		l.ep.stats.linksClosed.Add(1)
		l.ep.linkLim.Info(l.ep.log, l.peer.String(), "link down", logging.Peer(l.peer), zap.Stringer("kind", l.kind), logging.Reason(CloseReason(err)))
	})
}

func (l *link) Peer() pdu.Name        { return l.peer }
func (l *link) Kind() Kind            { return l.kind }
func (l *link) Expiry() time.Time     { return l.expiry() }
func (l *link) Done() <-chan struct{} { return l.done }
func (l *link) LocalAddr() net.Addr {
	if l.raw != nil {
		return l.ep.raw.pc.LocalAddr()
	}
	return l.qc.LocalAddr()
}
func (l *link) RemoteAddr() net.Addr {
	if l.raw != nil {
		return l.raw.addr.Load()
	}
	return l.qc.RemoteAddr()
}

// Err says why the link closed; nil while it is up.
func (l *link) Err() error {
	if l.ctx.Err() == nil {
		return nil
	}
	return context.Cause(l.ctx)
}

// Close closes the link. It does not wait for the link's goroutines (so a
// Handler may call it); Done is closed once they have all returned.
func (l *link) Close() error {
	l.closeWith(ErrClosed)
	return nil
}

// Send implements Link.
func (l *link) Send(p []byte) error {
	if len(p) == 0 || len(p) > MaxPDU {
		return ErrTooBig
	}
	if l.ctx.Err() != nil {
		return ErrClosed
	}
	if l.raw != nil {
		return l.raw.send(p)
	}
	err := l.qc.SendDatagram(p)
	var tooBig *quic.DatagramTooLargeError
	switch {
	case err == nil:
		l.ep.stats.pdusSent.Add(1)
		l.lastSend.Store(time.Now().UnixNano())
		return nil
	case errors.As(err, &tooBig):
		return l.sendStream(p)
	case l.ctx.Err() != nil:
		return ErrClosed
	default:
		return fmt.Errorf("tunnel: send datagram: %w", err)
	}
}

// TrySend is Send for a caller that must not wait (a router forwarding on
// its receive loop). On a raw link it seals p into a free frame buffer and
// queues it, or returns ErrBusy at once when the endpoint's send queue is
// full (nothing is sent). On a QUIC link it is Send.
func (l *link) TrySend(p []byte) error {
	if l.raw == nil {
		return l.Send(p)
	}
	if len(p) == 0 || len(p) > MaxPDU {
		return ErrTooBig
	}
	if l.ctx.Err() != nil {
		return ErrClosed
	}
	return l.raw.sendOr(p, false)
}

// sendStream sends one PDU on its own unidirectional stream; FIN ends it.
func (l *link) sendStream(p []byte) error {
	ctx, cancel := context.WithTimeout(l.ctx, l.ep.cfg.StreamTimeout)
	defer cancel()
	s, err := l.qc.OpenUniStreamSync(ctx)
	if err != nil {
		if l.ctx.Err() != nil {
			return ErrClosed
		}
		return fmt.Errorf("tunnel: open pdu stream: %w", err)
	}
	s.SetWriteDeadline(deadlineOf(ctx))
	if _, err := s.Write(p); err != nil {
		s.CancelWrite(0)
		return fmt.Errorf("tunnel: send pdu stream: %w", err)
	}
	if err := s.Close(); err != nil {
		return fmt.Errorf("tunnel: close pdu stream: %w", err)
	}
	l.ep.stats.pdusSent.Add(1)
	return nil
}

// livenessLoop sends a KEEPALIVE PDU as a datagram whenever the link sent
// nothing for half of KeepAlivePeriod. QUIC's own PING stops at the first
// loss and waits out its probe backoff (seconds, doubling) while the peer
// is gone; a datagram goes out every half period regardless, so a peer that
// restarted answers one with a stateless reset within half a period of
// coming back.
func (l *link) livenessLoop() {
	defer l.wg.Done()
	period := max(l.ep.cfg.KeepAlivePeriod/2, 10*time.Millisecond)
	ka, err := (&pdu.Header{Type: pdu.TypeKeepalive, TTL: 1, Dst: l.peer, Src: l.ep.cfg.Identity.Name}).Marshal()
	if err != nil {
		return
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case now := <-t.C:
			if now.UnixNano()-l.lastSend.Load() < int64(period) {
				continue
			}
			if l.qc.SendDatagram(ka) == nil {
				l.ep.stats.keepalivesSent.Add(1)
				l.lastSend.Store(now.UnixNano())
			}
		}
	}
}

// isKeepalive reports whether p is a KEEPALIVE PDU: link liveness, consumed
// by the tunnel, never delivered.
func isKeepalive(p []byte) bool {
	return len(p) >= pdu.HeaderLen && p[0] == pdu.Version && p[2] == byte(pdu.TypeKeepalive)
}

// deliver hands one received PDU to the Handler.
func (l *link) deliver(p []byte) {
	if isKeepalive(p) {
		l.ep.stats.keepalivesReceived.Add(1)
		return
	}
	h := l.ep.cfg.Handler
	if h == nil {
		l.ep.stats.drop(DropNoHandler)
		return
	}
	l.ep.stats.pdusReceived.Add(1)
	h(l, p)
}

func (l *link) datagramLoop() {
	defer l.wg.Done()
	for {
		b, err := l.qc.ReceiveDatagram(l.ctx)
		if err != nil {
			return
		}
		if len(b) == 0 {
			l.ep.stats.drop(DropTruncated)
			continue
		}
		l.deliver(b)
	}
}

var pduBufPool = sync.Pool{New: func() any { b := make([]byte, MaxPDU+1); return &b }}

func (l *link) uniLoop() {
	defer l.wg.Done()
	for {
		s, err := l.qc.AcceptUniStream(l.ctx)
		if err != nil {
			return
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.readPDUStream(s)
		}()
	}
}

func (l *link) readPDUStream(s *quic.ReceiveStream) {
	s.SetReadDeadline(time.Now().Add(l.ep.cfg.StreamTimeout))
	bp := pduBufPool.Get().(*[]byte)
	defer pduBufPool.Put(bp)
	buf := *bp
	n, err := io.ReadFull(s, buf)
	switch {
	case err == io.ErrUnexpectedEOF || (err == io.EOF && n == 0):
		// a PDU shorter than the buffer ended with FIN: the normal case
	case err == nil:
		l.ep.stats.drop(DropOversize) // MaxPDU+1 bytes and still going
		s.CancelRead(0)
		return
	default:
		if errors.Is(err, os.ErrDeadlineExceeded) {
			l.ep.stats.drop(DropStreamTimeout)
		}
		s.CancelRead(0)
		return
	}
	if n == 0 {
		l.ep.stats.drop(DropTruncated)
		return
	}
	l.deliver(buf[:n])
}

func (l *link) bidiLoop() {
	defer l.wg.Done()
	for {
		s, err := l.qc.AcceptStream(l.ctx)
		if err != nil {
			return
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			s.SetReadDeadline(time.Now().Add(l.ep.cfg.StreamTimeout))
			var tag [1]byte
			if _, err := io.ReadFull(s, tag[:]); err != nil || tag[0] != streamBulk {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					l.ep.stats.drop(DropStreamTimeout)
				}
				s.CancelRead(0)
				s.CancelWrite(0)
				return
			}
			s.SetReadDeadline(time.Time{})
			// Wait for an AcceptStream, but not for ever: a stream nobody
			// takes would hold its goroutine and its receive window.
			t := time.NewTimer(l.ep.cfg.StreamTimeout)
			defer t.Stop()
			if l.ep.cfg.MaxStreams < 0 {
				t.Reset(0)
			}
			select {
			case l.bulk <- s:
				return
			case <-t.C:
				l.ep.stats.drop(DropBulkUnaccepted)
			case <-l.ctx.Done():
			}
			s.CancelRead(0)
			s.CancelWrite(0)
		}()
	}
}

// OpenStream implements Link.
func (l *link) OpenStream(ctx context.Context) (Stream, error) {
	s, err := l.qc.OpenStreamSync(ctx)
	if err != nil {
		if l.ctx.Err() != nil {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("tunnel: open stream: %w", err)
	}
	if _, err := s.Write([]byte{streamBulk}); err != nil {
		s.CancelWrite(0)
		return nil, fmt.Errorf("tunnel: open stream: %w", err)
	}
	return bulkStream{s}, nil
}

// AcceptStream implements Link.
func (l *link) AcceptStream(ctx context.Context) (Stream, error) {
	select {
	case s := <-l.bulk:
		return bulkStream{s}, nil
	case <-l.ctx.Done():
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type bulkStream struct{ *quic.Stream }

func (s bulkStream) CloseRead() { s.CancelRead(0) }

// writeControl sends one control message.
func (l *link) writeControl(m ctrlMsg) error {
	l.ctrlMu.Lock()
	defer l.ctrlMu.Unlock()
	l.ctrl.SetWriteDeadline(time.Now().Add(l.ep.cfg.HandshakeTimeout))
	return writeCtrl(l.ctrl, m)
}

// controlLoop reads control messages after setup: renewals (gdp-tunnel/2)
// and rekeying on raw links. Anything else closes the link, as does a
// RENEW on a gdp-tunnel/1 link (what a /1 endpoint does with one).
func (l *link) controlLoop() {
	defer l.wg.Done()
	stop := context.AfterFunc(l.ctx, func() { l.ctrl.CancelRead(0) })
	defer stop()
	for {
		m, err := readCtrl(l.ctrl)
		if err != nil {
			if l.ctx.Err() == nil && !errors.Is(err, io.EOF) {
				l.closeWith(fmt.Errorf("control stream: %w", err))
			}
			return
		}
		if m.Type == msgRenew && l.renew {
			if err := l.readRenew(m); err != nil {
				l.closeWith(err)
				return
			}
			continue
		}
		if l.raw == nil {
			l.closeWith(fmt.Errorf("%w: control message %d on a quic link", ErrProtocol, m.Type))
			return
		}
		if err := l.raw.handleControl(m); err != nil {
			l.closeWith(err)
			return
		}
	}
}

// CloseReason is why a link went down, as the "link down" line (and an
// endpoint's "tunnel to the router lost") says it: a
// normal close by either side reads "closed by peer" or "closed", not
// quic-go's "Application error 0x0 (remote)".
func CloseReason(err error) string {
	var ae *quic.ApplicationError
	switch {
	case err == nil, errors.Is(err, ErrClosed), errors.Is(err, context.Canceled):
		return "closed"
	case errors.As(err, &ae) && ae.ErrorCode == closeNormal:
		if ae.Remote {
			return "closed by peer"
		}
		return "closed"
	case errors.As(err, &ae) && ae.ErrorCode == closeRefused:
		return "refused by peer"
	}
	var idle *quic.IdleTimeoutError
	if errors.As(err, &idle) {
		return "peer silent (idle timeout)"
	}
	return err.Error()
}
