package linkem

import (
	"container/heap"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gdpnet/gdpnet/internal/timesched"
)

// Network is an emulated underlay: nodes with addresses, links between
// them, sockets on the nodes. A packet from one node to another travels
// along the shortest path of up links (by delay, then hops), through the
// Shaper of each link direction on the way.
type Network struct {
	mu      sync.RWMutex
	nodes   map[string]*Node
	byAddr  map[netip.Addr]*Node
	links   []*Link
	conns   map[netip.AddrPort]*Conn
	ports   map[netip.Addr]uint16
	version atomic.Uint64 // bumped when a link or node goes up or down
	routes  sync.Map      // destination *Node -> *routeTable
	seed    uint64
	closed  bool
	ext     atomic.Pointer[DeliverFunc] // datagrams for addresses with no socket (netns mode)

	// scheds carry the packets in flight, sharded by destination node
	// (schedShards): packets to one node keep their order, and senders
	// to different nodes do not queue on one lock.
	scheds []*timesched.Scheduler[moving]
	stats  Stats
}

// moving is a packet reaching node on its way to dst at its scheduled
// time. A packet's next hop is shaped from that time, not from when the
// scheduler woke, so scheduling lateness does not add up along a path.
type moving struct {
	node, dst *Node
	pkt       *packet
}

// Stats counts what happened to packets outside any one link.
type Stats struct {
	Delivered, NoRoute, NoListener, RecvQueueFull atomic.Uint64
	// Scheduled counts the packets' waits in the scheduler: one for the
	// delivery of a delayed packet, one more for each shaped or tapped
	// hop it reaches ahead of time (arrive).
	Scheduled atomic.Uint64
}

// Node is one host of the underlay.
type Node struct {
	Name string
	Addr netip.Addr
	down atomic.Bool
	adj  []*Dir // directions leaving this node
	idx  int
}

// Link joins two nodes; Dirs[0] carries A→B, Dirs[1] B→A.
type Link struct {
	A, B *Node
	Dirs [2]*Dir
}

// Dir is one direction of a link: its shaper, counters and tap.
type Dir struct {
	*Shaper
	From, To *Node
	Link     *Link
	packets  [numVerdicts]atomic.Uint64
	bytes    [numVerdicts]atomic.Uint64
	tap      atomic.Pointer[TapFunc]
}

// TapFunc sees every packet offered to a link direction, at the time it is
// offered, with the shaper's verdict. It must not keep payload.
type TapFunc func(d *Dir, at time.Time, src, dst netip.AddrPort, payload []byte, v Verdict)

// Counts is what one direction did with packets.
type Counts struct {
	Packets map[string]uint64 `json:"packets"`
	Bytes   map[string]uint64 `json:"bytes"`
}

// Counts reports the direction's counters by verdict name.
func (d *Dir) Counts() Counts {
	c := Counts{Packets: map[string]uint64{}, Bytes: map[string]uint64{}}
	for v := range numVerdicts {
		c.Packets[v.String()] = d.packets[v].Load()
		c.Bytes[v.String()] = d.bytes[v].Load()
	}
	return c
}

// Delivered is the packets and payload bytes the direction delivered.
func (d *Dir) Delivered() (packets, bytes uint64) {
	return d.packets[Deliver].Load(), d.bytes[Deliver].Load()
}

// Tap sets (nil: clears) the direction's tap.
func (d *Dir) Tap(f TapFunc) {
	if f == nil {
		d.tap.Store(nil)
		return
	}
	d.tap.Store(&f)
}

// NewNetwork makes an empty underlay; seed fixes every link's random
// choices.
func NewNetwork(seed uint64) *Network {
	n := &Network{
		nodes:  map[string]*Node{},
		byAddr: map[netip.Addr]*Node{},
		conns:  map[netip.AddrPort]*Conn{},
		ports:  map[netip.Addr]uint16{},
		seed:   seed,
	}
	for range schedShards {
		n.scheds = append(n.scheds, timesched.New(func(at time.Time, m moving) { n.arrive(m.node, m.dst, m.pkt, at) }, func(m moving) { m.pkt.free() }))
	}
	return n
}

