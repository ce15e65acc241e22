package tunnel

import (
	"sync"
	"testing"
	"time"
)

// TestDatagramQueueDropsCounted: while a QUIC link's reader is held up (a
// Handler that does not return, as a starved goroutine on a loaded
// machine), quic-go keeps 128 datagrams and discards the rest; each one it
// discards is counted (drop reason datagram_queue), where before it was
// lost without a trace. Once the reader goes on, the link delivers again.
func TestDatagramQueueDropsCounted(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	a := newTestNode(t, false, nil)
	var held sync.Once
	s := newSink()
	b := newTestNode(t, false, func(c *Config) {
		c.CountDatagramDrops = true
		c.Handler = func(l Link, p []byte) {
			held.Do(func() { <-release }) // the first PDU holds the reader up
			s.handle(l, p)
		}
	})
	t.Cleanup(free) // before the endpoints close (cleanups run last first)
	la, _ := pair(t, a, b, KindQUIC)
	const sent = 1000
	p := make([]byte, 200)
	p[0] = 0xAA // not a KEEPALIVE
	for range sent {
		if err := la.Send(p); err != nil {
			t.Fatal(err)
		}
	}
	// 1000 sent, at most 1 + 128 held: the rest are dropped by quic-go
	// (some may be lost before it, on a loaded machine's socket).
	deadline := time.Now().Add(30 * time.Second)
	for b.ep.Stats().Dropped(DropDatagramQueue) < sent/2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d datagrams counted dropped at the receive queue, want at least %d of %d sent to a held reader (at most 129 kept)",
				b.ep.Stats().Dropped(DropDatagramQueue), sent/2, sent)
		}
		time.Sleep(10 * time.Millisecond)
	}
	free()
	s.wait(t, 2, 30*time.Second)
	// Delivered and dropped never add up to more than was sent: a drop is
	// counted once, and not for what was delivered.
	time.Sleep(100 * time.Millisecond)
	got, dropped := s.count(), b.ep.Stats().Dropped(DropDatagramQueue)
	if uint64(got)+dropped > sent {
		t.Fatalf("%d delivered + %d dropped > %d sent", got, dropped, sent)
	}
	// The link goes on delivering.
	if err := la.Send(p); err != nil {
		t.Fatal(err)
	}
	s.wait(t, got+1, 30*time.Second)
	t.Logf("%d sent, %d delivered, %d dropped at the receive queue", sent+1, got+1, dropped)
}
