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
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
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
	// DHTTransportMem: in-memory connections between the simulation's
	// DHT hosts (memTransport): each libp2p stream a pair of in-memory
	// queues, no handshake crypto, no stream multiplexer; the peer's key
	// is the one the simulator knows its host by. The connection gater,
	// identify, the membership proof stream, kad-dht and the validator
	// run unchanged on top. A fidelity difference.
	DHTTransportMem = "mem"
)

// memNet is the simulation's in-memory libp2p network: the listening
// DHT hosts by emulated address, and the emulated underlay whose paths
// decide whether a dial gets through and how late its bytes arrive.
type memNet struct {
	under *linkem.Network

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

// memTransport is a DHT host's libp2p transport on the in-memory
// network. A dial finds the listening host, checks that it is the peer
// asked for, and asks both hosts' connection gaters what an upgrader
// would (the listener's InterceptAccept and InterceptSecured, the
// dialler's InterceptSecured; the swarm asks the rest); the connection
// is then a pair of memConns.
type memTransport struct {
	mn    *memNet
	self  netip.Addr
	id    peer.ID
	key   crypto.PubKey
	gater connmgr.ConnectionGater // nil: none
	rcmgr network.ResourceManager
}

var _ transport.Transport = (*memTransport)(nil)

// memTransportFor is the libp2p.Transport constructor of the host at
// self (libp2p supplies its key, gater and resource manager).
func memTransportFor(mn *memNet, self netip.Addr) func(crypto.PrivKey, connmgr.ConnectionGater, network.ResourceManager) (*memTransport, error) {
	return func(key crypto.PrivKey, gater connmgr.ConnectionGater, rcmgr network.ResourceManager) (*memTransport, error) {
		id, err := peer.IDFromPrivateKey(key)
		if err != nil {
			return nil, err
		}
		return &memTransport{mn: mn, self: self, id: id, key: key.GetPublic(), gater: gater, rcmgr: rcmgr}, nil
	}
}

// memAddrs are a connection's two multiaddrs, as the gaters see them.
type memAddrs struct{ local, remote ma.Multiaddr }

func (a memAddrs) LocalMultiaddr() ma.Multiaddr  { return a.local }
func (a memAddrs) RemoteMultiaddr() ma.Multiaddr { return a.remote }

// errGated is a dial a connection gater refused.
var errGated = errors.New("mem transport: connection refused by a gater")

func (t *memTransport) Dial(ctx context.Context, raddr ma.Multiaddr, p peer.ID) (transport.CapableConn, error) {
	to, err := parseMemAddr(raddr)
	if err != nil {
		return nil, err
	}
	ab, err := t.mn.path(t.self, to.Addr())
	if err != nil {
		return nil, err
	}
	ba, err := t.mn.path(to.Addr(), t.self)
	if err != nil {
		return nil, err
	}
	// The dial takes the round trip (a handshake's first flight and its
	// answer).
	tm := time.NewTimer(ab + ba)
	select {
	case <-ctx.Done():
		tm.Stop()
		return nil, ctx.Err()
	case <-tm.C:
	}
	t.mn.mu.Lock()
	l := t.mn.listeners[to]
	t.mn.mu.Unlock()
	if l == nil {
		return nil, fmt.Errorf("mem transport: dial %s: connection refused", to)
	}
	if l.t.id != p {
		return nil, fmt.Errorf("mem transport: dial %s: peer id mismatch: want %s, %s listens there", to, p, l.t.id)
	}
	local := netip.AddrPortFrom(t.self, 0) // a dialler has no port of its own here
	out := memAddrs{local: memAddr(local), remote: memAddr(to)}
	in := memAddrs{local: out.remote, remote: out.local}
	if g := l.t.gater; g != nil && (!g.InterceptAccept(in) || !g.InterceptSecured(network.DirInbound, t.id, in)) {
		return nil, errGated
	}
	if t.gater != nil && !t.gater.InterceptSecured(network.DirOutbound, p, out) {
		return nil, errGated
	}
	dscope, err := t.rcmgr.OpenConnection(network.DirOutbound, true, raddr)
	if err != nil {
		return nil, err
	}
	if err := dscope.SetPeer(p); err != nil {
		dscope.Done()
		return nil, err
	}
	lscope, err := l.t.rcmgr.OpenConnection(network.DirInbound, true, out.local)
	if err != nil {
		dscope.Done()
		return nil, err
	}
	if err := lscope.SetPeer(t.id); err != nil {
		dscope.Done()
		lscope.Done()
		return nil, err
	}
	c := &memConn{mn: t.mn, t: t, local: local, remote: to, laddr: out.local, raddr: out.remote,
		rpeer: p, rkey: l.t.key, delay: ab, scope: dscope}
	s := &memConn{mn: t.mn, t: l.t, local: to, remote: local, laddr: in.local, raddr: in.remote,
		rpeer: t.id, rkey: t.key, delay: ba, scope: lscope}
	for _, x := range []*memConn{c, s} {
		x.streams, x.done = map[*memStream]struct{}{}, make(chan struct{})
		x.wake = make(chan struct{}, 1)
	}
	c.peer, s.peer = s, c
	select {
	case l.accept <- s:
		return c, nil
	case <-l.done:
	case <-ctx.Done():
	}
	dscope.Done()
	lscope.Done()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, fmt.Errorf("mem transport: dial %s: connection refused", to)
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
	t.mn.mu.Lock()
	defer t.mn.mu.Unlock()
	if t.mn.listeners[ap] != nil {
		return nil, fmt.Errorf("mem transport: %s: address in use", ap)
	}
	l := &memListener{t: t, addr: ap, accept: make(chan *memConn), done: make(chan struct{})}
	t.mn.listeners[ap] = l
	return l, nil
}

func (t *memTransport) Protocols() []int { return []int{ma.P_TCP} }
func (t *memTransport) Proxy() bool      { return false }
func (t *memTransport) String() string   { return "sim-mem" }

// memListener is a DHT host's listening address on the in-memory
// network.
type memListener struct {
	t      *memTransport
	addr   netip.AddrPort
	accept chan *memConn
	done   chan struct{}
	once   sync.Once
}

func (l *memListener) Accept() (transport.CapableConn, error) {
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
		mn := l.t.mn
		mn.mu.Lock()
		if mn.listeners[l.addr] == l {
			delete(mn.listeners, l.addr)
		}
		mn.mu.Unlock()
	})
	return nil
}

