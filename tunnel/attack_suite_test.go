package tunnel

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

// honestLinks dials n links from cl to srv one after another (each with
// its own deadline) and sends one PDU on each; it returns how many links
// came up and delivered their PDU.
func honestLinks(t *testing.T, cl, srv *testNode, kind Kind, n int) int {
	t.Helper()
	ok := 0
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		la, err := cl.ep.Dial(ctx, srv.ep.Addr(), srv.id.Name, kind)
		if err != nil {
			cancel()
			t.Logf("honest dial %d: %v", i, err)
			continue
		}
		lb, err := srv.ep.Accept(ctx)
		cancel()
		if err != nil {
			la.Close()
			t.Logf("honest accept %d: %v", i, err)
			continue
		}
		before := srv.sink.count()
		if err := la.Send([]byte(fmt.Sprintf("honest %d", i))); err == nil {
			deadline := time.Now().Add(5 * time.Second)
			for srv.sink.count() == before && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if srv.sink.count() > before {
				ok++
			}
		}
		la.Close()
		lb.Close()
	}
	return ok
}

// TestSlowLorisTunnels: an authenticated peer opens 40 QUIC connections to
// a listener and never finishes the control exchange (half never open the
// control stream, half send a tag and half a HELLO and stall). Honest
// peers still get ≥ 90 % of their links up meanwhile; every stalled
// connection is closed by the listener within handshake_timeout (counted
// as a failed accept) and holds nothing after.
func TestSlowLorisTunnels(t *testing.T) {
	srv := newTestNode(t, true, func(c *Config) { c.HandshakeTimeout = 2 * time.Second })
	atk := newTestNode(t, false, nil)
	cl := newTestNode(t, true, nil)
	const loris = 40
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var conns []*quic.Conn
	for i := range loris {
		qc, err := atk.ep.tr.Dial(ctx, srv.ep.Addr(), atk.ep.clientTLS(srv.id.Name), atk.ep.qconf)
		if err != nil {
			t.Fatalf("loris %d: %v", i, err)
		}
		if i%2 == 1 {
			s, err := qc.OpenStream()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Write([]byte{streamControl, msgHello, 0, 0, 0, 0, 0}); err != nil {
				t.Fatal(err)
			}
		}
		conns = append(conns, qc)
	}
	failedBefore := srv.ep.Stats().AcceptsFailed
	const n = 10
	ok := honestLinks(t, cl, srv, KindRaw, n)
	t.Logf("honest links during the slow-loris: %d/%d", ok, n)
	if ok < n*9/10 {
		t.Fatalf("honest links %d/%d < 90%%", ok, n)
	}
	for i, qc := range conns {
		select {
		case <-qc.Context().Done():
		case <-time.After(15 * time.Second):
			t.Fatalf("stalled connection %d still open", i)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for srv.ep.Stats().AcceptsFailed < failedBefore+loris/2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	st := srv.ep.Stats()
	if st.AcceptsFailed < loris {
		t.Fatalf("accepts failed %d, want ≥ %d (every stalled connection)", st.AcceptsFailed, loris)
	}
	if st.Links != 0 || st.HandshakesInFlight != 0 {
		t.Fatalf("after the slow-loris: %d links, %d handshakes in flight", st.Links, st.HandshakesInFlight)
	}
}

// TestHandshakeFlood: 24 goroutines dial a listener as fast as they can
// without credentials (a plain QUIC client: no certificate the listener
// accepts), each a full TLS handshake refused. Honest peers get ≥ 90 % of
// their links up during the flood, no flooding dial is ever accepted, and
// the handshakes in flight return to 0 after it.
func TestHandshakeFlood(t *testing.T) {
	srv := newTestNode(t, false, func(c *Config) { c.HandshakeTimeout = 2 * time.Second })
	cl := newTestNode(t, false, nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var tries, accepted atomic.Int64
	const flooders = 24 / raceSlow
	for range flooders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := loopbackUDP(t)
			tr := &quic.Transport{Conn: c}
			defer tr.Close()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				qc, err := tr.Dial(ctx, srv.ep.Addr(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{ALPN}, ServerName: "gdp"}, &quic.Config{})
				cancel()
				tries.Add(1)
				if err == nil {
					// the server may finish TLS 1.3 before checking: it must
					// still never hand the connection out
					qc.CloseWithError(0, "")
				}
			}
		}()
	}
	// the flood is on before the honest dials start
	for tries.Load() < flooders {
		time.Sleep(5 * time.Millisecond)
	}
	go func() {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { <-stop; cancel() }()
		for {
			l, err := srv.ep.Accept(ctx)
			if err != nil {
				return
			}
			if l.Peer() != cl.id.Name {
				accepted.Add(1)
			}
		}
	}()
	const n = 10
	ok := 0
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		la, err := cl.ep.Dial(ctx, srv.ep.Addr(), srv.id.Name, KindQUIC)
		cancel()
		if err != nil {
			t.Logf("honest dial %d: %v", i, err)
			continue
		}
		ok++
		la.Close()
	}
	close(stop)
	wg.Wait()
	t.Logf("honest links during the flood: %d/%d; %d flooding handshakes; retries %d", ok, n, tries.Load(), srv.ep.Stats().Retries)
	if ok < n*9/10 {
		t.Fatalf("honest links %d/%d < 90%%", ok, n)
	}
	if accepted.Load() != 0 {
		t.Fatalf("%d unauthenticated connections handed out", accepted.Load())
	}
	deadline := time.Now().Add(15 * time.Second)
	for srv.ep.Stats().HandshakesInFlight != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("handshakes in flight stuck at %d", srv.ep.Stats().HandshakesInFlight)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRandomFramesFromRandomSources: 16 sockets spray random datagrams
