package linkem

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// Conn is a UDP socket on a node of a Network; it implements
// net.PacketConn.
type Conn struct {
	n      *Network
	addr   netip.AddrPort
	uaddr  *net.UDPAddr
	in     chan *packet
	closed chan struct{}
	once   sync.Once

	mu      sync.Mutex
	rdl     time.Time
	changed chan struct{} // closed and replaced when the read deadline changes
}

func newConn(n *Network, addr netip.AddrPort, q int) *Conn {
	return &Conn{n: n, addr: addr, uaddr: net.UDPAddrFromAddrPort(addr),
		in: make(chan *packet, q), closed: make(chan struct{}), changed: make(chan struct{})}
}

func (c *Conn) deadline() (time.Time, chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rdl, c.changed
}

// ReadFrom implements net.PacketConn; a datagram longer than b is
// truncated, as with UDP.
func (c *Conn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		dl, changed := c.deadline()
		var expired <-chan time.Time
		if !dl.IsZero() {
			d := time.Until(dl)
			if d <= 0 {
				return 0, nil, os.ErrDeadlineExceeded
			}
			t := time.NewTimer(d)
			defer t.Stop()
			expired = t.C
		}
		select {
		case p := <-c.in:
			n := copy(b, p.buf[:p.n])
			from := net.UDPAddrFromAddrPort(p.src)
			p.free()
			return n, from, nil
		case <-c.closed:
			return 0, nil, net.ErrClosed
		case <-expired:
			return 0, nil, os.ErrDeadlineExceeded
		case <-changed:
		}
	}
}

// WriteTo implements net.PacketConn. Like UDP it reports success for a
// datagram the network then loses.
func (c *Conn) WriteTo(b []byte, addr net.Addr) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	var dst netip.AddrPort
	switch a := addr.(type) {
	case *net.UDPAddr:
		dst = a.AddrPort()
	default:
		ap, err := netip.ParseAddrPort(addr.String())
		if err != nil {
			return 0, errors.New("linkem: write to a non-UDP address")
		}
		dst = ap
	}
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	if len(b) > MaxMTU {
		return 0, errors.New("linkem: message too long")
	}
	if err := c.n.send(c.addr, dst, b); err != nil {
		return 0, err
	}
	return len(b), nil
}

// Close implements net.PacketConn.
func (c *Conn) Close() error {
	c.once.Do(func() {
		close(c.closed)
		c.n.unlisten(c.addr, c)
	})
	return nil
}

// LocalAddr implements net.PacketConn; it is a *net.UDPAddr.
func (c *Conn) LocalAddr() net.Addr { return c.uaddr }

// SetDeadline sets the read deadline (writes never block).
func (c *Conn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

// SetReadDeadline implements net.PacketConn.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.rdl = t
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	return nil
}

// SetWriteDeadline implements net.PacketConn; writes never block.
func (c *Conn) SetWriteDeadline(time.Time) error { return nil }

// SetReadBuffer and SetWriteBuffer accept and ignore a size, so that
// quic-go does not warn about a socket it cannot tune.
func (c *Conn) SetReadBuffer(int) error  { return nil }
func (c *Conn) SetWriteBuffer(int) error { return nil }
