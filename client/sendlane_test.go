package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/tunnel"
	"github.com/gdpnet/gdpnet/tunnel/memnet"
	"github.com/gdpnet/gdpnet/tunnel/tunneltest"
)

// settleGoroutines waits (up to 10 s) for the goroutine count to fall to
// want or below and returns the last count seen.
func settleGoroutines(want int) int {
	n := runtime.NumGoroutine()
	for end := time.Now().Add(10 * time.Second); n > want && time.Now().Before(end); n = runtime.NumGoroutine() {
		time.Sleep(20 * time.Millisecond)
	}
	return n
}

// Session 20 (Issues 12/16): a request's timeout covers its send. Over a
// real QUIC tunnel whose path went dead, quic-go's SendDatagram blocks
// once its 32-frame queue is full; a ping and a capsule request must still
// return their timeout errors within their timeouts (before: only when the
// link's idle timeout closed it), and every goroutine they or the client
// started must end once the path is back and the queue drains.
func TestRequestTimeoutCoversBlockedSend(t *testing.T) {
	n := memnet.New(memnet.LinkConfig{MTU: 1400})
	defer n.Close()
	ipA, ipB := netip.MustParseAddr("127.78.1.1"), netip.MustParseAddr("127.78.1.2")
	var cli atomic.Pointer[client.Client]
	var got sync.Mutex
	var seen []pdu.Header
	cfg := tunnel.Config{IdleTimeout: 8 * time.Second, KeepAlivePeriod: time.Second}
	cfgA := cfg
	cfgA.Handler = func(_ tunnel.Link, p []byte) {
		if c := cli.Load(); c != nil {
			c.HandlePDU(p)
		}
	}
	cfgB := cfg
	cfgB.Handler = func(_ tunnel.Link, p []byte) {
		var h pdu.Header
		if pdu.Decode(p, &h) == nil && (h.Type == pdu.TypeEchoRequest || len(h.Payload) == 5) {
			got.Lock()
			seen = append(seen, h)
			got.Unlock()
		}
	}
	idB, err := tunneltest.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	cfgB.Identity = idB
	before := runtime.NumGoroutine()
	qa, err := n.Listen(netip.AddrPortFrom(ipA, tunneltest.QUICPort), 0)
	if err != nil {
		t.Fatal(err)
	}
	gate := &gatedConn{Conn: qa, open: make(chan struct{})}
	close(gate.open)
	defer gate.release()
	idA, err := tunneltest.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	cfgA.Identity, cfgA.Verify, cfgA.Conn = idA, tunnel.KeyNameVerifier(nil), gate
	a, err := tunnel.NewEndpoint(cfgA)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tunneltest.Endpoint(n, ipB, cfgB)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	la, err := a.Dial(ctx, b.Addr(), idB.Name, tunnel.KindQUIC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Accept(ctx); err != nil {
		t.Fatal(err)
	}
	self, _ := certs.NewIdentity(certs.KindClient, "congested")
	c := client.New(self, la, client.Options{})
	cli.Store(c)
	dst := idB.Name

	// The endpoint's socket stops taking packets (a held send path:
	// quic-go's send loop waits in WriteTo); a sender fills quic-go's
	// datagram queue until a send blocks (no progress for 300 ms).
	gate.hold()
	var sent atomic.Int64
	filler := make(chan struct{})
	go func() {
		defer close(filler)
		for i := 0; i < 10_000; i++ {
			if _, err := c.Send(dst, make([]byte, 1000)); err != nil {
				return
			}
			sent.Add(1)
		}
	}()
	for last := int64(-1); ; {
		time.Sleep(300 * time.Millisecond)
		cur := sent.Load()
		if cur == last {
			break
		}
		last = cur
		select {
		case <-filler:
			t.Fatalf("%d sends over a dead path never blocked", cur)
		default:
		}
	}

	// A ping: its timeout covers the send. (Before Session 20 it
	// returned only once the socket took packets again: released here
	// after a second, so that the failure is reported, not a hang.)
	const timeout = 300 * time.Millisecond
	start := time.Now()
	pinged := make(chan error, 1)
	go func() {
		_, err := c.Ping(ctx, dst, 8, timeout)
		pinged <- err
	}()
	select {
	case err = <-pinged:
	case <-time.After(timeout + time.Second):
		gate.release()
		err = <-pinged
	}
	took := time.Since(start)
	if !errors.Is(err, client.ErrTimeout) {
		t.Fatalf("ping over a full send queue: %v, want ErrTimeout", err)
	}
	if took > timeout+time.Second {
		t.Fatalf("ping with a %v timeout returned after %v", timeout, took)
	}
	t.Logf("ping: %v after %v", err, took)

	// A capsule request (METADATA): each attempt's timeout covers its
	// send, so two attempts take about two timeouts.
	cc := client.NewCapsuleClient(c, client.CapsuleOptions{Timeout: timeout, Attempts: 2})
	start = time.Now()
	asked := make(chan error, 1)
	go func() {
		_, err := cc.Info(ctx, dst, dst)
		asked <- err
	}()
	select {
	case err = <-asked:
	case <-time.After(2*timeout + time.Second):
		gate.release()
		err = <-asked
	}
	took = time.Since(start)
	if !errors.Is(err, client.ErrNoAnswer) || !errors.Is(err, client.ErrTimeout) {
		t.Fatalf("capsule request over a full send queue: %v, want ErrNoAnswer and ErrTimeout", err)
	}
	if took > 2*timeout+time.Second {
		t.Fatalf("capsule request with 2 x %v attempts returned after %v", timeout, took)
	}
	t.Logf("capsule request: %v after %v", err, took)

	// The same goroutine sends DATA after the ping gave up: it must not
	// overtake the ping's PDU, which the link still holds.
	after := make(chan error, 1)
	go func() {
		_, err := c.Send(dst, []byte("after"))
		after <- err
	}()

	// The socket takes packets again: the queue drains, every send
	// returns.
	gate.release()
	select {
	case <-filler:
	case <-time.After(15 * time.Second):
		t.Fatal("the filler's send never returned after the path came back")
	}
	select {
	case err := <-after:
		if err != nil {
			t.Fatalf("send after the path came back: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the send queued behind the lane never returned")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got.Lock()
		echo, data := -1, -1
		for i, h := range seen {
			if h.Type == pdu.TypeEchoRequest && echo < 0 {
				echo = i
			}
			if string(h.Payload) == "after" {
				data = i
			}
		}
		got.Unlock()
		if echo >= 0 && data >= 0 {
			if data < echo {
				t.Fatalf("the DATA sent after the ping arrived before the ping's PDU (%d < %d)", data, echo)
			}
			break
		}
		if time.Now().After(deadline) {
			// The ping's PDU may have been dropped with the queue; the
			// later DATA must have arrived.
			if data < 0 {
				t.Fatal("the DATA sent after the ping never arrived")
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c.Unsent.Load() != 0 {
		t.Logf("unsent %d", c.Unsent.Load())
	}
	cc.Close()
	c.Close()
	a.Close()
	b.Close()
	if now := settleGoroutines(before); now > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("goroutines: %d before, %d after\n%s", before, now, buf[:runtime.Stack(buf, true)])
	}
}

// gatedConn is a socket whose writes can be held: while held, WriteTo
// waits (a send path that takes nothing), as a full socket buffer would.
type gatedConn struct {
	*memnet.Conn
	mu   sync.Mutex
	open chan struct{} // closed while writes pass
}

func (g *gatedConn) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
		g.open = make(chan struct{})
	default:
	}
}

func (g *gatedConn) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

func (g *gatedConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	<-open
	return g.Conn.WriteTo(b, addr)
}

// BenchmarkPingTunnel is the uncongested path a request takes (Session
// 20): a ping over a real QUIC tunnel on an emulated perfect link, its
// destination answering at once. `go test -run - -bench PingTunnel
// ./client` before and after the send lane: the hand-off of each
// request's send to the lane must not make it measurably slower.
func BenchmarkPingTunnel(b *testing.B) {
	n := memnet.New(memnet.LinkConfig{MTU: 1400})
	defer n.Close()
	ipA, ipB := netip.MustParseAddr("127.78.2.1"), netip.MustParseAddr("127.78.2.2")
	var cli atomic.Pointer[client.Client]
	var lb atomic.Pointer[tunnel.Link]
	a, err := tunneltest.Endpoint(n, ipA, tunnel.Config{Handler: func(_ tunnel.Link, p []byte) {
		if c := cli.Load(); c != nil {
			c.HandlePDU(p)
		}
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	idB, _ := tunneltest.NewIdentity()
	ep, err := tunneltest.Endpoint(n, ipB, tunnel.Config{Identity: idB, Handler: func(_ tunnel.Link, p []byte) {
		var h pdu.Header
		if pdu.Decode(p, &h) != nil || h.Type != pdu.TypeEchoRequest {
			return
		}
		r := pdu.Header{Type: pdu.TypeEchoReply, TTL: 8, Sequence: h.Sequence, Dst: h.Src, Src: h.Dst, Payload: h.Payload}
		if out, err := r.Marshal(); err == nil {
			if l := lb.Load(); l != nil {
				_ = (*l).Send(out)
			}
		}
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer ep.Close()
	ctx := context.Background()
	la, err := a.Dial(ctx, ep.Addr(), idB.Name, tunnel.KindQUIC)
	if err != nil {
		b.Fatal(err)
	}
	l, err := ep.Accept(ctx)
	if err != nil {
		b.Fatal(err)
	}
	lb.Store(&l)
	self, _ := certs.NewIdentity(certs.KindClient, "pinger")
	c := client.New(self, la, client.Options{})
	cli.Store(c)
	defer c.Close()
	b.ResetTimer()
	for range b.N {
		if _, err := c.Ping(ctx, idB.Name, 8, 2*time.Second); err != nil {
			b.Fatal(err)
		}
	}
}

// echoLink answers every ECHO_REQUEST at once, inside Send: a link with no
// network, so BenchmarkPingInstantLink measures what the client itself
// costs per request.
type echoLink struct {
	peer pdu.Name
	c    atomic.Pointer[client.Client]
	done chan struct{}
}

func (l *echoLink) Peer() pdu.Name        { return l.peer }
func (l *echoLink) Done() <-chan struct{} { return l.done }
func (l *echoLink) Close() error          { return nil }
func (l *echoLink) Send(p []byte) error {
	var h pdu.Header
	if pdu.Decode(p, &h) != nil || h.Type != pdu.TypeEchoRequest {
		return nil
	}
	r := pdu.Header{Type: pdu.TypeEchoReply, TTL: 8, Sequence: h.Sequence, Dst: h.Src, Src: h.Dst, Payload: h.Payload}
	if out, err := r.Marshal(); err == nil {
		l.c.Load().HandlePDU(out)
	}
	return nil
}

// BenchmarkPingInstantLink: one ping over a link that answers inside Send
// (no network): the client's own cost per request, the send lane's
// hand-off included (Session 20).
func BenchmarkPingInstantLink(b *testing.B) {
	self, _ := certs.NewIdentity(certs.KindClient, "pinger")
	l := &echoLink{peer: pdu.Name{1}, done: make(chan struct{})}
	c := client.New(self, l, client.Options{})
	l.c.Store(c)
	ctx := context.Background()
	for range b.N {
		if _, err := c.Ping(ctx, pdu.Name{2}, 8, 2*time.Second); err != nil {
			b.Fatal(err)
		}
	}
}

// lifoLink holds every Send while held; released, it lets the blocked
// sends through newest first, one at a time — the order quic-go does not
// promise either (its blocked SendDatagram calls race for a freed slot).
type lifoLink struct {
	peer    pdu.Name
	done    chan struct{}
	mu      sync.Mutex
	held    bool
	waiting []chan struct{}
	sent    []string
}

func (l *lifoLink) Peer() pdu.Name        { return l.peer }
func (l *lifoLink) Done() <-chan struct{} { return l.done }
func (l *lifoLink) Close() error          { return nil }
func (l *lifoLink) Send(p []byte) error {
	var h pdu.Header
	if err := pdu.Decode(p, &h); err != nil {
		return err
	}
	what := string(h.Payload)
	if h.Type == pdu.TypeEchoRequest {
		what = "ping"
	}
	l.mu.Lock()
	if l.held {
		ch := make(chan struct{})
		l.waiting = append(l.waiting, ch)
		l.mu.Unlock()
		<-ch
		l.mu.Lock()
	}
	l.sent = append(l.sent, what)
	l.mu.Unlock()
	return nil
}

func (l *lifoLink) counts() (waiting, sent int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.waiting), len(l.sent)
}

// TestSendLaneKeepsOrder (Session 20): a request that gave up while the
// link held its PDU leaves the PDU there, and the DATA its goroutine sends
// next queues behind it instead of racing it into the link: it goes out
// after the request's PDU, whatever order the link lets blocked sends
// through. Mutant: sendlane.go linkSend sending directly while the lane
// holds a PDU: "after" overtakes the ping.
func TestSendLaneKeepsOrder(t *testing.T) {
	before := runtime.NumGoroutine()
	self, _ := certs.NewIdentity(certs.KindClient, "ordered")
	l := &lifoLink{peer: pdu.Name{1}, done: make(chan struct{}), held: true}
	c := client.New(self, l, client.Options{})
	dst := pdu.Name{2}
	wait := func(what string, ok func() bool) {
		t.Helper()
		for end := time.Now().Add(5 * time.Second); !ok(); time.Sleep(time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	go func() { _, _ = c.Send(dst, []byte("first")) }()
	wait("the first send to block", func() bool { w, _ := l.counts(); return w == 1 })
	start := time.Now()
	_, err := c.Ping(context.Background(), dst, 8, 100*time.Millisecond)
	if !errors.Is(err, client.ErrTimeout) || time.Since(start) > time.Second {
		t.Fatalf("ping behind a held send: %v after %v; want ErrTimeout after ~100ms", err, time.Since(start))
	}
	wait("the ping to reach the link", func() bool { w, _ := l.counts(); return w == 2 })
	after := make(chan error, 1)
	go func() {
		_, err := c.Send(dst, []byte("after"))
		after <- err
	}()
	time.Sleep(100 * time.Millisecond) // time to reach the link, if it were sent directly
	l.mu.Lock()
	l.held = false
	l.mu.Unlock()
	for {
		l.mu.Lock()
		n := len(l.waiting)
		if n == 0 {
			l.mu.Unlock()
			break
		}
		ch := l.waiting[n-1]
		l.waiting = l.waiting[:n-1]
		_, sent := len(l.waiting), len(l.sent)
		l.mu.Unlock()
		close(ch)
		wait("a released send", func() bool { _, s := l.counts(); return s > sent })
	}
	if err := <-after; err != nil {
		t.Fatal(err)
	}
	wait("every send", func() bool { _, s := l.counts(); return s == 3 })
	l.mu.Lock()
	order := fmt.Sprint(l.sent)
	l.mu.Unlock()
	if order != "[ping after first]" {
		t.Fatalf("the link got %s; want [ping after first]: the DATA sent after the ping gave up must follow the ping's PDU", order)
	}
	c.Close()
	if now := settleGoroutines(before); now > before {
		t.Fatalf("goroutines: %d before, %d after", before, now)
	}
}

// TestEchoFloodBoundedBehindHeldSend (Session 20, review13): echo
// requests answered while the lane holds a PDU the link will not take
// queue their answers only up to 64 PDUs in the lane; the rest are
// dropped and counted (EchoesDropped), so a flood of them cannot grow a
// congested client's memory without bound. Mutant: sendlane.go
// linkSendAsync without the bound: nothing dropped.
func TestEchoFloodBoundedBehindHeldSend(t *testing.T) {
	self, _ := certs.NewIdentity(certs.KindClient, "flooded")
	l := &lifoLink{peer: pdu.Name{1}, done: make(chan struct{}), held: true}
	c := client.New(self, l, client.Options{})
	if _, err := c.Ping(context.Background(), pdu.Name{2}, 8, 50*time.Millisecond); !errors.Is(err, client.ErrTimeout) {
		t.Fatalf("ping over a held link: %v", err)
	}
	for i := range 200 {
		// From 200 sources (Session 21: one source alone is held to its
		// share, TestEchoShareBehindHeldSend).
		req := pdu.Header{Type: pdu.TypeEchoRequest, TTL: 8, Sequence: uint32(i), Dst: self.Name, Src: pdu.Name{3, byte(i)}, Payload: []byte("flood")}
		b, err := req.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		c.HandlePDU(b)
	}
	if got := c.EchoesDropped.Load(); got != 200-63 || c.EchoesDroppedShare.Load() != 0 {
		t.Errorf("EchoesDropped %d (for a share %d), want %d, none for a share (the lane holds the ping and 63 answers)", got, c.EchoesDroppedShare.Load(), 200-63)
	}
	l.mu.Lock()
	l.held = false
	for _, ch := range l.waiting {
		close(ch)
	}
	l.waiting = nil
	l.mu.Unlock()
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, s := l.counts(); s == 64 {
			break
		}
		if time.Now().After(end) {
			_, s := l.counts()
			t.Fatalf("%d PDUs reached the link, want the ping and 63 answers", s)
		}
	}
	c.Close()
}

// TestEchoShareBehindHeldSend (Session 21): the echo answers queued behind
// a send the link holds are shared per requester: past half of the 64
// places, one requester holding 64/(k+1) of them (k the requesters with
// answers queued) gets no more, so a peer flooding echo requests at a
// congested client takes 32 places and another's pings still find theirs.
// Mutant: linkSendAsync without the share check: the flood takes 63 places
// and the second requester's answers are dropped.
func TestEchoShareBehindHeldSend(t *testing.T) {
	self, _ := certs.NewIdentity(certs.KindClient, "flooded")
	l := &lifoLink{peer: pdu.Name{1}, done: make(chan struct{}), held: true}
	c := client.New(self, l, client.Options{})
	defer c.Close()
	if _, err := c.Ping(context.Background(), pdu.Name{2}, 8, 50*time.Millisecond); !errors.Is(err, client.ErrTimeout) {
		t.Fatalf("ping over a held link: %v", err)
	}
	echo := func(src pdu.Name, n int) {
		t.Helper()
		for i := range n {
			req := pdu.Header{Type: pdu.TypeEchoRequest, TTL: 8, Sequence: uint32(i), Dst: self.Name, Src: src, Payload: []byte("ping")}
			b, err := req.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			c.HandlePDU(b)
		}
	}
	echo(pdu.Name{3}, 200) // the flood
	if got, share := c.EchoesDropped.Load(), c.EchoesDroppedShare.Load(); got != 200-32 || share != got {
		t.Fatalf("flood: EchoesDropped %d, for its share %d; want %d, all for its share (32 places of 64)", got, share, 200-32)
	}
	echo(pdu.Name{4}, 10) // another peer's pings
	if got := c.EchoesDropped.Load(); got != 200-32 {
		t.Fatalf("the second requester's answers dropped: EchoesDropped %d, want %d", got, 200-32)
	}
	l.mu.Lock()
	l.held = false
	for _, ch := range l.waiting {
		close(ch)
	}
	l.waiting = nil
	l.mu.Unlock()
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, s := l.counts(); s == 1+32+10 {
			break
		}
		if time.Now().After(end) {
			_, s := l.counts()
			t.Fatalf("%d PDUs reached the link, want the ping, 32 and 10 answers", s)
		}
	}
	// The places are given back: with the lane empty again, answers go
	// straight to the link.
	echo(pdu.Name{3}, 5)
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, s := l.counts(); s == 1+32+10+5 {
			break
		}
		if time.Now().After(end) {
			_, s := l.counts()
			t.Fatalf("%d PDUs reached the link after the lane drained, want %d", s, 1+32+10+5)
		}
	}
}