// Stats returns the network's own counters.
func (n *Network) Stats() *Stats { return &n.stats }

// AddNode adds a host with an address.
func (n *Network) AddNode(name string, addr netip.Addr) (*Node, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, dup := n.nodes[name]; dup {
		return nil, fmt.Errorf("linkem: node %q already exists", name)
	}
	if _, dup := n.byAddr[addr]; dup {
		return nil, fmt.Errorf("linkem: address %s already in use", addr)
	}
	nd := &Node{Name: name, Addr: addr, idx: len(n.nodes)}
	n.nodes[name] = nd
	n.byAddr[addr] = nd
	n.version.Add(1)
	return nd, nil
}

// Node returns the node called name, or nil.
func (n *Network) Node(name string) *Node {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.nodes[name]
}

// AddLink joins nodes a and b; ab shapes a→b and ba b→a.
func (n *Network) AddLink(a, b string, ab, ba Config) (*Link, error) {
	if err := ab.Validate(); err != nil {
		return nil, fmt.Errorf("linkem: link %s-%s: %w", a, b, err)
	}
	if err := ba.Validate(); err != nil {
		return nil, fmt.Errorf("linkem: link %s-%s: %w", b, a, err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	na, nb := n.nodes[a], n.nodes[b]
	if na == nil || nb == nil || na == nb {
		return nil, fmt.Errorf("linkem: link %s-%s: needs two distinct existing nodes", a, b)
	}
	l := &Link{A: na, B: nb}
	i := uint64(len(n.links))
	l.Dirs[0] = &Dir{Shaper: NewShaper(ab, n.seed+2*i+1), From: na, To: nb, Link: l}
	l.Dirs[1] = &Dir{Shaper: NewShaper(ba, n.seed+2*i+2), From: nb, To: na, Link: l}
	na.adj = append(na.adj, l.Dirs[0])
	nb.adj = append(nb.adj, l.Dirs[1])
	n.links = append(n.links, l)
	n.version.Add(1)
	return l, nil
}

// Links are the network's links in the order they were added.
func (n *Network) Links() []*Link {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return append([]*Link(nil), n.links...)
}

// SetLinkDown takes both directions of l down or up; routes change at once.
func (n *Network) SetLinkDown(l *Link, down bool) {
	l.Dirs[0].SetDown(down)
	l.Dirs[1].SetDown(down)
	n.version.Add(1)
}

// SetNodeDown makes a node stop forwarding and receiving (or resume).
func (n *Network) SetNodeDown(nd *Node, down bool) {
	nd.down.Store(down)
	n.version.Add(1)
}

// NodeByAddr is the node with address a, or nil.
func (n *Network) NodeByAddr(a netip.Addr) *Node {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.byAddr[a]
}

// Version changes whenever a link or node goes up or down (and paths
// may have changed).
func (n *Network) Version() uint64 { return n.version.Load() }

// Path is the list of link directions a packet from a to b takes now, or
// nil when there is none.
func (n *Network) Path(a, b *Node) []*Dir {
	var p []*Dir
	for cur := a; cur != b; {
		d := n.next(cur, b)
		if d == nil || len(p) > len(n.nodes) {
			return nil
		}
		p = append(p, d)
		cur = d.To
	}
	return p
}

// routeTable is the shortest-path tree towards one destination, valid
// for one version: by node index, the link direction that node sends on.
// Trees are kept per destination, not per source, because a packet asks at
// every hop and a path of h hops would otherwise compute h trees; the
// destinations in use are few (the nodes that talk), the hops many.
type routeTable struct {
	version uint64
	first   []*Dir
}

// next is the first link direction from cur towards dst.
func (n *Network) next(cur, dst *Node) *Dir { return n.routesTo(dst).first[cur.idx] }

// routesTo is every node's next hop towards dst, for the links up now.
func (n *Network) routesTo(dst *Node) *routeTable {
	v := n.version.Load()
	if rt, ok := n.routes.Load(dst); ok && rt.(*routeTable).version == v {
		return rt.(*routeTable)
	}
	rt := n.dijkstra(dst, v)
	n.routes.Store(dst, rt)
	return rt
}

// reverse is the other direction of d's link.
func reverse(d *Dir) *Dir {
	if d.Link.Dirs[0] == d {
		return d.Link.Dirs[1]
	}
	return d.Link.Dirs[0]
}

// dijkstra computes every node's next hop towards dst over up links and
// up nodes, by delay plus a microsecond per hop (so that among equal
// delays fewer hops win).
func (n *Network) dijkstra(dst *Node, version uint64) *routeTable {
	n.mu.RLock()
	size := len(n.nodes)
	n.mu.RUnlock()
	dist := make([]float64, size)
	first := make([]*Dir, size)
	for i := range dist {
		dist[i] = math.Inf(1)
	}
	dist[dst.idx] = 0
	q := &distHeap{{dst, 0}}
	for q.Len() > 0 {
		it := heap.Pop(q).(distItem)
		if it.d > dist[it.n.idx] {
			continue
		}
		if it.n != dst && it.n.down.Load() {
			continue // a down node neither forwards nor receives
		}
		for _, out := range it.n.adj {
			in := reverse(out) // the direction from the neighbour to it.n
			cfg := in.Config()
			if cfg.Down || in.From.idx >= size {
				continue
			}
			nd := it.d + float64(cfg.Delay) + float64(time.Microsecond)
			if nd < dist[in.From.idx] {
				dist[in.From.idx] = nd
				first[in.From.idx] = in
				heap.Push(q, distItem{in.From, nd})
			}
		}
	}
	return &routeTable{version: version, first: first}
}

type distItem struct {
	n *Node
	d float64
}
type distHeap []distItem

func (h distHeap) Len() int           { return len(h) }
func (h distHeap) Less(i, j int) bool { return h[i].d < h[j].d }
func (h distHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *distHeap) Push(x any)        { *h = append(*h, x.(distItem)) }
func (h *distHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// Listen opens a socket at addr, which must be a node's address; port 0
// picks a free port. recvQueue datagrams wait for ReadFrom before more are
// dropped (default 1024).
func (n *Network) Listen(addr netip.AddrPort, recvQueue int) (*Conn, error) {
	if recvQueue <= 0 {
		recvQueue = 1024
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, net.ErrClosed
	}
	if n.byAddr[addr.Addr()] == nil {
		return nil, fmt.Errorf("linkem: listen %s: no node has that address", addr)
	}
	if addr.Port() == 0 {
		ip := addr.Addr()
		for range 1 << 16 {
			p := max(n.ports[ip]+1, 20000)
			n.ports[ip] = p
			if _, used := n.conns[netip.AddrPortFrom(ip, p)]; !used {
				addr = netip.AddrPortFrom(ip, p)
				break
			}
		}
		if addr.Port() == 0 {
			return nil, fmt.Errorf("linkem: listen: no free port on %s", ip)
		}
	}
	if _, used := n.conns[addr]; used {
		return nil, fmt.Errorf("linkem: listen %s: address in use", addr)
	}
	c := newConn(n, addr, recvQueue)
	n.conns[addr] = c
	return c, nil
}

func (n *Network) unlisten(addr netip.AddrPort, c *Conn) {
	n.mu.Lock()
	if n.conns[addr] == c {
		delete(n.conns, addr)
	}
	n.mu.Unlock()
}

// Close closes every socket and stops the scheduler; packets in flight are
// dropped.
func (n *Network) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	conns := make([]*Conn, 0, len(n.conns))
	for _, c := range n.conns {
		conns = append(conns, c)
	}
	n.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	for _, sc := range n.scheds {
		sc.Stop()
	}
	return nil
}

var errNoNode = errors.New("linkem: destination is no node's address")

// send starts a datagram on its way.
func (n *Network) send(src, dst netip.AddrPort, b []byte) error {
	n.mu.RLock()
	from, to := n.byAddr[src.Addr()], n.byAddr[dst.Addr()]
	n.mu.RUnlock()
	if to == nil {
		return errNoNode
	}
	pkt := newPacket(b, src, dst)
	n.arrive(from, to, pkt, time.Now())
	return nil
}

// arrive handles a packet that is at node cur at time now: delivers it or
// sends it over the next link. A packet crosses every hop whose link
// direction needs no state from the time it is crossed (no bandwidth
// limit: its delay, jitter and loss are decided alike whenever asked; no
// tap, whose records must come in time order) at once, its arrival time
// computed ahead; the scheduler wakes only for the hop that needs the
// moment (a shaped or tapped link) and for the delivery. Before, every
// hop was a scheduler event: at 1,000 routers in a 40×25 grid (~20 hops
// a packet) the one scheduler goroutine was 40 % of the CPU, fell
// behind, and QUIC's retransmission timers fired on delayed packets (its
// probes 10 % of the CPU more). What a packet computed ahead no longer
// sees is a link or node going down, or a route changing, while it is
// on its way (the path is the one at its start, for a few milliseconds).
func (n *Network) arrive(cur, dst *Node, pkt *packet, now time.Time) {
	// The clock and the routes once per pass, not per hop (a pass takes
	// microseconds: a clock read that late only sends a packet due now
	// through the scheduler, and the path is the one at the pass's
	// start, as above; a link cut since drops it at that link). Read per
	// hop they were half the cost of a 20-hop datagram
	// (BenchmarkLongPath: 2.5 µs, now 1.1 µs), and at 1,000 simulated
	// routers ~20 hops a DHT packet.
	real := time.Now()
	var routes *routeTable
	for {
		ahead := now.After(real)
		if cur.down.Load() {
			n.stats.NoRoute.Add(1)
			pkt.free()
			return
		}
		if cur == dst {
			if ahead {
				n.push(now, moving{cur, dst, pkt})
				return
			}
			n.deliver(pkt)
			return
		}
		if routes == nil {
			routes = n.routesTo(dst)
		}
		d := routes.first[cur.idx]
		if d == nil {
			n.stats.NoRoute.Add(1)
			pkt.free()
			return
		}
		t := d.tap.Load()
		if ahead && (t != nil || !d.stateless()) {
			n.push(now, moving{cur, dst, pkt})
			return
		}
		at, v := d.Admit(now, pkt.n)
		d.packets[v].Add(1)
		d.bytes[v].Add(uint64(pkt.n))
		if t != nil {
			(*t)(d, now, pkt.src, pkt.dst, pkt.buf[:pkt.n], v)
		}
		if v != Deliver {
			pkt.free()
			return
		}
		cur, now = d.To, at
	}
}

// schedShards is how many schedulers carry the packets in flight. With
// one, at 1,000 simulated routers 7,000 goroutines sending QUIC packets
// queued on its lock, its own goroutine (which takes the lock to pop the
// due packets) waited behind them, deliveries fell late, and QUIC's loss
// timers sent more.
const schedShards = 16

// push schedules m at its time on its destination's scheduler.
func (n *Network) push(at time.Time, m moving) {
	n.stats.Scheduled.Add(1)
	n.scheds[m.dst.idx%len(n.scheds)].Push(at, m)
}

// deliver puts a packet into its socket's queue.
func (n *Network) deliver(pkt *packet) {
	n.mu.RLock()
	c := n.conns[pkt.dst]
	n.mu.RUnlock()
	if c == nil {
		if f := n.ext.Load(); f != nil {
			(*f)(pkt.src, pkt.dst, pkt.buf[:pkt.n])
			n.stats.Delivered.Add(1)
			pkt.free()
			return
		}
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
