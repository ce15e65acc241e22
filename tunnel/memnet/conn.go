package memnet

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// Conn is one emulated UDP endpoint. It implements net.PacketConn.
type Conn struct {
	n      *Network
	addr   netip.AddrPort
	uaddr  *net.UDPAddr
	in     chan *packet
	closed chan struct{}
	once   sync.Once
	rd, wd deadline
}

func newConn(n *Network, addr netip.AddrPort, q int) *Conn {
	return &Conn{
		n: n, addr: addr, uaddr: net.UDPAddrFromAddrPort(addr),
		in: make(chan *packet, q), closed: make(chan struct{}),
		rd: makeDeadline(), wd: makeDeadline(),
	}
}

// ReadFrom implements net.PacketConn. A datagram longer than b is
// truncated, as with UDP.
func (c *Conn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case <-c.closed:
		return 0, nil, net.ErrClosed
	case <-c.rd.wait():
		return 0, nil, os.ErrDeadlineExceeded
	default:
	}
	select {
	case p := <-c.in:
		n := copy(b, p.buf[:p.n])
		from := net.UDPAddrFromAddrPort(p.from)
		p.free()
		return n, from, nil
	case <-c.closed:
		return 0, nil, net.ErrClosed
	case <-c.rd.wait():
		return 0, nil, os.ErrDeadlineExceeded
	}
}

// WriteTo implements net.PacketConn. Like UDP it reports success for a
// datagram the network then loses.
func (c *Conn) WriteTo(b []byte, addr net.Addr) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	case <-c.wd.wait():
		return 0, os.ErrDeadlineExceeded
	default:
	}
	var dst netip.AddrPort
	switch a := addr.(type) {
	case *net.UDPAddr:
		dst = a.AddrPort()
	default:
		ap, err := netip.ParseAddrPort(addr.String())
		if err != nil {
			return 0, errors.New("memnet: write to a non-UDP address")
		}
		dst = ap
	}
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	if len(b) > maxUDP {
		return 0, errors.New("memnet: message too long")
	}
	c.n.send(c.addr, dst, b)
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

// MTU is the default path MTU of the network, so that the raw tunnel sizes
// its frames to it.
func (c *Conn) MTU() int { return c.n.MTU() }

func (c *Conn) SetDeadline(t time.Time) error {
	c.rd.set(t)
	c.wd.set(t)
	return nil
}
func (c *Conn) SetReadDeadline(t time.Time) error  { c.rd.set(t); return nil }
func (c *Conn) SetWriteDeadline(t time.Time) error { c.wd.set(t); return nil }

// deadline is a settable point in time whose wait channel closes when it
// passes.
type deadline struct {
	mu    *sync.Mutex
	timer **time.Timer
	ch    *chan struct{}
}

func makeDeadline() deadline {
	ch := make(chan struct{})
	var t *time.Timer
	return deadline{mu: &sync.Mutex{}, timer: &t, ch: &ch}
}

func (d deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if *d.timer != nil && !(*d.timer).Stop() {
		<-*d.ch // the timer fired: the channel is closed, make a new one
	}
	*d.timer = nil
	closed := isClosed(*d.ch)
	if t.IsZero() {
		if closed {
			*d.ch = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if closed {
			*d.ch = make(chan struct{})
		}
		ch := *d.ch
		*d.timer = time.AfterFunc(dur, func() { close(ch) })
		return
	}
	if !closed {
		close(*d.ch)
	}
}

func (d deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return *d.ch
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// SetReadBuffer and SetWriteBuffer accept and ignore a size (the receive
// queue is sized in datagrams at Listen); they exist so that quic-go does
// not warn about a socket it cannot tune.
func (c *Conn) SetReadBuffer(int) error  { return nil }
func (c *Conn) SetWriteBuffer(int) error { return nil }
