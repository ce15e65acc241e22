package client

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gdpnet/gdpnet/pdu"
)

// NameAddr is a gdpnet name as a net.Addr: the addresses of the packet
// connection QUIC runs on over the overlay (DialName, ListenName).
// Compare two by their Name: == also compares the printed form this
// package caches in the ones it makes.
type NameAddr struct {
	Name pdu.Name
	// str is Name printed, filled by the addresses this package makes:
	// quic-go compares a non-UDP address by its String on every packet
	// it receives (two base64 encodings, four allocations a packet).
	str string
}

// nameAddr is the NameAddr of n with its printed form made once.
func nameAddr(n pdu.Name) NameAddr { return NameAddr{Name: n, str: n.String()} }

// Network is "gdp".
func (NameAddr) Network() string { return "gdp" }

// String is the name in its printed form (43 characters of base64url).
func (a NameAddr) String() string {
	if a.str != "" {
		return a.str
	}
	return a.Name.String()
}

// quicPacketMax is the largest QUIC packet quic-go reads or writes
// (its MaxPacketBufferSize): a larger payload cannot be a packet of ours.
const quicPacketMax = 1452

// contentQUIC is the option bytes of a DATA PDU that carries a QUIC packet:
// OptContent, length 1, ContentQUIC, one Pad1 (PROTOCOL.md §9.1).
var contentQUIC = []byte{pdu.OptContent, 1, pdu.ContentQUIC, pdu.OptPad1}

// quicHeaderLen is the PDU header of a QUIC packet: 76 + 4 bytes of option.
const quicHeaderLen = pdu.HeaderLen + 4

var quicBufPool = sync.Pool{New: func() any { b := make([]byte, 0, quicHeaderLen+quicPacketMax); return &b }}

// inPacket is one received QUIC packet waiting for ReadFrom.
type inPacket struct {
	buf  *[]byte // from quicBufPool
	from pdu.Name
}

// nameConn is the net.PacketConn under a quic.Transport: packets written
// to a NameAddr leave as DATA PDUs from local, with the QUIC content
// option; DATA PDUs to local with that option arrive here (Client.HandlePDU
// hands them over) and are read with the source name as address.
type nameConn struct {
	c     *Client
	local pdu.Name
	in    chan inPacket
	// from is the address of the last packet read, kept as a net.Addr:
	// a packet from the same name (every packet, on a connection's
	// path) returns it without making one (a 32-byte allocation and
	// the name printed, a packet).
	from atomic.Pointer[fromAddr]

	mu       sync.Mutex
	deadline time.Time
	wake     chan struct{} // closed and replaced when the deadline changes
	closed   chan struct{}
	once     sync.Once
}

func newNameConn(c *Client, local pdu.Name, queue int) *nameConn {
	return &nameConn{c: c, local: local, in: make(chan inPacket, queue), wake: make(chan struct{}), closed: make(chan struct{})}
}

// deliver queues one packet (the payload of a DATA PDU from src); it never
// blocks: a full queue drops the packet, as a full socket buffer would.
func (n *nameConn) deliver(src pdu.Name, payload []byte) {
	bp := quicBufPool.Get().(*[]byte)
	*bp = append((*bp)[:0], payload...)
	select {
	case <-n.closed:
		quicBufPool.Put(bp)
		n.c.quic.stats.drop(dropQUICClosed)
		return
	default:
	}
	select {
	case n.in <- inPacket{buf: bp, from: src}:
	default:
		quicBufPool.Put(bp)
		n.c.quic.stats.drop(dropQUICQueueFull)
	}
}

// deadlineErr is what a read past its deadline returns (net.Error, Timeout).
var deadlineErr = os.ErrDeadlineExceeded

