package tunnel

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/tunnel/memnet"
)

// The real QUIC and raw code over emulated, lossy, slow links.
func TestOverMemnet(t *testing.T) {
	for _, kind := range []Kind{KindQUIC, KindRaw} {
		t.Run(kind.String(), func(t *testing.T) {
			n := memnet.New(memnet.LinkConfig{Delay: 5 * time.Millisecond, Jitter: time.Millisecond, MTU: 1400, Bandwidth: 100_000_000})
			defer n.Close()
			mk := func(host string) *testNode {
				ip := netip.MustParseAddr(host)
				q, err := n.Listen(netip.AddrPortFrom(ip, 4433), 0)
				if err != nil {
					t.Fatal(err)
				}
				r, err := n.Listen(netip.AddrPortFrom(ip, 4434), 0)
				if err != nil {
					t.Fatal(err)
				}
				return newTestNode(t, false, func(c *Config) { c.Conn, c.Raw = q, r })
			}
			a, b := mk("127.77.1.1"), mk("127.77.1.2")
			la, _ := pair(t, a, b, kind)
			if kind == KindRaw && la.RemoteAddr().String() != "127.77.1.2:4434" {
				t.Fatalf("raw peer address %v", la.RemoteAddr())
			}
			sizes := []int{1, 100, 1300, 1368, 1369, 5000, 65535}
			for i, s := range sizes {
				if err := la.Send(pattern(s, i)); err != nil {
					t.Fatal(err)
				}
			}
			b.sink.wait(t, len(sizes), 5*time.Second)
			// now 2 % loss: fragmented PDUs may be lost whole, never corrupted
			n.SetLink(netip.MustParseAddr("127.77.1.1"), netip.MustParseAddr("127.77.1.2"),
				memnet.LinkConfig{Delay: 5 * time.Millisecond, MTU: 1400, Loss: 0.02})
			for i := 0; i < 200; i++ {
				la.Send(pattern(3000, i))
			}
			// Wait for the expected share (~94 %: three fragments each),
			// however slow the machine, then a little for any excess.
			deadline := time.Now().Add(20 * time.Second)
			for b.sink.count()-len(sizes) < 150 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(300 * time.Millisecond)
			got := b.sink.count() - len(sizes)
			if got < 150 || got > 200 {
				t.Errorf("with 2%% loss %d of 200 3000-byte PDUs arrived", got)
			}
			b.sink.mu.Lock()
			for _, p := range b.sink.got[len(sizes):] {
				if len(p) != 3000 {
					t.Errorf("corrupt PDU of %d bytes", len(p))
				}
			}
			b.sink.mu.Unlock()
		})
	}
}

// A ring of endpoints on one emulated network, each with a raw link to its
// neighbour: the in-process simulator's building block.
func TestRingOverMemnet(t *testing.T) {
	const nodes = 12
	n := memnet.New(memnet.LinkConfig{Delay: 2 * time.Millisecond, MTU: 1400})
	defer n.Close()
	ns := make([]*testNode, nodes)
	for i := range ns {
		ip := netip.AddrFrom4([4]byte{127, 77, 2, byte(i + 1)})
		q, err := n.Listen(netip.AddrPortFrom(ip, 4433), 0)
		if err != nil {
			t.Fatal(err)
		}
		r, err := n.Listen(netip.AddrPortFrom(ip, 4434), 0)
		if err != nil {
			t.Fatal(err)
		}
		ns[i] = newTestNode(t, false, func(c *Config) { c.Conn, c.Raw = q, r })
	}
	links := make([]Link, nodes)
	for i := range ns {
		links[i], _ = pair(t, ns[i], ns[(i+1)%nodes], KindRaw)
	}
	for i, l := range links {
		if err := l.Send(pattern(4000, i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range ns {
		next := ns[(i+1)%nodes]
		next.sink.wait(t, 1, 5*time.Second)
		if got := next.sink.got[0]; string(got) != string(pattern(4000, i)) {
			t.Fatalf("node %d got a corrupt PDU", (i+1)%nodes)
		}
		if next.sink.from[ns[i].id.Name] != 1 {
			t.Fatalf("node %d: PDU not from its neighbour", (i+1)%nodes)
		}
	}
}
