package tunnel

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

// captureConn is a PacketConn that sends nothing: it records what a QUIC
// client writes and never delivers a packet to it.
type captureConn struct {
	local net.Addr
	mu    sync.Mutex
	out   [][]byte
	done  chan struct{}
	once  sync.Once
}

func (c *captureConn) ReadFrom([]byte) (int, net.Addr, error) {
	<-c.done
	return 0, nil, net.ErrClosed
}

func (c *captureConn) WriteTo(p []byte, _ net.Addr) (int, error) {
	c.mu.Lock()
	c.out = append(c.out, append([]byte(nil), p...))
	c.mu.Unlock()
	return len(p), nil
}

func (c *captureConn) Close() error                     { c.once.Do(func() { close(c.done) }); return nil }
func (c *captureConn) LocalAddr() net.Addr              { return c.local }
func (c *captureConn) SetDeadline(time.Time) error      { return nil }
func (c *captureConn) SetReadDeadline(time.Time) error  { return nil }
func (c *captureConn) SetWriteDeadline(time.Time) error { return nil }

// firstFlight returns the UDP datagrams of a fresh QUIC client's first
// flight towards a tunnel listener (right ALPN, a new connection ID each
// time), without sending them: the test replays them from sockets of its
// own, as a spoofer would from addresses that never answer.
func firstFlight(t *testing.T, to net.Addr) [][]byte {
	t.Helper()
	c := &captureConn{local: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, done: make(chan struct{})}
	tr := &quic.Transport{Conn: c}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = tr.Dial(ctx, to, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{ALPN}, ServerName: "gdp"}, &quic.Config{})
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		n := len(c.out)
		c.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the QUIC client wrote nothing")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // the rest of the flight, well before any retransmission
	cancel()
	<-done
	_ = c.Close() // unblocks the transport's read loop
	_ = tr.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out
}

// replay sends flight to the listener from a fresh socket and returns the
// datagrams that came back within wait.
func replay(t *testing.T, to net.Addr, flight [][]byte, wait time.Duration) (replies [][]byte, sent int) {
	t.Helper()
	s := loopbackUDP(t)
	defer s.Close()
	for _, p := range flight {
		if _, err := s.WriteTo(p, to); err != nil {
			t.Fatal(err)
		}
		sent += len(p)
	}
	buf := make([]byte, 65536)
	end := time.Now().Add(wait)
	for {
		_ = s.SetReadDeadline(end)
		n, _, err := s.ReadFrom(buf)
		if err != nil {
			return replies, sent
		}
		replies = append(replies, append([]byte(nil), buf[:n]...))
	}
}

func total(ps [][]byte) (n int) {
	for _, p := range ps {
		n += len(p)
	}
	return n
}

// isRetry: a QUIC v1 long-header packet of type Retry (RFC 9000 §17.2.5).
func isRetry(p []byte) bool { return len(p) > 0 && p[0]&0x80 != 0 && p[0]&0x30 == 0x30 }

// TestRetryWhenHandshakesPileUp (issue 9 item 10): below the threshold a
// first flight gets the handshake answer (the amplification the issue
// measured); once RetryAboveHandshakes handshakes are in flight — first
// flights from sockets that never answer — a new unvalidated client gets
// one small Retry packet instead, and a real dial still succeeds (through
// the Retry). When the pending handshakes time out the count drops back.
func TestRetryWhenHandshakesPileUp(t *testing.T) {
	const threshold = 4
	srv := newTestNode(t, false, func(c *Config) {
		c.RetryAboveHandshakes = threshold
		c.HandshakeTimeout = 2 * time.Second
	})
	to := srv.ep.Addr()

	// Below the threshold: the full handshake answer, larger than the
	// first flight.
	flight := firstFlight(t, to)
	replies, sent := replay(t, to, flight, 500*time.Millisecond)
	if len(replies) == 0 || isRetry(replies[0]) || total(replies) <= sent {
		t.Fatalf("below the threshold: %d replies, %d bytes for %d sent, first is retry: %v",
			len(replies), total(replies), sent, len(replies) > 0 && isRetry(replies[0]))
	}
	t.Logf("below the threshold: %d bytes answered %d bytes (%.2fx)", sent, total(replies), float64(total(replies))/float64(sent))

	// Pile up handshakes that never complete.
	for range threshold {
		replay(t, to, firstFlight(t, to), 0)
	}
	deadline := time.Now().Add(5 * time.Second)
	for srv.ep.Stats().HandshakesInFlight < threshold {
		if time.Now().After(deadline) {
			t.Fatalf("handshakes in flight %d, want ≥ %d", srv.ep.Stats().HandshakesInFlight, threshold)
		}
		time.Sleep(5 * time.Millisecond)
	}

	// A new unvalidated first flight now gets Retries only: one small
	// packet per datagram at most, less than half of what was sent.
	retriesBefore := srv.ep.Stats().Retries
	flight = firstFlight(t, to)
	replies, sent = replay(t, to, flight, 500*time.Millisecond)
	allRetry := len(replies) > 0
	for _, p := range replies {
		allRetry = allRetry && isRetry(p) && len(p) < 256
	}
	if !allRetry || len(replies) > len(flight) || total(replies) >= sent/2 {
		t.Fatalf("above the threshold: %d replies (all small Retries: %v), %d bytes for %d sent in %d datagrams",
			len(replies), allRetry, total(replies), sent, len(flight))
	}
	t.Logf("above the threshold: %d bytes answered by %d bytes of Retry (%.2fx)", sent, total(replies), float64(total(replies))/float64(sent))
	if got := srv.ep.Stats().Retries - retriesBefore; got < 1 {
		t.Fatalf("retries counted %d", got)
	}

	// An honest client still gets through (it answers the Retry).
	cl := newTestNode(t, false, nil)
	la, lb := pair(t, cl, srv, KindQUIC)
	if la.Peer() != srv.id.Name || lb.Peer() != cl.id.Name {
		t.Fatal("wrong peers")
	}
	if got := srv.ep.Stats().Retries - retriesBefore; got < 2 {
		t.Fatalf("the honest dial was not asked to validate (retries %d)", got)
	}

	// The abandoned handshakes time out and stop counting.
	deadline = time.Now().Add(10 * time.Second)
	for srv.ep.Stats().HandshakesInFlight != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("handshakes in flight stuck at %d", srv.ep.Stats().HandshakesInFlight)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