// (random bytes, and plausible frame headers with random sessions,
// counters and tags) at a node's raw and QUIC sockets while an
// authenticated raw link carries 300 PDUs: ≥ 90 % of them arrive, none of
// the junk is delivered, and the junk is counted as dropped by reason.
func TestRandomFramesFromRandomSources(t *testing.T) {
	a := newTestNode(t, true, nil)
	b := newTestNode(t, true, nil)
	la, _ := pair(t, a, b, KindRaw)
	session := la.(*link).raw.out.Load().remote
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sprayed atomic.Int64
	for i := range 16 / raceSlow {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := loopbackUDP(t)
			defer s.Close()
			rng := rand.New(rand.NewPCG(uint64(i), 9))
			targets := []net.Addr{b.ep.RawAddr(), b.ep.Addr()}
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				p := make([]byte, rng.IntN(1500))
				for k := range p {
					p[k] = byte(rng.Uint32())
				}
				if j%2 == 0 && len(p) >= frameOverhead {
					// a frame header: a random session (unknown_session)
					// or the live link's (the AEAD check: auth)
					p[0] = frameType
					if j%4 == 0 {
						binary.BigEndian.PutUint32(p[4:], session)
					}
				}
				_, _ = s.WriteTo(p, targets[j%2])
				sprayed.Add(1)
				if j%16 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	for sprayed.Load() < 1000 {
		time.Sleep(time.Millisecond)
	}
	const n = 300
	for i := range n {
		if err := la.Send([]byte(fmt.Sprintf("legit %d", i))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	deadline := time.Now().Add(raceSlow * 5 * time.Second)
	for b.sink.count() < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	got := b.sink.count()
	st := b.ep.Stats()
	var drops uint64
	for _, v := range st.Drops {
		drops += v
	}
	t.Logf("legit delivered %d/%d while %d junk datagrams were sprayed; drops %v", got, n, sprayed.Load(), st.Drops)
	if got > n {
		t.Fatalf("%d PDUs delivered for %d sent: junk got through", got, n)
	}
	if got < n*9/10 {
		t.Fatalf("legit delivered %d/%d < 90%%", got, n)
	}
	if drops < 100 || st.Dropped(DropAuth) == 0 || st.Dropped(DropUnknownSession) == 0 {
		t.Fatalf("junk counted as dropped: %v", st.Drops)
	}
}

// TestReassemblyFloodWithTraffic: the authenticated peer floods first
// fragments of PDUs it never finishes (3,000 of them, 8 reassembly slots)
// and, interleaved, sends 100 genuine PDUs of 3 fragments each: ≥ 90 % of
// the genuine PDUs arrive whole, the flood is evicted and counted, and the
// reassembler never holds more than its slots.
func TestReassemblyFloodWithTraffic(t *testing.T) {
	const slots = 8
	a := newTestNode(t, true, func(c *Config) { c.RawMTU = 1200 })
	b := newTestNode(t, true, func(c *Config) { c.RawMTU = 1200; c.ReassemblySlots = slots })
	la, _ := pair(t, a, b, KindRaw)
	rl := la.(*link).raw
	s := rl.out.Load()
	frag := make([]byte, rl.frame-frameOverhead)
	const flood, n = 3000, 100
	sent := 0
	// At most ~64 frames ahead of what b took in (waitFrames): the flood
	// is meant for b's reassembler, not the kernel's receive buffer (at
	// its usual 208 KiB, net.core.rmem_max, a flood paced by sleeps lost
	// genuine fragments there on a loaded machine: 87/100).
	base := b.ep.Stats().FramesReceived
	for i := 0; i < flood; i++ {
		fb := rl.re.q.get(rl.frame)
		h := frameHeader{Frag: fragMore, PacketID: uint16(60000 + i%5000), Index: s.remote, Counter: s.counter.Add(1) - 1}
		fb.n = sealFrame(fb.b, h, s.aead, &fb.nonce, frag)
		fb.addr = rl.addr.Load()
		rl.re.q.put(fb)
		if i%30 == 29 && sent < n {
			if err := la.Send(pattern(3000, sent)); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		if i%64 == 63 {
			waitFrames(t, b.ep, base+uint64(i+1+3*sent-64))
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.sink.count() < sent && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	got := 0
	b.sink.mu.Lock()
	for _, p := range b.sink.got {
		if len(p) == 3000 {
			got++
		}
	}
	b.sink.mu.Unlock()
	st := b.ep.Stats()
	t.Logf("genuine PDUs delivered whole: %d/%d during a flood of %d unfinished first fragments; evicted %d",
		got, sent, flood, st.Dropped(DropReassemblyEvicted))
	if got < sent*9/10 {
		t.Fatalf("genuine PDUs %d/%d < 90%%", got, sent)
	}
	if st.Dropped(DropReassemblyEvicted) < flood/2 {
		t.Fatalf("evictions %d for a flood of %d", st.Dropped(DropReassemblyEvicted), flood)
	}
	sess := b.ep.raw.session(rl.recvIndexAtPeer())
	b.ep.Close()
	if held := sess.reasm.pending(); held > slots {
		t.Fatalf("reassembler holds %d incomplete PDUs, limit %d", held, slots)
	}
}
