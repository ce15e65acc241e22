package tunnel

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gdpnet/gdpnet/certs"
)

func TestCloseSemantics(t *testing.T) {
	for _, kind := range []Kind{KindQUIC, KindRaw} {
		t.Run(kind.String(), func(t *testing.T) {
			a := newTestNode(t, true, nil)
			b := newTestNode(t, true, nil)
			la, lb := pair(t, a, b, kind)
			if la.Err() != nil {
				t.Fatalf("fresh link has error %v", la.Err())
			}
			la.Close()
			la.Close() // idempotent
			select {
			case <-la.Done():
			case <-time.After(3 * time.Second):
				t.Fatal("closed link never Done")
			}
			if !errors.Is(la.Err(), ErrClosed) {
				t.Errorf("Err after Close: %v", la.Err())
			}
			// the peer notices promptly (CONNECTION_CLOSE), not at the idle timeout
			select {
			case <-lb.Done():
			case <-time.After(3 * time.Second):
				t.Fatal("peer's link stayed up")
			}
			if err := lb.Send([]byte("x")); !errors.Is(err, ErrClosed) {
				t.Errorf("send on the peer's dead link: %v", err)
			}
			if kind == KindRaw {
				a.ep.raw.mu.RLock()
				n := len(a.ep.raw.sessions)
				a.ep.raw.mu.RUnlock()
				if n != 0 {
					t.Errorf("%d raw sessions left after close", n)
				}
			}
		})
	}
}

func TestEndpointCloseClosesLinks(t *testing.T) {
	a := newTestNode(t, true, nil)
	b := newTestNode(t, true, nil)
	la, lb := pair(t, a, b, KindRaw)
	lq, _ := pair(t, a, b, KindQUIC)
	if err := a.ep.Close(); err != nil {
		t.Fatal(err)
	}
	for _, l := range []Link{la, lq} {
		select {
		case <-l.Done():
		default:
			t.Fatal("endpoint closed but a link is not Done")
		}
	}
	<-lb.Done()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := a.ep.Accept(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("accept after close: %v", err)
	}
	if _, err := a.ep.Dial(ctx, b.ep.Addr(), b.id.Name, KindQUIC); !errors.Is(err, ErrClosed) {
		t.Errorf("dial after close: %v", err)
	}
	a.ep.Close() // idempotent
}

// goleak.VerifyTestMain checks the whole package; this checks that one
// endpoint pair with every kind of traffic leaves nothing behind.
func TestNoGoroutineLeak(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	a := newTestNode(t, true, nil)
	b := newTestNode(t, true, nil)
	la, lb := pair(t, a, b, KindRaw)
	lq, _ := pair(t, a, b, KindQUIC)
	la.Send(pattern(5000, 1))
	lq.Send(pattern(5000, 1)) // a stream
	lq.Send(pattern(100, 1))
	s, err := la.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s.Write([]byte("bulk"))
	rs, err := lb.AcceptStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rs.Read(make([]byte, 4))
	b.sink.wait(t, 3, 3*time.Second)
	a.ep.Close()
	b.ep.Close()
}

func TestBulkStream(t *testing.T) {
	a := newTestNode(t, true, nil)
	b := newTestNode(t, true, nil)
	la, lb := pair(t, a, b, KindRaw) // bulk streams work on either kind
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	want := pattern(8<<20, 5)
	errc := make(chan error, 1)
	go func() {
		s, err := la.OpenStream(ctx)
		if err != nil {
			errc <- err
			return
		}
		if _, err := s.Write(want); err != nil {
			errc <- err
			return
		}
		errc <- s.Close()
		// read the receiver's acknowledgement on the same stream
		ack, _ := io.ReadAll(s)
		if string(ack) != "got it" {
			errc <- errors.New("no ack")
		}
		errc <- nil
	}()
	s, err := lb.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("stream carried %d bytes, want %d intact", len(got), len(want))
	}
	s.Write([]byte("got it"))
	s.Close()
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

