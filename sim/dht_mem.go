package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/transport"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/gdpnet/gdpnet/sim/linkem"
)

// The in-process DHT's libp2p transports (Options.DHTTransport).
const (
	// DHTTransportQUIC (default): libp2p's QUIC and TLS 1.3, as deployed,
	// every packet crossing the emulated links.
	DHTTransportQUIC = "quic"
	// DHTTransportMem: in-memory streams between the simulation's DHT
	// hosts (memTransport), upgraded by libp2p's own upgrader with its
	// plaintext security (keys exchanged, not proven) and yamux. The
	// connection gater, identify, the membership proof stream, kad-dht
	// and the validator run unchanged on top. A fidelity difference.
	DHTTransportMem = "mem"
)

// memNet is the simulation's in-memory libp2p network: the listening
// DHT hosts by emulated address, and the emulated underlay whose paths
// decide whether a dial gets through and how late its bytes arrive.
type memNet struct {
	under *linkem.Network
	dials atomic.Uint64

	mu        sync.Mutex
	listeners map[netip.AddrPort]*memListener
}

func newMemNet(under *linkem.Network) *memNet {
	return &memNet{under: under, listeners: map[netip.AddrPort]*memListener{}}
}

// memAddr is the multiaddr of an emulated address and port on the
// in-memory transport: /ip4/A/tcp/P (the transport claims TCP's code; the
// real TCP transport is not configured in this mode).
func memAddr(ap netip.AddrPort) ma.Multiaddr {
	m, err := ma.NewMultiaddr(fmt.Sprintf("/ip4/%s/tcp/%d", ap.Addr(), ap.Port()))
	if err != nil {
		panic(err) // an emulated IPv4 address and port always form one
	}
	return m
}

