package sim

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	kadpb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/transport"
	"github.com/libp2p/go-libp2p/p2p/net/conngater"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/sim/linkem"
)

// TestDHTMemTransport: with Options.DHTTransport mem every router's
// kad-dht node (the same resolver.DHT: gate, membership proofs,
// validator, quotas) talks over the in-memory transport: the seed dials
// prove membership both ways, every advertised name resolves from every
// router, the clients' pings (a lookup at the sender's router) are
// answered, and no DHT datagram crosses the emulated links.
func TestDHTMemTransport(t *testing.T) {
	top, err := Builtin("linear", Params{N: 5, Delay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	top.Resolver = ResolverDHT
	top.Workloads[0].Count = 5
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var dhtPkts atomic.Int64
	s, err := Start(ctx, top, Options{DHTJoin: DHTJoinDial, DHTTransport: DHTTransportMem})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, l := range s.Network().Links() {
		for _, d := range l.Dirs {
			d.Tap(func(_ *linkem.Dir, _ time.Time, src, dst netip.AddrPort, _ []byte, _ linkem.Verdict) {
				if src.Port() == DHTPort || dst.Port() == DHTPort {
					dhtPkts.Add(1)
				}
			})
		}
	}
	for _, r := range []string{"r1", "r3", "r5"} {
		d := s.DHT(r)
		if a := d.Addrs(); len(a) == 0 || !strings.Contains(a[0], "/tcp/4001/p2p/") || !strings.HasPrefix(a[0], "/ip4/10.") {
			t.Fatalf("%s's DHT node listens on %v, want its emulated address, the in-memory transport's /tcp/4001", r, a)
		}
		if n := d.AdmittedCount(); n == 0 {
			t.Fatalf("%s admitted no peer after the seed dials", r)
		}
	}
	cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
	rep := s.CheckNames(cctx, NameCheck{})
	ccancel()
	if rep.Lookups != 5*7 || rep.Found != rep.Lookups {
		t.Fatalf("names: %+v, want all 35 lookups (5 routers × 7 names) found", rep)
	}
	res, err := s.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := "Results: 0% dropped (5/5 received)"; res.Summary != want {
		t.Fatalf("summary %q, want %q", res.Summary, want)
	}
	if n := dhtPkts.Load(); n != 0 {
		t.Fatalf("%d DHT datagrams on the emulated links, want none (in-memory transport)", n)
	}
	if c := s.DHTConnections(); c == 0 {
		t.Fatal("no DHT connection counted")
	}
}

// TestDHTMemTransportGate: on the in-memory transport the membership
// gate still holds: a host that is no member (its own key, no proof)
// connects to a router's DHT node, but its FIND_NODE is never served,
// while a member's lookup is.
func TestDHTMemTransportGate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	top, err := Builtin("linear", Params{N: 3, Delay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	top.Resolver = ResolverDHT
	top.Workloads = nil
	s, err := Start(ctx, top, Options{DHTJoin: DHTJoinDial, DHTTransport: DHTTransportMem})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	target := s.nodes["r3"]
	m, err := ma.NewMultiaddr(s.dhtAddr(target))
	if err != nil {
		t.Fatal(err)
	}
	info, err := peer.AddrInfoFromP2pAddr(m)
	if err != nil {
		t.Fatal(err)
	}
	admitted := s.DHT("r3").AdmittedCount()

	// The intruder: a libp2p host on r1's emulated address (another
	// port's worth: it only dials), same transport, no membership.
	priv, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(priv), libp2p.NoListenAddrs, libp2p.NoTransports,
		libp2p.Transport(memTransportFor(s.mem, s.nodes["r1"].addr)), libp2p.NoSecurity,
		libp2p.DisableRelay(), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Connect(ctx, *info); err != nil {
		t.Fatalf("intruder's connection: %v (the gate admits connections, not requests)", err)
	}
	kadProto := resolver.DomainPrefix(target.dom.Meta.Name()) + "/kad/1.0.0"
	findNode := func(wait time.Duration) error {
		rctx, rcancel := context.WithTimeout(ctx, wait)
		defer rcancel()
		str, err := h.NewStream(rctx, info.ID, kadProto)
		if err != nil {
			return err
		}
		defer str.Close()
		if dl, ok := rctx.Deadline(); ok {
			_ = str.SetDeadline(dl)
		}
		msg := kadpb.NewMessage(kadpb.Message_FIND_NODE, []byte("any key"), 0)
		b, err := proto.Marshal(msg)
		if err != nil {
			return err
		}
		var frame []byte
		for v := uint64(len(b)); ; v >>= 7 { // uvarint length prefix
			if v < 0x80 {
				frame = append(frame, byte(v))
				break
			}
			frame = append(frame, byte(v)|0x80)
		}
		if _, err := str.Write(append(frame, b...)); err != nil {
			return err
		}
		buf := make([]byte, 1)
		if _, err := io.ReadFull(str, buf); err != nil {
			return err
		}
		return nil
	}
	if err := findNode(3 * time.Second); err == nil {
		t.Fatal("a non-member's FIND_NODE was answered")
	}
	if n := s.DHT("r3").AdmittedCount(); n != admitted {
		t.Fatalf("r3 admitted %d peers after the intruder's connection, had %d", n, admitted)
	}
	// A member's lookup through r3 is served.
	lctx, lcancel := context.WithTimeout(ctx, 10*time.Second)
	defer lcancel()
	if _, err := s.DHT("r2").Lookup(lctx, target.id.Name); err != nil {
		t.Fatalf("a member's lookup of r3's name: %v", err)
	}
}

// TestMemTransportPaths: the in-memory transport's connections follow
// the emulated underlay: a dial takes the path's round trip, a stream's
// bytes arrive one path delay after they were written, a dial across a
// cut fails, and a connection whose path is cut closes at its next
// write, at both ends. A dial names the host it reaches (its key, its
// peer id) and is refused when the listener's gater refuses the dialler.
func TestMemTransportPaths(t *testing.T) {
	under := linkem.NewNetwork(1)
	defer under.Close()
	addr := func(i byte) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, 0, i}) }
	for i, name := range []string{"a", "b", "c"} {
		if _, err := under.AddNode(name, addr(byte(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	cfg := linkem.Config{Delay: 20 * time.Millisecond}
	if _, err := under.AddLink("a", "b", cfg, cfg); err != nil {
		t.Fatal(err)
	}
	bc, err := under.AddLink("b", "c", cfg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	mn := newMemNet(under)
	host := func(a netip.Addr) *memTransport {
		priv, _, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			t.Fatal(err)
		}
		tp, err := memTransportFor(mn, a)(priv, nil, &network.NullResourceManager{})
		if err != nil {
			t.Fatal(err)
		}
		return tp
	}
	ta, tc := host(addr(1)), host(addr(3))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	to := memAddr(netip.AddrPortFrom(addr(3), 4001))
	l, err := tc.Listen(to)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan transport.CapableConn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	if _, err := ta.Dial(ctx, to, ta.id); err == nil {
		t.Fatal("dial to the wrong peer id succeeded")
	}
	// The listener's gater is asked, as an upgrader would ask it.
	g, err := conngater.NewBasicConnectionGater(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.BlockPeer(ta.id); err != nil {
		t.Fatal(err)
	}
	tc.gater = g
	if _, err := ta.Dial(ctx, to, tc.id); !errors.Is(err, errGated) {
		t.Fatalf("dial refused by the listener's gater: %v, want %v", err, errGated)
	}
	tc.gater = nil
	t0 := time.Now()
	c, err := ta.Dial(ctx, to, tc.id)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d < 80*time.Millisecond {
		t.Fatalf("dial over two 20 ms links took %s, want the 80 ms round trip", d)
	}
	srv := <-accepted
	if !srv.RemotePublicKey().Equals(ta.key) || srv.RemotePeer() != ta.id || c.RemotePeer() != tc.id {
		t.Fatal("the connection's ends do not name each other's host")
	}
	str, err := c.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sstr, err := srv.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	if _, err := str.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(sstr, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("read %q, %v", buf, err)
	}
	if d := time.Since(t0); d < 40*time.Millisecond {
		t.Fatalf("bytes arrived after %s, want the 40 ms one-way delay", d)
	}
	under.SetLinkDown(bc, true)
	if _, err := str.Write([]byte("lost")); !errors.Is(err, errNoPath) {
		t.Fatalf("write across a cut: %v, want %v", err, errNoPath)
	}
	if _, err := sstr.Read(buf); err == nil {
		t.Fatal("peer's read after the cut succeeded")
	}
	if !c.IsClosed() || !srv.IsClosed() {
		t.Fatalf("after the cut: closed %v at the dialler, %v at the listener; want both", c.IsClosed(), srv.IsClosed())
	}
	if _, err := ta.Dial(ctx, to, tc.id); !errors.Is(err, errNoPath) {
		t.Fatalf("dial across a cut: %v, want %v", err, errNoPath)
	}
}
