package memnet

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gdpnet/gdpnet/internal/timesched"
)

// Network is a set of emulated hosts and the paths between them.
type Network struct {
	def LinkConfig

	mu       sync.RWMutex
	conns    map[netip.AddrPort]*Conn
	paths    map[[2]netip.Addr]*path
	nextPort map[netip.Addr]uint16
	closed   bool

	sched *timesched.Scheduler[delayed]
	stats Stats
	// now is the clock sends are shaped by (time.Now; tests fix it to
	// send a burst in one instant).
	now func() time.Time
}

// delayed is a packet on its way to dst, waiting out its link's delay.
type delayed struct {
	dst netip.AddrPort
	pkt *packet
}

// Stats counts what the network did with packets.
type Stats struct {
	Delivered, Lost, TooBig, Down, QueueDrops, NoListener, RecvQueueFull atomic.Uint64
}

// path is one direction between two hosts.
type path struct {
	mu       sync.Mutex
	cfg      LinkConfig
	nextFree time.Time // when the "wire" is free again
}

// New makes an empty network whose paths default to def.
func New(def LinkConfig) *Network {
	n := &Network{
		def:      def,
		conns:    map[netip.AddrPort]*Conn{},
		paths:    map[[2]netip.Addr]*path{},
		nextPort: map[netip.Addr]uint16{},
		now:      time.Now,
	}
	n.sched = timesched.New(func(_ time.Time, d delayed) { n.deliver(d.dst, d.pkt) }, func(d delayed) { d.pkt.free() })
	return n
}

// Stats returns the network's counters.
func (n *Network) Stats() *Stats { return &n.stats }

// Listen opens an endpoint at addr; port 0 picks a free port on that host.
// RecvQueue is how many datagrams wait for ReadFrom before more are dropped
// (default 1024 when 0).
func (n *Network) Listen(addr netip.AddrPort, recvQueue int) (*Conn, error) {
	if !addr.Addr().IsValid() {
		return nil, errors.New("memnet: listen: invalid address")
	}
	if recvQueue <= 0 {
		recvQueue = 1024
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, net.ErrClosed
	}
	if addr.Port() == 0 {
		ip := addr.Addr()
		for range 1 << 16 {
			p := n.nextPort[ip] + 1
			if p < 1024 {
				p = 1024
			}
			n.nextPort[ip] = p
			if _, used := n.conns[netip.AddrPortFrom(ip, p)]; !used {
				addr = netip.AddrPortFrom(ip, p)
				break
			}
		}
		if addr.Port() == 0 {
			return nil, fmt.Errorf("memnet: listen: no free port on %s", ip)
		}
	}
	if _, used := n.conns[addr]; used {
		return nil, fmt.Errorf("memnet: listen %s: address in use", addr)
	}
	c := newConn(n, addr, recvQueue)
	n.conns[addr] = c
	return c, nil
}

// SetLink shapes both directions between hosts a and b.
func (n *Network) SetLink(a, b netip.Addr, cfg LinkConfig) {
	n.SetPath(a, b, cfg)
	n.SetPath(b, a, cfg)
}

// SetPath shapes the direction from → to. Packets already in flight keep
// the delay they were given.
func (n *Network) SetPath(from, to netip.Addr, cfg LinkConfig) {
	p := n.path(from, to)
	p.mu.Lock()
	p.cfg = cfg
	p.mu.Unlock()
}

// SetDown takes both directions between a and b down or up, keeping the
// rest of their configuration.
func (n *Network) SetDown(a, b netip.Addr, down bool) {
	for _, p := range []*path{n.path(a, b), n.path(b, a)} {
		p.mu.Lock()
		p.cfg.Down = down
		p.mu.Unlock()
	}
}

func (n *Network) path(from, to netip.Addr) *path {
	k := [2]netip.Addr{from, to}
	n.mu.RLock()
	p := n.paths[k]
	n.mu.RUnlock()
	if p != nil {
		return p
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if p = n.paths[k]; p == nil {
		p = &path{cfg: n.def}
		n.paths[k] = p
	}
	return p
}

// MTU is the default path MTU (what a Conn reports).
func (n *Network) MTU() int { return n.def.mtu() }

// Close closes every endpoint and stops the scheduler.
func (n *Network) Close() error {
	n.mu.Lock()
	n.closed = true
	conns := make([]*Conn, 0, len(n.conns))
	for _, c := range n.conns {
		conns = append(conns, c)
	}
	n.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	n.sched.Stop()
	return nil
}

func (n *Network) unlisten(addr netip.AddrPort, c *Conn) {
	n.mu.Lock()
	if n.conns[addr] == c {
		delete(n.conns, addr)
	}
	n.mu.Unlock()
}

// send moves one datagram from src to dst through the path between them.
func (n *Network) send(src, dst netip.AddrPort, b []byte) {
	p := n.path(src.Addr(), dst.Addr())
	now := n.now()
	p.mu.Lock()
	cfg := p.cfg
	if cfg.Down {
		p.mu.Unlock()
		n.stats.Down.Add(1)
		return
	}
	if len(b) > cfg.mtu() {
		p.mu.Unlock()
		n.stats.TooBig.Add(1)
		return
	}
	at := now
	if cfg.Bandwidth > 0 {
		start := p.nextFree
		if start.Before(now) {
			start = now
		}
		if start.Sub(now) > cfg.queueLimit() {
			p.mu.Unlock()
			n.stats.QueueDrops.Add(1)
			return
		}
		tx := time.Duration(int64(len(b)+28) * 8 * int64(time.Second) / cfg.Bandwidth)
		p.nextFree = start.Add(tx)
		at = p.nextFree
	}
	p.mu.Unlock()
	if cfg.Loss > 0 && rand.Float64() < cfg.Loss {
		n.stats.Lost.Add(1)
		return
	}
	at = at.Add(cfg.Delay)
	if cfg.Jitter > 0 {
		at = at.Add(rand.N(cfg.Jitter))
	}
	pkt := newPacket(b, src)
	if !at.After(now) {
		n.deliver(dst, pkt)
		return
	}
	n.sched.Push(at, delayed{dst, pkt})
}

// deliver puts a packet into the destination's receive queue.
func (n *Network) deliver(dst netip.AddrPort, pkt *packet) {
	n.mu.RLock()
	c := n.conns[dst]
	n.mu.RUnlock()
	if c == nil {
		n.stats.NoListener.Add(1)
		pkt.free()
		return
	}
	select {
	case c.in <- pkt:
		n.stats.Delivered.Add(1)
	default:
		n.stats.RecvQueueFull.Add(1)
		pkt.free()
	}
}
