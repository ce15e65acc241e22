package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/quic-go/quic-go"
)

// QUIC application error codes a link closes with.
const (
	closeNormal  quic.ApplicationErrorCode = 0
	closeRefused quic.ApplicationErrorCode = 1
)

// peerOf re-reads the verified peer from a finished handshake.
func (e *Endpoint) peerOf(qc *quic.Conn, want [32]byte) (verifiedPeer, error) {
	cs := qc.ConnectionState()
	proto := cs.TLS.NegotiatedProtocol
	if proto != ALPN && proto != ALPNv1 {
		return verifiedPeer{}, fmt.Errorf("%w: alpn %q", ErrProtocol, proto)
	}
	if !cs.SupportsDatagrams.Remote {
		return verifiedPeer{}, fmt.Errorf("%w: peer does not support datagrams", ErrProtocol)
	}
	raw := make([][]byte, len(cs.TLS.PeerCertificates))
	for i, c := range cs.TLS.PeerCertificates {
		raw[i] = c.Raw
	}
	p, err := e.verifyPeer(raw, want)
	p.renew = proto == ALPN
	return p, err
}

func deadlineOf(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

// setupDialed runs the dialer's half of the control exchange.
func (e *Endpoint) setupDialed(ctx context.Context, qc *quic.Conn, want [32]byte, kind Kind, gen uint64) (*link, error) {
	p, err := e.peerOf(qc, want)
	if err != nil {
		return nil, err
	}
	ctrl, err := qc.OpenStreamSync(ctx)
	if err != nil {
		return nil, fmt.Errorf("open control stream: %w", err)
	}
	ctrl.SetDeadline(deadlineOf(ctx))
	hello := ctrlMsg{Type: msgHello, Arg: byte(kind)}
	var idx uint32
	if kind == KindRaw {
		idx = e.raw.reserveIndex()
		hello.Index, hello.Port, hello.MTU = idx, e.raw.port(), uint16(e.raw.mtu)
	}
	b := hello.encode()
	if _, err := ctrl.Write(append([]byte{streamControl}, b[:]...)); err != nil {
		e.releaseIndex(idx)
		return nil, fmt.Errorf("control hello: %w", err)
	}
	acc, err := expect(ctrl, msgAccept)
	if err != nil {
		e.releaseIndex(idx)
		return nil, fmt.Errorf("control accept: %w", err)
	}
	l := newLink(e, qc, ctrl, p, kind, true, gen)
	if kind == KindRaw {
		addr, err := rawPeerAddr(qc.RemoteAddr(), acc.Port)
		if err != nil {
			e.releaseIndex(idx)
			return nil, err
		}
		_, err = e.raw.startSession(l, true, idx, acc.Index, 0, int(acc.MTU), addr)
		if err != nil {
			e.releaseIndex(idx)
			return nil, err
		}
	}
	if err := writeCtrl(ctrl, ctrlMsg{Type: msgReady}); err != nil {
		l.abandon()
		return nil, fmt.Errorf("control ready: %w", err)
	}
	ctrl.SetDeadline(time.Time{})
	if err := l.start(); err != nil {
		return nil, err
	}
	return l, nil
}

// setupAccepted runs the listener's half.
func (e *Endpoint) setupAccepted(ctx context.Context, qc *quic.Conn) (*link, error) {
	p, err := e.peerOf(qc, [32]byte{})
	if err != nil {
		return nil, err
	}
	ctrl, err := qc.AcceptStream(ctx)
	if err != nil {
		return nil, fmt.Errorf("accept control stream: %w", err)
	}
	ctrl.SetDeadline(deadlineOf(ctx))
	var tag [1]byte
	if _, err := io.ReadFull(ctrl, tag[:]); err != nil {
		return nil, fmt.Errorf("control stream: %w", err)
	}
	if tag[0] != streamControl {
		return nil, fmt.Errorf("%w: first stream is not the control stream", ErrProtocol)
	}
	hello, err := expect(ctrl, msgHello)
	if err != nil {
		return nil, fmt.Errorf("control hello: %w", err)
	}
	kind := Kind(hello.Arg)
	switch {
	case kind == KindRaw && e.raw == nil:
		writeCtrl(ctrl, ctrlMsg{Type: msgRefuse, Arg: refuseNoRaw})
		return nil, ErrNoRaw
	case kind != KindRaw && kind != KindQUIC:
		writeCtrl(ctrl, ctrlMsg{Type: msgRefuse, Arg: refuseKind})
		return nil, fmt.Errorf("%w: unknown kind %d", ErrProtocol, hello.Arg)
	}
	l := newLink(e, qc, ctrl, p, kind, false, handshakeGen(qc.Context()))
	acc := ctrlMsg{Type: msgAccept}
	if kind == KindRaw {
		addr, err := rawPeerAddr(qc.RemoteAddr(), hello.Port)
		if err != nil {
			return nil, err
		}
		idx := e.raw.reserveIndex()
		_, err = e.raw.startSession(l, false, hello.Index, idx, 0, int(hello.MTU), addr)
		if err != nil {
			e.releaseIndex(idx)
			return nil, err
		}
		acc.Index, acc.Port, acc.MTU = idx, e.raw.port(), uint16(e.raw.mtu)
	}
	if err := writeCtrl(ctrl, acc); err != nil {
		l.abandon()
		return nil, fmt.Errorf("control accept: %w", err)
	}
	if _, err := expect(ctrl, msgReady); err != nil {
		l.abandon()
		return nil, fmt.Errorf("control ready: %w", err)
	}
	ctrl.SetDeadline(time.Time{})
	if err := l.start(); err != nil {
		return nil, err
	}
	return l, nil
}

func (e *Endpoint) releaseIndex(idx uint32) {
	if e.raw != nil && idx != 0 {
		e.raw.removeSession(idx)
	}
}

// rawPeerAddr is where the peer's raw frames go: the IP its QUIC packets
// come from, with the raw port it announced.
func rawPeerAddr(quicAddr net.Addr, port uint16) (*net.UDPAddr, error) {
	ua, ok := quicAddr.(*net.UDPAddr)
	if !ok || port == 0 {
		return nil, errors.New("tunnel: peer has no usable raw address")
	}
	return &net.UDPAddr{IP: ua.IP, Port: int(port), Zone: ua.Zone}, nil
}