func (l *memListener) Multiaddr() ma.Multiaddr { return memAddr(l.addr) }
func (l *memListener) Addr() net.Addr          { return net.TCPAddrFromAddrPort(l.addr) }

// memConn is one end of an in-memory libp2p connection: its streams are
// memPipes (no multiplexer), opened at once at both ends; their bytes
// take the path's delay. Closing either end closes both; so does a
// write after the path was cut.
type memConn struct {
	mn            *memNet
	t             *memTransport
	local, remote netip.AddrPort
	laddr, raddr  ma.Multiaddr // local and remote, made once
	rpeer         peer.ID
	rkey          crypto.PubKey
	delay         time.Duration // one-way, local to remote, at the dial
	scope         network.ConnManagementScope
	peer          *memConn

	mu      sync.Mutex
	streams map[*memStream]struct{}
	pending []*memStream  // opened by the peer, not yet accepted
	wake    chan struct{} // capacity 1: a pending stream
	done    chan struct{} // closed with the connection
	closed  bool
}

var _ transport.CapableConn = (*memConn)(nil)

// errConnClosed is an operation on a closed memConn.
var errConnClosed = errors.New("mem transport: connection closed")

func (c *memConn) OpenStream(ctx context.Context) (network.MuxedStream, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a, b := newMemPipe(c.mn, c.local, c.remote, c.delay, c.peer.delay)
	sa, sb := &memStream{memPipe: a, conn: c}, &memStream{memPipe: b, conn: c.peer}
	a.onCut, b.onCut = c.closeBoth, c.closeBoth
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errConnClosed
	}
	c.streams[sa] = struct{}{}
	c.mu.Unlock()
	if !c.peer.offer(sb) {
		sa.forget()
		return nil, errConnClosed
	}
	return sa, nil
}

// offer queues a stream the peer opened.
func (c *memConn) offer(s *memStream) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	c.streams[s] = struct{}{}
	c.pending = append(c.pending, s)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return true
}

func (c *memConn) AcceptStream() (network.MuxedStream, error) {
	for {
		c.mu.Lock()
		if len(c.pending) > 0 {
			s := c.pending[0]
			c.pending[0] = nil
			c.pending = c.pending[1:]
			c.mu.Unlock()
			return s, nil
		}
		closed := c.closed
		c.mu.Unlock()
		if closed {
			return nil, errConnClosed
		}
		select {
		case <-c.wake:
		case <-c.done:
		}
	}
}

// shutdown closes this end: every stream reset, AcceptStream ended.
func (c *memConn) shutdown() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	streams := c.streams
	c.streams, c.pending = nil, nil
	c.mu.Unlock()
	close(c.done)
	for s := range streams {
		s.abort(network.ErrReset)
	}
	c.scope.Done()
}

