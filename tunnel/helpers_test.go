package tunnel

import (
	"context"
	"crypto/ed25519"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/pdu"
)

func testIdentity(t testing.TB) *Identity {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &Identity{Key: priv, Name: KeyName(pub), Credentials: []byte("test")}
}

func loopbackUDP(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func loopbackUDP6(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no ipv6 loopback: %v", err)
	}
	return c
}

// sink collects delivered PDUs per endpoint.
type sink struct {
	mu   sync.Mutex
	got  [][]byte
	ch   chan struct{}
	from map[pdu.Name]int
}

func newSink() *sink { return &sink{ch: make(chan struct{}, 1<<16), from: map[pdu.Name]int{}} }

func (s *sink) handle(l Link, p []byte) {
	s.mu.Lock()
	s.got = append(s.got, append([]byte(nil), p...))
	s.from[l.Peer()]++
	s.mu.Unlock()
	select {
	case s.ch <- struct{}{}:
	default:
	}
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

// wait until n PDUs arrived or the timeout passes.
func (s *sink) wait(t testing.TB, n int, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for s.count() < n {
		select {
		case <-s.ch:
		case <-deadline:
			t.Fatalf("got %d PDUs, want %d", s.count(), n)
		}
	}
}

// waitOrReport is wait, naming the sizes that never came.
func (s *sink) waitOrReport(t testing.TB, n int, d time.Duration, sizes []int) {
	t.Helper()
	deadline := time.After(d)
	for s.count() < n {
		select {
		case <-s.ch:
		case <-deadline:
			s.mu.Lock()
			got := map[int]int{}
			for _, p := range s.got {
				got[len(p)]++
			}
			s.mu.Unlock()
			var missing []int
			for _, sz := range sizes[:n] {
				if got[sz] == 0 {
					missing = append(missing, sz)
				} else {
					got[sz]--
				}
			}
			t.Fatalf("got %d PDUs, want %d; missing sizes %v", s.count(), n, missing)
		}
	}
}

type testNode struct {
	ep   *Endpoint
	id   *Identity
	sink *sink
}

func newTestNode(t testing.TB, raw bool, mod func(*Config)) *testNode {
	t.Helper()
	id := testIdentity(t)
	s := newSink()
	cfg := Config{Identity: id, Verify: KeyNameVerifier(nil), Conn: loopbackUDP(t), Handler: s.handle}
	if raw {
		cfg.Raw = loopbackUDP(t)
	}
	if mod != nil {
		mod(&cfg)
	}
	ep, err := NewEndpoint(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	return &testNode{ep: ep, id: id, sink: s}
}

// pair dials b from a with kind and returns both ends.
func pair(t testing.TB, a, b *testNode, kind Kind) (Link, Link) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	la, err := a.ep.Dial(ctx, b.ep.Addr(), b.id.Name, kind)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	lb, err := b.ep.Accept(ctx)
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	return la, lb
}