func TestRawRefusedWithoutRawSocket(t *testing.T) {
	a := newTestNode(t, true, nil)
	b := newTestNode(t, false, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.ep.Dial(ctx, b.ep.Addr(), b.id.Name, KindRaw); !errors.Is(err, ErrPeerRefused) {
		t.Fatalf("raw dial to a quic-only peer: %v", err)
	}
	if _, err := b.ep.Dial(ctx, a.ep.Addr(), a.id.Name, KindRaw); !errors.Is(err, ErrNoRaw) {
		t.Fatalf("raw dial without a raw socket: %v", err)
	}
}

func TestIdleTimeout(t *testing.T) {
	fast := func(c *Config) { c.IdleTimeout, c.KeepAlivePeriod = 300*time.Millisecond, time.Hour }
	a := newTestNode(t, false, fast)
	b := newTestNode(t, false, fast)
	la, _ := pair(t, a, b, KindQUIC)
	// silence the peer by closing its socket underneath it
	b.ep.cfg.Conn.(*net.UDPConn).Close()
	select {
	case <-la.Done():
	case <-time.After(3 * time.Second):
		t.Fatal("idle link not closed")
	}
}

func TestKeepAliveHoldsIdleLink(t *testing.T) {
	cfg := func(c *Config) { c.IdleTimeout, c.KeepAlivePeriod = 400*time.Millisecond, 100*time.Millisecond }
	a := newTestNode(t, false, cfg)
	b := newTestNode(t, false, cfg)
	la, _ := pair(t, a, b, KindQUIC)
	time.Sleep(time.Second)
	if la.Err() != nil {
		t.Fatalf("keepalive did not hold the link: %v", la.Err())
	}
}

func TestRedialer(t *testing.T) {
	a := newTestNode(t, false, nil)
	b := newTestNode(t, false, nil)
	ups := make(chan Link, 4)
	r := NewRedialer(a.ep, b.ep.Addr(), b.id.Name, KindQUIC, Backoff{Min: 20 * time.Millisecond, Max: 100 * time.Millisecond},
		func(l Link) { ups <- l }, nil)
	defer r.Close()
	first := <-ups
	if err := r.Send([]byte("one")); err != nil {
		t.Fatal(err)
	}
	b.sink.wait(t, 1, 3*time.Second)
	// the server drops the link; the redialer comes back by itself
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv, err := b.ep.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	select {
	case second := <-ups:
		if second == first {
			t.Fatal("same link twice")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no reconnection")
	}
	if err := r.Send([]byte("two")); err != nil {
		t.Fatal(err)
	}
	b.sink.wait(t, 2, 3*time.Second)
}

func TestRedialerBacksOff(t *testing.T) {
	a := newTestNode(t, false, func(c *Config) { c.HandshakeTimeout = 50 * time.Millisecond })
	dead := loopbackUDP(t) // nobody answers here
	defer dead.Close()
	r := NewRedialer(a.ep, dead.LocalAddr(), a.id.Name, KindQUIC, Backoff{Min: 10 * time.Millisecond, Max: 80 * time.Millisecond}, nil, nil)
	time.Sleep(600 * time.Millisecond)
	r.Close()
	fails := a.ep.Stats().DialsFailed
	// 50 ms handshakes plus waits of 10, 20, 40, 80, 80… ms: a handful, not hundreds
	if fails < 3 || fails > 8 {
		t.Fatalf("%d dial attempts in 600 ms", fails)
	}
	if err := r.Send([]byte("x")); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("send while down: %v", err)
	}
}

// TestSetIdentity renews a node's membership twice and checks that links
// set up after each renewal, in both directions and of both kinds, carry
// the renewed credentials: the peer sees the new expiry. An endpoint that
// kept showing an earlier certificate fails here.
func TestSetIdentity(t *testing.T) {
	a := newTestNode(t, false, nil)
	other := testIdentity(t)
	if err := a.ep.SetIdentity(other); err == nil {
		t.Fatal("changed the endpoint's name")
	}

	now := time.Now()
	d := newDomain(t)
	r, first := d.member(now.Add(-time.Hour), now.Add(time.Hour))
	srv := certNode(t, first, d.verifier())
	_, cliID := d.member(now.Add(-time.Hour), now.Add(time.Hour))
	cli := certNode(t, cliID, d.verifier())

	// check dials both ways and returns the expiry each side sees for srv.
	check := func(t *testing.T, want time.Time) {
		t.Helper()
		for _, kind := range []Kind{KindQUIC, KindRaw} {
			l, acc := pair(t, cli, srv, kind) // cli dials srv: srv is the TLS server
			if got := l.Expiry(); !got.Equal(want) {
				t.Errorf("%s: dialer sees srv expiring %v, want %v", kind, got, want)
			}
			l.Close()
			acc.Close()
			acc, l = pair(t, srv, cli, kind) // srv dials cli: srv is the TLS client
			if got := l.Expiry(); !got.Equal(want) {
				t.Errorf("%s: acceptor sees srv expiring %v, want %v", kind, got, want)
			}
			l.Close()
			acc.Close()
		}
	}
	check(t, now.Add(time.Hour).Truncate(time.Second))
	for i, na := range []time.Time{now.Add(2 * time.Hour), now.Add(3 * time.Hour)} {
		m, err := certs.IssueMember(d.domain, r.Name, now.Add(-time.Hour), na)
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.ep.SetIdentity(CertIdentity(r, m, d.domain.Meta)); err != nil {
			t.Fatalf("renewal %d: %v", i+1, err)
		}
		check(t, na.Truncate(time.Second))
	}
}

// TestCloseOnMembershipExpiry: a link closes by itself when the peer's
// membership runs out, on both sides and for both kinds.
func TestCloseOnMembershipExpiry(t *testing.T) {
	for _, kind := range []Kind{KindQUIC, KindRaw} {
		t.Run(kind.String(), func(t *testing.T) {
			t.Parallel()
			now := time.Now()
			d := newDomain(t)
			// Long enough to finish the handshake on a loaded machine.
			na := now.Add(3 * time.Second)
			_, aID := d.member(now.Add(-time.Hour), na)
			_, bID := d.member(now.Add(-time.Hour), na)
			a, b := certNode(t, aID, d.verifier()), certNode(t, bID, d.verifier())
			la, lb := pair(t, a, b, kind)
			for _, l := range []Link{la, lb} {
				if got := l.Expiry(); got.IsZero() || got.After(na) {
					t.Fatalf("link expiry %v, want at most %v", got, na)
				}
			}
			for _, l := range []Link{la, lb} {
				select {
				case <-l.Done():
				case <-time.After(time.Until(na) + 10*time.Second):
					t.Fatalf("link to %s still open after the membership expired", l.Peer())
				}
			}
			if time.Now().Before(la.Expiry()) {
				t.Fatalf("link closed before the membership expired")
			}
		})
	}
}

func TestCloseFromHandler(t *testing.T) {
	for _, kind := range []Kind{KindQUIC, KindRaw} {
		t.Run(kind.String(), func(t *testing.T) {
			a := newTestNode(t, true, nil)
			b := newTestNode(t, true, func(c *Config) { c.Handler = func(l Link, _ []byte) { l.Close() } })
			la, lb := pair(t, a, b, kind)
			la.Send([]byte("close yourself"))
			select {
			case <-lb.Done():
			case <-time.After(3 * time.Second):
				t.Fatal("Close from the Handler did not finish")
			}
			<-la.Done()
		})
	}
}