// ReadFrom returns the next packet and the name it came from.
func (n *nameConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n.mu.Lock()
		dl, wake := n.deadline, n.wake
		n.mu.Unlock()
		if dl.IsZero() {
			select {
			case pk := <-n.in:
				return n.take(p, pk)
			case <-n.closed:
				return 0, nil, net.ErrClosed
			case <-wake:
				continue
			}
		}
		d := time.Until(dl)
		if d <= 0 {
			return 0, nil, deadlineErr
		}
		t := time.NewTimer(d)
		select {
		case pk := <-n.in:
			t.Stop()
			return n.take(p, pk)
		case <-n.closed:
			t.Stop()
			return 0, nil, net.ErrClosed
		case <-t.C:
			return 0, nil, deadlineErr
		case <-wake:
			t.Stop()
		}
	}
}

// fromAddr is a source name and its address.
type fromAddr struct {
	name pdu.Name
	addr net.Addr
}

func (n *nameConn) take(p []byte, pk inPacket) (int, net.Addr, error) {
	k := copy(p, *pk.buf)
	quicBufPool.Put(pk.buf)
	if f := n.from.Load(); f != nil && f.name == pk.from {
		return k, f.addr, nil
	}
	f := &fromAddr{name: pk.from, addr: nameAddr(pk.from)}
	n.from.Store(f)
	return k, f.addr, nil
}

// WriteTo sends p to the name addr as one DATA PDU from the local name.
func (n *nameConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	a, ok := addr.(NameAddr)
	if !ok {
		return 0, errors.New("quic over names: destination is not a NameAddr")
	}
	select {
	case <-n.closed:
		return 0, net.ErrClosed
	default:
	}
	if len(p) > pdu.MaxPayload {
		return 0, pdu.ErrTooBig
	}
	c := n.c
	bp := quicBufPool.Get().(*[]byte)
	b := (*bp)[:quicHeaderLen]
	b[0] = pdu.Version
	b[1] = quicHeaderLen / 4
	b[2] = byte(pdu.TypeData)
	b[3] = c.opts.TTL
	b[4] = 0 // flags
	b[5] = byte(pdu.CodeNone)
	binary.BigEndian.PutUint16(b[6:8], uint16(len(p)))
	binary.BigEndian.PutUint32(b[8:12], c.nextSeq())
	copy(b[12:44], a.Name[:])
	copy(b[44:76], n.local[:])
	copy(b[76:quicHeaderLen], contentQUIC)
	b = append(b, p...)
	err := c.linkSend(b) // waits for its turn behind the send lane: b is reused
	*bp = b
	quicBufPool.Put(bp)
	if err != nil {
		// A lost packet, as on any lossy path: QUIC's loss recovery takes
		// over. Only a closed client is an error worth stopping for.
		c.quic.stats.sendErrors.Add(1)
		select {
		case <-c.link.Done():
			return 0, net.ErrClosed
		default:
		}
	}
	return len(p), nil
}

// Close stops reads and writes. Queued packets are dropped.
func (n *nameConn) Close() error {
	n.once.Do(func() {
		close(n.closed)
		for {
			select {
			case pk := <-n.in:
				quicBufPool.Put(pk.buf)
			default:
				return
			}
		}
	})
	return nil
}

// LocalAddr is the local name.
func (n *nameConn) LocalAddr() net.Addr { return nameAddr(n.local) }

// SetDeadline sets the read deadline; writes never block long enough to
// need one.
func (n *nameConn) SetDeadline(t time.Time) error { return n.SetReadDeadline(t) }

// SetReadDeadline wakes blocked readers to look at the new deadline.
func (n *nameConn) SetReadDeadline(t time.Time) error {
	n.mu.Lock()
	n.deadline = t
	close(n.wake)
	n.wake = make(chan struct{})
	n.mu.Unlock()
	return nil
}

// SetWriteDeadline is accepted and ignored.
func (n *nameConn) SetWriteDeadline(time.Time) error { return nil }

// SetReadBuffer and SetWriteBuffer keep quic-go from warning about socket
// buffers this connection does not have (its queue is QUICConfig.Queue).
func (n *nameConn) SetReadBuffer(int) error  { return nil }
func (n *nameConn) SetWriteBuffer(int) error { return nil }
