package freeport

import (
	"net"
	"strconv"
	"testing"
)

// TestPortBelowEphemeralAndFresh: every port handed out is below the
// kernel's ephemeral range, bindable for TCP and UDP, and never handed out
// twice, even once released.
func TestPortBelowEphemeralAndFresh(t *testing.T) {
	seen := map[int]bool{}
	start := ephemeralStart()
	for range 200 {
		p := Port(t)
		if p < lowest || p >= start {
			t.Fatalf("port %d outside [%d, %d)", p, lowest, start)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("port %d: %v", p, err)
		}
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatalf("port %d: %v", p, err)
		}
		l.Close()
		c.Close()
	}
}

// TestPortSkipsBound: a port someone holds (TCP or UDP) is passed over.
func TestPortSkipsBound(t *testing.T) {
	p := Port(t)
	mu.Lock()
	held := next // the one Port tries next
	mu.Unlock()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(held))
	c, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Skipf("port %d taken meanwhile: %v", held, err)
	}
	defer c.Close()
	if q := Port(t); q == held || q == p {
		t.Fatalf("handed out %d, held over UDP (or handed out before)", q)
	}
}
