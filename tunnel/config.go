package tunnel

import (
	"errors"
	"net"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/internal/clock"
)

// ALPN names the tunnel protocol and its version in the TLS handshake:
// gdp-tunnel/2 is gdp-tunnel/1 plus the RENEW control message (a renewed
// membership shown on a live link, docs/PROTOCOL.md §4.3). An endpoint
// offers both, /2 first, and speaks /1 with a peer that knows only /1
// (releases before Session 12): it then never sends RENEW, which such a
// peer would take for a protocol violation and close the link.
const ALPN = "gdp-tunnel/2"

// ALPNv1 is the tunnel protocol without RENEW, still accepted.
const ALPNv1 = "gdp-tunnel/1"

// Liveness defaults: a link's peer is pinged every DefaultKeepAlive when
// idle, and declared dead after DefaultIdleTimeout without a packet.
const (
	DefaultKeepAlive   = time.Second
	DefaultIdleTimeout = 5 * time.Second
)

// DefaultRetryAboveHandshakes is Config.RetryAboveHandshakes's default.
const DefaultRetryAboveHandshakes = 16

// Config configures an Endpoint. Zero values of the optional fields take
// the defaults named in their comments.
type Config struct {
	// Identity is this node's key, name and credentials. Required.
	Identity *Identity
	// Verify decides whether a peer's credentials prove its name. Required.
	Verify PeerVerifier
	// Conn is the QUIC socket. Required. The Endpoint owns it and closes
	// it on Close.
	Conn net.PacketConn
	// Raw is the raw GDP-in-UDP socket; nil disables KindRaw links. It must
	// not be Conn (quic-go queues only 32 non-QUIC packets). Owned and closed
	// by the Endpoint. A *net.UDPConn gets recvmmsg/sendmmsg batching.
	Raw net.PacketConn
	// Handler receives every PDU. Nil drops them (counted).
	Handler Handler
	// Logger; nil logs nothing.
	Logger *zap.Logger

	// HandshakeTimeout bounds the TLS handshake and the control exchange
	// that follows it. Default 5 s.
	HandshakeTimeout time.Duration
	// KeepAlivePeriod is how often an idle link sends a QUIC PING.
	// Default 1 s (DefaultKeepAlive).
	KeepAlivePeriod time.Duration
	// IdleTimeout closes a link that heard nothing for that long: how
	// soon a peer that died (kill -9, power loss, cut cable) is noticed.
	// Default 5 s (DefaultIdleTimeout). A peer that restarted is noticed
	// sooner: its new process answers the old link's packets with a QUIC
	// stateless reset (the reset key is derived from the node's key).
	IdleTimeout time.Duration
	// StreamTimeout bounds sending or receiving one PDU on a QUIC stream.
	// Default 10 s.
	StreamTimeout time.Duration

	// RawMTU is the largest UDP payload a raw frame may have. Default: the
	// MTU the Raw socket reports (an MTU() int method, as memnet has), else
	// the MTU of the interface holding Raw's local address minus IP and UDP
	// headers, else 1452. Peers use the smaller of their two values.
	RawMTU int
	// RekeyInterval is how often a raw link moves to a new key epoch.
	// Default 2 min.
	RekeyInterval time.Duration
	// ReassemblySlots is how many incomplete fragmented PDUs a raw link
	// holds at once (the oldest is evicted beyond that). Default 16.
	ReassemblySlots int
	// ReassemblyTimeout drops an incomplete PDU older than this. Default 2 s.
	ReassemblyTimeout time.Duration
	// SendQueue is how many raw frames may wait for the socket; Send blocks
	// when it is full. Default 2048.
	SendQueue int
	// DisableOffload turns off UDP GSO/GRO on Raw (they are used when the
	// kernel offers them).
	DisableOffload bool
	// SocketBuffer is the SO_RCVBUF/SO_SNDBUF asked for on Raw. Default
	// 8 MiB; a log line says when the OS grants less.
	SocketBuffer int
	// AcceptQueue is how many authenticated links may wait for Accept
	// before new ones are refused. Default 64.
	AcceptQueue int

	// What one peer may make this endpoint hold on one link (multiply by
	// the links a peer may have: the router bounds them per identity).

	// MaxStreams bounds the bulk streams a peer may have open on one link
	// at once (QUIC stream credit: it cannot open more). A bulk stream
	// not taken by AcceptStream within StreamTimeout is reset (drop reason
	// bulk_unaccepted). Default 16. Negative: none (a router, which never
	// accepts bulk streams).
	MaxStreams int
	// MaxPDUStreams bounds the unidirectional streams (one PDU too large
	// for a datagram each) a peer may have open on one link at once; each
	// may pin a MaxPDU buffer until it ends or StreamTimeout resets it
	// (drop reason stream_timeout). Default 16.
	MaxPDUStreams int
	// CountDatagramDrops counts the QUIC datagrams quic-go discards
	// (drop reasons datagram_queue: its receive queue of 128 was full,
	// the link's reader fell behind; datagram_too_large), which it
	// otherwise only logs at debug level. Off by default: it needs a
	// quic-go connection tracer, which builds an event for every packet
	// (8 allocations more per datagram; measured, Session 16, 1.7-2.1x
	// fewer datagram PDUs/s through one QUIC link at low load). A
	// diagnostic for unexplained loss under load; raw links never lose
	// PDUs this way.
	CountDatagramDrops bool
	// ReceiveWindow bounds the bytes a peer may have sent on one link's
	// streams that this endpoint has not read yet (the QUIC connection
	// flow-control window; one stream gets at most 6 MiB of it). Default
	// 8 MiB.
	ReceiveWindow int
	// RetryAboveHandshakes turns on QUIC source address validation (RFC
	// 9000 §8.1.2) under load: while at least this many incoming
	// handshakes are in flight (first flight received, TLS not complete),
	// a new client that has not proved its address is sent a Retry — a
	// packet smaller than its first flight — instead of the handshake
	// answer (~3× its first flight), so spoofed first flights cannot use
	// the listener as an amplifier. The client's second attempt carries
	// the Retry token and costs one round trip more. Counted in
	// gdp_tunnel_retries_total. Default DefaultRetryAboveHandshakes (16);
	// negative: every new client is asked to validate.
	RetryAboveHandshakes int
	// Now is the clock; nil means clock.Now.
	Now func() time.Time

	// onlyV1 (tests): offer gdp-tunnel/1 alone, as releases before Session
	// 12 did, to check that a peer that knows no RENEW keeps its links.
	onlyV1 bool
	// beforeTrack (tests) runs as a set-up link is about to be tracked:
	// a renewal there is one the link's handshake did not show.
	beforeTrack func()
}

