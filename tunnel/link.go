package tunnel

import (
	"context"
	"io"
	"net"
	"time"

	"github.com/gdpnet/gdpnet/pdu"
)

// Kind selects how a Link carries PDUs.
type Kind uint8

const (
	// KindQUIC carries PDUs in QUIC DATAGRAM frames, or a unidirectional
	// stream each when they do not fit.
	KindQUIC Kind = 1
	// KindRaw carries PDUs in raw GDP-in-UDP frames (PROTOCOL.md §2) on
	// the endpoint's raw socket; the QUIC connection stays up as the
	// control channel (keys, rekeying, liveness, bulk streams).
	KindRaw Kind = 2
)

func (k Kind) String() string {
	switch k {
	case KindQUIC:
		return "quic"
	case KindRaw:
		return "raw"
	}
	return "unknown"
}

// MaxPDU is the largest PDU a Link carries: a full header with options plus
// the largest payload. The tunnel treats PDUs as opaque bytes of 1 to MaxPDU.
const MaxPDU = pdu.MaxPDU

// Link moves whole PDUs to and from one authenticated peer.
//
// Received PDUs are handed to the Handler of the Endpoint's Config. All
// methods are safe for concurrent use.
type Link interface {
	// Peer is the peer's verified name.
	Peer() pdu.Name
	// Kind says how PDUs travel.
	Kind() Kind
	// Send queues one PDU for the peer. It copies p (the caller may reuse
	// it at once) and may block briefly while the send queue is full. It
	// returns ErrTooBig for an empty PDU or one longer than MaxPDU, and
	// ErrClosed once the link is closed. Delivery is not guaranteed: PDUs
	// are datagrams, and end-to-end reliability belongs above the tunnel.
	Send(p []byte) error
	// OpenStream opens a reliable, ordered, bidirectional byte stream to
	// the peer for bulk transfer (VM handoff). The peer receives it from
	// AcceptStream.
	OpenStream(ctx context.Context) (Stream, error)
	// AcceptStream waits for a stream the peer opened with OpenStream.
	AcceptStream(ctx context.Context) (Stream, error)
	// LocalAddr and RemoteAddr are the underlay addresses PDUs use.
	LocalAddr() net.Addr
	RemoteAddr() net.Addr
	// Expiry is when the peer's credentials (membership) stop being valid;
	// the zero time if they do not expire.
	Expiry() time.Time
	// Done is closed when the link has closed, by Close, by the peer, by an
	// idle timeout or by the endpoint closing. Err then says why.
	Done() <-chan struct{}
	Err() error
	// Close tears the link down and waits for its goroutines. It is
	// idempotent; PDUs still queued may be dropped.
	Close() error
}

// Stream is a reliable bidirectional byte stream on a Link. Close closes the
// write direction (the peer reads io.EOF); CloseRead abandons reading.
type Stream interface {
	io.ReadWriteCloser
	CloseRead()
	SetDeadline(t time.Time) error
}

// Handler receives every PDU a Link delivers. p is valid only during the
// call (the tunnel reuses the buffer). It may be called concurrently for
// different links and, on a QUIC link, for the same link (datagrams and
// streams arrive on different goroutines); it must not block for long,
// since on a raw link it runs on the endpoint's receive loop. A peer may
// send as soon as the link is up, so the Handler can see a link just before
// Dial or Accept has returned it. It may call l.Close.
type Handler func(l Link, p []byte)

// Listener accepts authenticated peers. *Endpoint implements it.
type Listener interface {
	Accept(ctx context.Context) (Link, error)
	Addr() net.Addr
	Close() error
}

// Dialer opens a link to the peer expected at addr. *Endpoint implements it.
type Dialer interface {
	Dial(ctx context.Context, addr net.Addr, peer pdu.Name, kind Kind) (Link, error)
}