// parseMemAddr is the emulated address and port of /ip4/A/tcp/P.
func parseMemAddr(m ma.Multiaddr) (netip.AddrPort, error) {
	na, err := manet.ToNetAddr(m)
	if err != nil {
		return netip.AddrPort{}, err
	}
	ta, ok := na.(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("mem transport: %s is no /ip4/…/tcp/… address", m)
	}
	ap := ta.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// errNoPath is a dial, or a write, between emulated nodes the underlay
// has no up path between (a cut, a node down).
var errNoPath = errors.New("mem transport: no path in the emulated network")

// path is the one-way delay from a to b along the underlay's current
// path (the sum of its links' propagation delays), or errNoPath.
func (mn *memNet) path(a, b netip.Addr) (time.Duration, error) {
	if a == b {
		return 0, nil
	}
	na, nb := mn.under.NodeByAddr(a), mn.under.NodeByAddr(b)
	if na == nil || nb == nil {
		return 0, fmt.Errorf("mem transport: %s or %s is no emulated node", a, b)
	}
	p := mn.under.Path(na, nb)
	if p == nil {
		return 0, errNoPath
	}
	var d time.Duration
	for _, dir := range p {
		d += dir.Config().Delay
	}
	return d, nil
}

// dial connects from to the listener at to: a pair of in-memory pipe
// ends, each direction delayed by its path's one-way delay. The dial
// itself takes the round trip (a SYN and its answer).
func (mn *memNet) dial(ctx context.Context, from netip.Addr, to netip.AddrPort) (manet.Conn, error) {
	ab, err := mn.path(from, to.Addr())
	if err != nil {
		return nil, err
	}
	ba, err := mn.path(to.Addr(), from)
	if err != nil {
		return nil, err
	}
	t := time.NewTimer(ab + ba)
	select {
	case <-ctx.Done():
		t.Stop()
		return nil, ctx.Err()
	case <-t.C:
	}
	mn.mu.Lock()
	l := mn.listeners[to]
	mn.mu.Unlock()
	if l == nil {
		return nil, fmt.Errorf("mem transport: dial %s: connection refused", to)
	}
	port := uint16(49152 + mn.dials.Add(1)%16384) // a label: nothing listens on it
	local := netip.AddrPortFrom(from, port)
	c, s := newMemPipe(mn, local, to, ab, ba)
	select {
	case l.accept <- s:
		return c, nil
	case <-l.done:
		return nil, fmt.Errorf("mem transport: dial %s: connection refused", to)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// memListener is a DHT host's listening address on the in-memory
// network.
type memListener struct {
	mn     *memNet
	addr   netip.AddrPort
	accept chan manet.Conn
	done   chan struct{}
	once   sync.Once
}

func (mn *memNet) listen(ap netip.AddrPort) (*memListener, error) {
	mn.mu.Lock()
	defer mn.mu.Unlock()
	if mn.listeners[ap] != nil {
		return nil, fmt.Errorf("mem transport: %s: address in use", ap)
	}
	l := &memListener{mn: mn, addr: ap, accept: make(chan manet.Conn), done: make(chan struct{})}
	mn.listeners[ap] = l
	return l, nil
}

func (l *memListener) Accept() (manet.Conn, error) {
	select {
	case c := <-l.accept:
		return c, nil
	case <-l.done:
		return nil, transport.ErrListenerClosed
	}
}

func (l *memListener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.mn.mu.Lock()
		if l.mn.listeners[l.addr] == l {
			delete(l.mn.listeners, l.addr)
		}
		l.mn.mu.Unlock()
	})
	return nil
}

func (l *memListener) Multiaddr() ma.Multiaddr { return memAddr(l.addr) }
func (l *memListener) Addr() net.Addr          { return net.TCPAddrFromAddrPort(l.addr) }

// memTransport is a DHT host's libp2p transport on the in-memory
// network: raw pipes upgraded (security, then muxer, the connection
// gater consulted at each step) by the host's libp2p upgrader.
type memTransport struct {
	mn    *memNet
	self  netip.Addr
	up    transport.Upgrader
	rcmgr network.ResourceManager
}

var _ transport.Transport = (*memTransport)(nil)

// memTransportFor is the libp2p.Transport constructor of the host at
// self.
func memTransportFor(mn *memNet, self netip.Addr) func(transport.Upgrader, network.ResourceManager) (*memTransport, error) {
	return func(up transport.Upgrader, rcmgr network.ResourceManager) (*memTransport, error) {
		return &memTransport{mn: mn, self: self, up: up, rcmgr: rcmgr}, nil
	}
}

func (t *memTransport) Dial(ctx context.Context, raddr ma.Multiaddr, p peer.ID) (transport.CapableConn, error) {
	to, err := parseMemAddr(raddr)
	if err != nil {
		return nil, err
	}
	scope, err := t.rcmgr.OpenConnection(network.DirOutbound, true, raddr)
	if err != nil {
		return nil, err
	}
	if err := scope.SetPeer(p); err != nil {
		scope.Done()
		return nil, err
	}
	c, err := t.mn.dial(ctx, t.self, to)
	if err != nil {
		scope.Done()
		return nil, err
	}
	cc, err := t.up.Upgrade(ctx, t, c, network.DirOutbound, p, scope)
	if err != nil {
		_ = c.Close()
		scope.Done()
		return nil, err
	}
	return cc, nil
}

func (t *memTransport) CanDial(addr ma.Multiaddr) bool {
	_, err := parseMemAddr(addr)
	return err == nil
}

func (t *memTransport) Listen(laddr ma.Multiaddr) (transport.Listener, error) {
	ap, err := parseMemAddr(laddr)
	if err != nil {
		return nil, err
	}
	if ap.Addr() != t.self {
		return nil, fmt.Errorf("mem transport: listen on %s: the host's address is %s", ap, t.self)
	}
	l, err := t.mn.listen(ap)
	if err != nil {
		return nil, err
	}
	return t.up.UpgradeGatedMaListener(t, t.up.GateMaListener(l)), nil
}

func (t *memTransport) Protocols() []int { return []int{ma.P_TCP} }
func (t *memTransport) Proxy() bool      { return false }
func (t *memTransport) String() string   { return "sim-mem" }

// memPipe is one end of an in-memory connection. Bytes written at one end
// are readable at the other once the path's one-way delay has passed
// (writes never block: yamux's flow control bounds what is in flight).
// A write after the underlay lost its path between the two nodes (a cut
// link, a node down) closes the connection, as a transport would give up
// on a peer it cannot reach; after a route change the new path's delay
// applies.
type memPipe struct {
	mn            *memNet
	local, remote netip.AddrPort
	in, out       *memQueue
	delay         time.Duration // one-way, local to remote
	version       uint64        // underlay version the delay was computed at
	wmu           sync.Mutex
}

func newMemPipe(mn *memNet, a, b netip.AddrPort, ab, ba time.Duration) (*memPipe, *memPipe) {
	q1, q2 := newMemQueue(), newMemQueue()
	v := mn.under.Version()
	pa := &memPipe{mn: mn, local: a, remote: b, in: q2, out: q1, delay: ab, version: v}
	pb := &memPipe{mn: mn, local: b, remote: a, in: q1, out: q2, delay: ba, version: v}
	return pa, pb
}

func (p *memPipe) Read(b []byte) (int, error) { return p.in.read(b) }

func (p *memPipe) Write(b []byte) (int, error) {
	p.wmu.Lock()
	if v := p.mn.under.Version(); v != p.version {
		d, err := p.mn.path(p.local.Addr(), p.remote.Addr())
		if err != nil {
			p.wmu.Unlock()
			_ = p.Close() // the peer reads EOF, its writes fail
			return 0, err
		}
		p.delay, p.version = d, v
	}
	at := time.Now().Add(p.delay)
	p.wmu.Unlock()
	return p.out.write(b, at)
}

// Close ends both directions at this end: the peer reads what was
// already written, then EOF; reads here fail.
func (p *memPipe) Close() error {
	p.out.close(io.EOF)
	p.in.close(net.ErrClosed)
	return nil
}

func (p *memPipe) LocalAddr() net.Addr               { return net.TCPAddrFromAddrPort(p.local) }
func (p *memPipe) RemoteAddr() net.Addr              { return net.TCPAddrFromAddrPort(p.remote) }
func (p *memPipe) LocalMultiaddr() ma.Multiaddr      { return memAddr(p.local) }
func (p *memPipe) RemoteMultiaddr() ma.Multiaddr     { return memAddr(p.remote) }
func (p *memPipe) SetDeadline(t time.Time) error     { return p.in.setDeadline(t) }
func (p *memPipe) SetReadDeadline(t time.Time) error { return p.in.setDeadline(t) }
func (p *memPipe) SetWriteDeadline(time.Time) error  { return nil } // writes never block

// memChunk is one write, readable from at.
type memChunk struct {
	b  []byte
	at time.Time
}

// memQueue is one direction of a memPipe.
type memQueue struct {
	mu       sync.Mutex
	chunks   []memChunk
	err      error // set once closed: what reads return after the chunks
	deadline time.Time
	wake     chan struct{} // capacity 1: a write, a close or a new deadline
}

func newMemQueue() *memQueue { return &memQueue{wake: make(chan struct{}, 1)} }

func (q *memQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *memQueue) write(b []byte, at time.Time) (int, error) {
	q.mu.Lock()
	if q.err != nil {
		q.mu.Unlock()
		return 0, net.ErrClosed
	}
	if n := len(q.chunks); n > 0 && q.chunks[n-1].at.After(at) {
		at = q.chunks[n-1].at // in order, whatever the path did
	}
	q.chunks = append(q.chunks, memChunk{b: append([]byte(nil), b...), at: at})
	q.mu.Unlock()
	q.signal()
	return len(b), nil
}

// read waits for bytes that are due. A reader waiting for a chunk still
// on its way sleeps until it is due (time.Sleep: no timer of its own is
// re-armed; a re-armed pending timer makes the Go runtime scan its whole
// timer heap when it comes due, which at thousands of connections was a
// fifth of the CPU); only a reader with nothing on its way and a deadline
// set waits on a timer.
func (q *memQueue) read(b []byte) (int, error) {
	for {
		q.mu.Lock()
		now := time.Now()
		n := 0
		for len(q.chunks) > 0 && n < len(b) && !q.chunks[0].at.After(now) {
			c := &q.chunks[0]
			k := copy(b[n:], c.b)
			n += k
			if c.b = c.b[k:]; len(c.b) == 0 {
				q.chunks[0] = memChunk{}
				q.chunks = q.chunks[1:]
			}
		}
		if n > 0 {
			q.mu.Unlock()
			return n, nil
		}
		if len(q.chunks) == 0 && q.err != nil {
			err := q.err
			q.mu.Unlock()
			return 0, err
		}
		if q.err == net.ErrClosed { //nolint:errorlint // our own sentinel, set as is
			q.mu.Unlock()
			return 0, net.ErrClosed
		}
		dl := q.deadline
		if !dl.IsZero() && !dl.After(now) {
			q.mu.Unlock()
			return 0, os.ErrDeadlineExceeded
		}
		if len(q.chunks) > 0 {
			wait := q.chunks[0].at.Sub(now)
			if !dl.IsZero() && dl.Sub(now) < wait {
				wait = dl.Sub(now)
			}
			q.mu.Unlock()
			time.Sleep(wait)
			continue
		}
		q.mu.Unlock()
		if dl.IsZero() {
			<-q.wake
			continue
		}
		t := time.NewTimer(dl.Sub(now))
		select {
		case <-q.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

func (q *memQueue) close(err error) {
	q.mu.Lock()
	if q.err == nil || err == net.ErrClosed { //nolint:errorlint // our own sentinel
		q.err = err
	}
	if err == net.ErrClosed { //nolint:errorlint // reads here fail at once
		q.chunks = nil
	}
	q.mu.Unlock()
	q.signal()
}

func (q *memQueue) setDeadline(t time.Time) error {
	q.mu.Lock()
	q.deadline = t
	q.mu.Unlock()
	q.signal()
	return nil
}
