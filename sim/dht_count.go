package sim

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	kadpb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
)

// dhtCounts counts, across every in-process DHT host, the libp2p
// streams opened per protocol and the connections opened and closed —
// what a first contact costs in round trips and handshakes, so that a
// scale run says where its work goes (BenchmarkScaleDHT prints it). It
// is the hosts' resource manager: libp2p tells it of every stream's
// protocol once negotiated (SetProtocol) and of every connection; it
// limits nothing, as the network.NullResourceManager it replaces.
type dhtCounts struct {
	network.NullResourceManager
	mu      sync.Mutex
	streams map[string]*atomic.Int64             // "in <protocol>" / "out <protocol>"
	conns   [2]atomic.Int64                      // opened, by direction (inbound, outbound)
	closed  atomic.Int64                         // connections closed
	repeat  atomic.Int64                         // connections to a peer this host was already connected to
	kadReqs [kadpb.Message_PING + 1]atomic.Int64 // kad-dht requests served, by type
}

// kadRequest counts a kad-dht request a host served (kad.OnRequestHook).
func (c *dhtCounts) kadRequest(_ context.Context, _ network.Stream, req *kadpb.Message) {
	if t := req.GetType(); t >= 0 && int(t) < len(c.kadReqs) {
		c.kadReqs[t].Add(1)
	}
}

func newDHTCounts() *dhtCounts { return &dhtCounts{streams: map[string]*atomic.Int64{}} }

// OpenStream returns a stream scope that counts the stream's protocol.
func (c *dhtCounts) OpenStream(_ peer.ID, dir network.Direction) (network.StreamManagementScope, error) {
	return &countedStream{c: c, dir: dir}, nil
}

// stream counts one negotiated stream.
func (c *dhtCounts) stream(dir network.Direction, proto protocol.ID) {
	k := "in "
	if dir == network.DirOutbound {
		k = "out "
	}
	k += string(proto)
	c.mu.Lock()
	n := c.streams[k]
	if n == nil {
		n = new(atomic.Int64)
		c.streams[k] = n
	}
	c.mu.Unlock()
	n.Add(1)
}

type countedStream struct {
	network.NullScope
	c   *dhtCounts
	dir network.Direction
}

func (s *countedStream) SetProtocol(p protocol.ID) error {
	s.c.stream(s.dir, p)
	return nil
}

// host is the resource manager of one host: its connections count in c,
// and a connection accepted from a peer the host already holds one from
// is a repeat.
func (c *dhtCounts) host() network.ResourceManager {
	return &hostCounts{dhtCounts: c, live: map[peer.ID]int{}}
}

type hostCounts struct {
	*dhtCounts
	mu   sync.Mutex
	live map[peer.ID]int // open connections per peer
}

// OpenConnection returns a connection scope that counts the connection
// once secured (SetPeer) and when it closes (Done).
func (h *hostCounts) OpenConnection(dir network.Direction, _ bool, _ ma.Multiaddr) (network.ConnManagementScope, error) {
	return &countedConn{h: h, dir: dir}, nil
}

type countedConn struct {
	network.NullScope
	h    *hostCounts
	dir  network.Direction
	peer peer.ID
	done bool
}

// SetPeer counts a dial when it starts (libp2p knows the peer it dials)
// and an accepted connection once secured (the peer is then known): each
// connection is accepted once, and a dial that was abandoned or failed
// (a lookup that ended while it was under way) is counted only begun.
func (c *countedConn) SetPeer(p peer.ID) error {
	h := c.h
	if c.dir == network.DirOutbound {
		h.conns[1].Add(1)
		return nil
	}
	h.conns[0].Add(1)
	h.mu.Lock()
	if h.live[p] > 0 {
		h.repeat.Add(1)
	}
	h.live[p]++
	c.peer = p
	h.mu.Unlock()
	return nil
}

// Done counts an accepted connection closed.
func (c *countedConn) Done() {
	h := c.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.peer == "" || c.done {
		return
	}
	c.done = true
	h.closed.Add(1)
	if h.live[c.peer]--; h.live[c.peer] <= 0 {
		delete(h.live, c.peer)
	}
}

// summary is the counts per router: streams by protocol (outbound, that
// is opened; each also counted inbound at its peer), connections.
func (c *dhtCounts) summary(routers int) string {
	if c == nil || routers == 0 {
		return ""
	}
	c.mu.Lock()
	keys := make([]string, 0, len(c.streams))
	for k := range c.streams {
		if strings.HasPrefix(k, "out ") {
			keys = append(keys, k)
		}
	}
	c.mu.Unlock()
	slices.Sort(keys)
	r := float64(routers)
	var b strings.Builder
	fmt.Fprintf(&b, "a router: %.2f connections (%.2f dials begun: %.2f abandoned or failed), %.2f closed, %.2f from a peer already connected; streams opened a router:",
		float64(c.conns[0].Load())/r, float64(c.conns[1].Load())/r, float64(c.conns[1].Load()-c.conns[0].Load())/r,
		float64(c.closed.Load())/r, float64(c.repeat.Load())/r)
	for _, k := range keys {
		c.mu.Lock()
		n := c.streams[k].Load()
		c.mu.Unlock()
		fmt.Fprintf(&b, " %s %.2f;", strings.TrimPrefix(k, "out "), float64(n)/r)
	}
	b.WriteString(" kad-dht requests served a router:")
	for t := range c.kadReqs {
		if n := c.kadReqs[t].Load(); n > 0 {
			fmt.Fprintf(&b, " %s %.2f;", kadpb.Message_MessageType(t), float64(n)/r)
		}
	}
	return b.String()
}

// DHTCounts is the DHT hosts' streams per protocol and connections
// opened, closed and repeated, per router (dht mode; "" otherwise).
func (s *Sim) DHTCounts() string { return s.dhtCounts.summary(s.routers) }