func (c *memConn) closeBoth() {
	c.shutdown()
	c.peer.shutdown()
}

func (c *memConn) Close() error                               { c.closeBoth(); return nil }
func (c *memConn) CloseWithError(network.ConnErrorCode) error { return c.Close() }

// As implements network.MuxedConn: no underlying connection to expose.
func (c *memConn) As(any) bool { return false }

func (c *memConn) IsClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func (c *memConn) LocalPeer() peer.ID             { return c.t.id }
func (c *memConn) RemotePeer() peer.ID            { return c.rpeer }
func (c *memConn) RemotePublicKey() crypto.PubKey { return c.rkey }
func (c *memConn) LocalMultiaddr() ma.Multiaddr   { return c.laddr }
func (c *memConn) RemoteMultiaddr() ma.Multiaddr  { return c.raddr }
func (c *memConn) Scope() network.ConnScope       { return c.scope }
func (c *memConn) Transport() transport.Transport { return c.t }
func (c *memConn) ConnState() network.ConnectionState {
	return network.ConnectionState{StreamMultiplexer: "/sim-mem", Security: "/sim-mem", Transport: "sim-mem"}
}

// memStream is a libp2p stream on a memConn: one memPipe end.
type memStream struct {
	*memPipe
	conn *memConn
}

var _ network.MuxedStream = (*memStream)(nil)

// forget drops the stream from its connection's set.
func (s *memStream) forget() {
	s.conn.mu.Lock()
	delete(s.conn.streams, s)
	s.conn.mu.Unlock()
}

// abort ends both directions at once with err (a reset).
func (s *memStream) abort(err error) {
	s.out.close(err, true)
	s.in.close(err, true)
}

func (s *memStream) Read(b []byte) (int, error) { return s.in.read(b) }

func (s *memStream) CloseWrite() error {
	s.out.close(io.EOF, false)
	return nil
}

func (s *memStream) CloseRead() error {
	s.in.close(network.ErrReset, true)
	return nil
}

func (s *memStream) Close() error {
	_ = s.CloseWrite()
	_ = s.CloseRead()
	s.forget()
	return nil
}

func (s *memStream) Reset() error {
	s.abort(network.ErrReset)
	s.forget()
	return nil
}

func (s *memStream) ResetWithError(network.StreamErrorCode) error { return s.Reset() }

// memPipe is one end of an in-memory stream. Bytes written at one end
// are readable at the other once the path's one-way delay has passed
// (writes never block: the DHT's requests and answers are small and
// bounded by libp2p's message limit).
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
	onCut         func() // called when a write finds the path cut
}

func newMemPipe(mn *memNet, a, b netip.AddrPort, ab, ba time.Duration) (*memPipe, *memPipe) {
	q1, q2 := newMemQueue(), newMemQueue()
	v := mn.under.Version()
	pa := &memPipe{mn: mn, local: a, remote: b, in: q2, out: q1, delay: ab, version: v}
	pb := &memPipe{mn: mn, local: b, remote: a, in: q1, out: q2, delay: ba, version: v}
	return pa, pb
}

func (p *memPipe) Write(b []byte) (int, error) {
	p.wmu.Lock()
	if v := p.mn.under.Version(); v != p.version {
		d, err := p.mn.path(p.local.Addr(), p.remote.Addr())
		if err != nil {
			p.wmu.Unlock()
			p.out.close(err, true)
			p.in.close(err, true)
			if p.onCut != nil {
				p.onCut()
			}
			return 0, err
		}
		p.delay, p.version = d, v
	}
	at := time.Now().Add(p.delay)
	p.wmu.Unlock()
	return p.out.write(b, at)
}

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
	hard     bool  // err applies at once: the chunks were dropped (a reset)
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
		err := q.err
		q.mu.Unlock()
		if err == io.EOF { //nolint:errorlint // our own sentinel, set as is
			err = net.ErrClosed // written after CloseWrite
		}
		return 0, err
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
		if (len(q.chunks) == 0 || q.hard) && q.err != nil {
			err := q.err
			q.mu.Unlock()
			return 0, err
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

// close ends the queue: softly (EOF: the reader gets the chunks on
// their way first) or hard (a reset: they are dropped, reads fail now).
// A hard close overrides a soft one, never the reverse.
func (q *memQueue) close(err error, hard bool) {
	q.mu.Lock()
	if q.err == nil || (hard && !q.hard) {
		q.err, q.hard = err, hard
	}
	if hard {
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