func (c *Config) withDefaults() (Config, error) {
	d := *c
	if d.Identity == nil || len(d.Identity.Key) == 0 {
		return d, errors.New("tunnel: config: no identity")
	}
	if d.Verify == nil {
		return d, errors.New("tunnel: config: no peer verifier")
	}
	if d.Conn == nil {
		return d, errors.New("tunnel: config: no quic socket")
	}
	if d.Raw != nil && d.Raw == d.Conn {
		return d, errors.New("tunnel: config: raw socket must not be the quic socket")
	}
	if d.Logger == nil {
		d.Logger = zap.NewNop()
	}
	def := func(v *time.Duration, x time.Duration) {
		if *v <= 0 {
			*v = x
		}
	}
	def(&d.HandshakeTimeout, 5*time.Second)
	def(&d.KeepAlivePeriod, DefaultKeepAlive)
	def(&d.IdleTimeout, DefaultIdleTimeout)
	def(&d.StreamTimeout, 10*time.Second)
	def(&d.RekeyInterval, 2*time.Minute)
	def(&d.ReassemblyTimeout, 2*time.Second)
	defInt := func(v *int, x int) {
		if *v <= 0 {
			*v = x
		}
	}
	defInt(&d.ReassemblySlots, 16)
	defInt(&d.SendQueue, 2048)
	defInt(&d.SocketBuffer, 8<<20)
	defInt(&d.AcceptQueue, 64)
	if d.MaxStreams == 0 {
		d.MaxStreams = 16
	}
	defInt(&d.MaxPDUStreams, 16)
	defInt(&d.ReceiveWindow, 8<<20)
	if d.RetryAboveHandshakes == 0 {
		d.RetryAboveHandshakes = DefaultRetryAboveHandshakes
	}
	if d.Now == nil {
		d.Now = clock.Now
	}
	return d, nil
}
