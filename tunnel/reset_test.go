package tunnel

import (
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// muteConn drops every datagram written once muted: a process killed with
// SIGKILL sends no CONNECTION_CLOSE.
type muteConn struct {
	net.PacketConn
	muted atomic.Bool
}

func (m *muteConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if m.muted.Load() {
		return len(p), nil
	}
	return m.PacketConn.WriteTo(p, addr)
}

// TestRestartedPeerResetsOldLink: a node killed without a word, down for a
// while, and started again on the same address with the same key answers
// its old links' packets with a stateless reset, so the survivor closes the
// link within about one keepalive of the restart — not after the idle
// timeout (30 s here), and not after QUIC's probe backoff, which has grown
// to seconds by then (the KEEPALIVE datagrams keep going out). Both ends of
// a link are tried as the one that restarts.
func TestRestartedPeerResetsOldLink(t *testing.T) {
	for _, restartDialer := range []bool{false, true} {
		slow := func(c *Config) { c.IdleTimeout, c.KeepAlivePeriod = 30*time.Second, 400*time.Millisecond }
		survivor := newTestNode(t, false, slow)
		mc := &muteConn{PacketConn: loopbackUDP(t)}
		id := testIdentity(t)
		cfg := Config{Identity: id, Verify: KeyNameVerifier(nil), Conn: mc, Handler: newSink().handle}
		slow(&cfg)
		ep, err := NewEndpoint(cfg)
		if err != nil {
			t.Fatal(err)
		}
		victim := &testNode{ep: ep, id: id, sink: newSink()}
		var l Link
		if restartDialer {
			_, l = pair(t, victim, survivor, KindQUIC)
		} else {
			l, _ = pair(t, survivor, victim, KindQUIC)
		}
		addr := mc.LocalAddr().(*net.UDPAddr)
		mc.muted.Store(true)
		_ = ep.Close() // its CONNECTION_CLOSE is dropped: a kill -9
		time.Sleep(3 * time.Second)
		conn, err := net.ListenUDP("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Conn = conn
		again, err := NewEndpoint(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { again.Close() })
		start := time.Now()
		select {
		case <-l.Done():
			t.Logf("restart (dialer %t): old link closed after %s (%v)", restartDialer, time.Since(start), l.Err())
		case <-time.After(1500 * time.Millisecond):
			t.Fatalf("restart (dialer %t): the survivor kept the dead link for 1.5 s after the restart", restartDialer)
		}
	}
}
