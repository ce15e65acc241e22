package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/router/routertest"
)

// quicTestBytes is how much TestQUICOverNamesIntact moves: 32 MiB by
// default (8–10 s on a loaded 2-core machine), GDP_QUIC_BYTES if set.
// `make bench` runs it with the 100 MB (20–30 s there).
func quicTestBytes(t *testing.T) int64 {
	if s := os.Getenv("GDP_QUIC_BYTES"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("GDP_QUIC_BYTES: %v", err)
		}
		return n
	}
	return 32 << 20
}

// patternReader yields n pseudo-random bytes (ChaCha8, fixed seed).
func patternReader(n int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{'g', 'd', 'p'}), n)
}

// listenAccept starts a listener on c's name that reads every stream of the
// first connection to the end and reports the SHA-256 and length of what it
// read.
type received struct {
	sum  [32]byte
	n    int64
	peer pdu.Name
	err  error
}

func serveOne(t testing.TB, ln *NameListener) <-chan received {
	out := make(chan received, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		nc, err := ln.Accept(ctx)
		if err != nil {
			out <- received{err: err}
			return
		}
		s, err := nc.AcceptStream(ctx)
		if err != nil {
			out <- received{err: err}
			return
		}
		h := sha256.New()
		n, err := io.Copy(h, s)
		var r received
		copy(r.sum[:], h.Sum(nil))
		r.n, r.err, r.peer = n, err, nc.Peer()
		_, _ = s.Write([]byte("ok"))
		_ = s.Close()
		out <- r
	}()
	return out
}

// TestQUICOverNamesIntact: a QUIC connection over the overlay, from an
// endpoint behind router b to one behind router a (two routers, real QUIC
// tunnels on loopback), moves 100 MB on one stream; the receiver's SHA-256
// equals the sender's. The listener sees the dialer's proven name.
//
// The same runs with every tunnel raw GDP-in-UDP, the same size: the raw
// path (sendmmsg/GSO batches, hop-by-hop frames) carries make bench's
// 100 MB check too.
func TestQUICOverNamesIntact(t *testing.T) {
	t.Run("quic-tunnels", func(t *testing.T) { quicIntact(t, newQUICWorld(t), quicTestBytes(t)) })
	t.Run("raw-tunnels", func(t *testing.T) { quicIntact(t, newQUICWorldRaw(t, true), quicTestBytes(t)) })
}

func quicIntact(t *testing.T, w *quicWorld, size int64) {
	x, _ := w.endpoint(w.a, "listener")
	y, ye := w.endpoint(w.b, "dialer")
	w.reach(y, x.Name())
	w.reach(x, y.Name())

	ln, err := ListenName(x, x.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := serveOne(t, ln)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nc, err := DialName(ctx, y, x.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.CloseWithError(0, "")
	if nc.Peer() != x.Name() {
		t.Fatalf("dialer's peer %s, want %s", nc.Peer(), x.Name())
	}
	s, err := nc.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	start := time.Now()
	if _, err := io.Copy(io.MultiWriter(s, h), patternReader(size)); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	r := <-got
	elapsed := time.Since(start)
	if r.err != nil {
		t.Fatal(r.err)
	}
	var want [32]byte
	copy(want[:], h.Sum(nil))
	if r.n != size || r.sum != want {
		t.Fatalf("received %d bytes, SHA-256 %x; sent %d, %x", r.n, r.sum, size, want)
	}
	if r.peer != y.Name() {
		t.Fatalf("listener's peer %s, want the dialer %s", r.peer, y.Name())
	}
	ack, _ := io.ReadAll(s)
	if string(ack) != "ok" {
		t.Fatalf("answer %q", ack)
	}
	if frames := ye.ep.Stats().FramesSent; w.raw && frames < uint64(size/quicPacketMax) {
		t.Fatalf("raw tunnels: the dialer sent %d raw frames for %d bytes", frames, size)
	}
	t.Logf("%d bytes intact in %v (%.1f MB/s); dialer %+v; listener %+v", size, elapsed.Round(time.Millisecond),
		float64(size)/1e6/elapsed.Seconds(), y.QUICStats(), x.QUICStats())
}

// TestQUICWrongNameRefused: a name routed to an endpoint whose certificate
// proves another name (here: a capsule name the endpoint hosts, served
// with the endpoint's own certificate) — the dialer refuses it.
func TestQUICWrongNameRefused(t *testing.T) {
	w := newQUICWorld(t)
	x, _ := w.endpoint(w.a, "impostor")
	y, _ := w.endpoint(w.b, "dialer")
	other := hostName(t, w, x)
	w.reach(y, other)

	// x answers QUIC for other with its own certificate.
	o := (*QUICConfig)(nil).withDefaults()
	e, err := x.quicEnd(other, &o)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := x.quicTLS(&o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := e.tr.Listen(tc, o.quic())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			if _, err := ln.Accept(context.Background()); err != nil {
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	nc, err := DialName(ctx, y, other, nil)
	if err == nil {
		nc.CloseWithError(0, "")
		t.Fatal("dial of a name the peer's certificate does not prove succeeded")
	}
	if !errors.Is(err, ErrWrongName) {
		t.Fatalf("dial: %v, want ErrWrongName", err)
	}
	// The same endpoint by its own name is fine.
	ln2, err := ListenName(x, x.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	go func() {
		if c, err := ln2.Accept(ctx); err == nil {
			<-c.Context().Done()
		}
	}()
	w.reach(y, x.Name())
	nc, err = DialName(ctx, y, x.Name(), nil)
	if err != nil {
		t.Fatalf("dial by the proven name: %v", err)
	}
	nc.CloseWithError(0, "")
}

// hostName advertises a capsule name hosted by c and returns it.
func hostName(t *testing.T, w *quicWorld, c *Client) pdu.Name {
	t.Helper()
	cp, err := routertest.NewCapsule("hosted")
	if err != nil {
		t.Fatal(err)
	}
	ad, err := cp.AdCert(c.Name(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Advertise(ctx, CapsuleRoute(cp.Meta, ad)); err != nil {
		t.Fatal(err)
	}
	return cp.Meta.Name()
}

// TestQUICGarbageDropped: PDUs with the QUIC content option that are not
// QUIC packets, are QUIC-looking garbage, or go to a name nobody listens
// on are dropped and counted; a DATA PDU without the option still reaches
// Receive; a live connection carries on.
func TestQUICGarbageDropped(t *testing.T) {
	w := newQUICWorld(t)
	x, _ := w.endpoint(w.a, "listener")
	y, _ := w.endpoint(w.b, "sender")
	hosted := hostName(t, w, x)
	w.reach(y, x.Name())
	w.reach(x, y.Name())
	w.reach(y, hosted)
	ln, err := ListenName(x, x.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := serveOne(t, ln)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nc, err := DialName(ctx, y, x.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.CloseWithError(0, "")
	s, err := nc.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("before ")); err != nil {
		t.Fatal(err)
	}

	send := func(dst pdu.Name, payload []byte) {
		t.Helper()
		h := pdu.Header{Type: pdu.TypeData, TTL: 32, Sequence: y.nextSeq(), Dst: dst, Src: y.Name(), Payload: payload}
		if err := h.AddOption(pdu.OptContent, []byte{pdu.ContentQUIC}); err != nil {
			t.Fatal(err)
		}
		b, err := h.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := y.link.Send(b); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const each = 20
	for i := range each {
		// Not QUIC: the fixed bit is clear.
		send(x.Name(), []byte{0x00, byte(i), 1, 2, 3})
		// QUIC-looking garbage: short headers with unknown connection IDs
		// and long headers that do not parse.
		g := make([]byte, 40+rng.IntN(1000))
		for j := range g {
			g[j] = byte(rng.Uint32())
		}
		g[0] = 0x40 | g[0]&0x3f
		send(x.Name(), g)
		g2 := bytes.Clone(g)
		g2[0] = 0xc0
		send(x.Name(), g2)
		// To a name x holds but serves no QUIC on.
		send(hosted, g)
	}
	// An ordinary DATA PDU still reaches Receive.
	if _, err := y.Send(x.Name(), []byte("plain")); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := x.Receive(ctx)
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		if m.Type == pdu.TypeNAK {
			continue // about an earlier ping's reply, sent before the route was learned
		}
		if m.Type != pdu.TypeData || string(m.Payload) != "plain" {
			t.Fatalf("receive: %s from %s, %d bytes, not the plain DATA PDU", m.Type, m.Src, len(m.Payload))
		}
		break
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := x.QUICStats()
		if st.Dropped["not_quic"] >= each && st.Dropped["undecodable"] >= 2*each && st.Dropped["no_listener"] >= each {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("drops not counted: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := s.Write([]byte("and after")); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	r := <-got
	if r.err != nil || r.n != int64(len("before and after")) {
		t.Fatalf("stream after garbage: %+v", r)
	}
	t.Logf("listener %+v", x.QUICStats())
}

// TestQUICPeerLimit: with max_conns_per_peer 2, a third connection from
// the same identity is refused (counted) while another identity still gets
// in; once one of the two closes, the first identity may connect again.
func TestQUICPeerLimit(t *testing.T) {
	w := newQUICWorld(t)
	x, _ := w.endpoint(w.a, "listener")
	y, _ := w.endpoint(w.b, "greedy")
	z, _ := w.endpoint(w.b, "other")
	w.reach(y, x.Name())
	w.reach(z, x.Name())
	w.reach(x, y.Name())
	w.reach(x, z.Name())
	ln, err := ListenName(x, x.Name(), &QUICConfig{MaxConnsPerPeer: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := ListenName(x, x.Name(), nil); !errors.Is(err, ErrNameInUse) {
		t.Fatalf("second listener on one name: %v, want ErrNameInUse", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	accepted := make(chan *NameConn, 8)
	go func() {
		for {
			c, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	// use proves a connection is served: the listener accepts it.
	dial := func(c *Client) (*NameConn, error) {
		nc, err := DialName(ctx, c, x.Name(), nil)
		if err != nil {
			return nil, err
		}
		select {
		case <-accepted:
			return nc, nil
		case <-nc.Context().Done():
			return nil, context.Cause(nc.Context())
		case <-time.After(10 * time.Second):
			nc.CloseWithError(0, "")
			return nil, errors.New("not accepted within 10 s")
		}
	}
	var open []*NameConn
	for i := range 2 {
		nc, err := dial(y)
		if err != nil {
			t.Fatalf("connection %d of the greedy peer: %v", i+1, err)
		}
		open = append(open, nc)
	}
	if nc, err := dial(y); err == nil {
		nc.CloseWithError(0, "")
		t.Fatal("third connection of one peer accepted over max_conns_per_peer 2")
	}
	if got := x.QUICStats().RefusedPeerLimit; got < 1 {
		t.Fatalf("refusal not counted: %d", got)
	}
	nz, err := dial(z)
	if err != nil {
		t.Fatalf("another peer refused: %v", err)
	}
	nz.CloseWithError(0, "")
	open[0].CloseWithError(0, "")
	// The listener learns of the close a moment later.
	deadline := time.Now().Add(10 * time.Second)
	for {
		nc, err := dial(y)
		if err == nil {
			nc.CloseWithError(0, "")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after closing one, the peer still cannot connect: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	open[1].CloseWithError(0, "")
}

// TestQUICDialUnreachable: a dial of a name nobody holds fails with the
// routers' NO_ROUTE at once, not at the handshake timeout.
func TestQUICDialUnreachable(t *testing.T) {
	w := newQUICWorld(t)
	y, _ := w.endpoint(w.b, "dialer")
	nobody := pdu.Name{0x42, 0x42}
	start := time.Now()
	_, err := DialName(context.Background(), y, nobody, &QUICConfig{HandshakeTimeout: 30 * time.Second})
	var nak *NAKError
	if !errors.As(err, &nak) || nak.Code != pdu.CodeNoRoute {
		t.Fatalf("dial of an unheld name: %v, want a NO_ROUTE NAK", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("dial failed only after %v", d)
	}
	if y.QUICStats().Dropped["nak"] == 0 {
		t.Fatal("NAK not counted")
	}
}

// TestQUICUntrustedDialerRefused: a dialer whose QUIC certificate carries a
// membership of a domain the listener does not trust gets no connection:
// the listener refuses it in the handshake and never hands it out.
func TestQUICUntrustedDialerRefused(t *testing.T) {
	w := newQUICWorld(t)
	x, _ := w.endpoint(w.a, "listener")
	y, _ := w.endpoint(w.b, "stranger")
	w.reach(y, x.Name())
	w.reach(x, y.Name())
	other, err := routertest.NewDomain("another domain")
	if err != nil {
		t.Fatal(err)
	}
	m, err := other.Member(y.id)
	if err != nil {
		t.Fatal(err)
	}
	// y shows the other domain's membership but still believes x's.
	if err := y.SetQUICCredentials(m, other.ID.Meta, w.dom.Verifier); err != nil {
		t.Fatal(err)
	}
	ln, err := ListenName(x, x.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	accepted := make(chan *NameConn, 1)
	go func() {
		if c, err := ln.Accept(ctx); err == nil {
			accepted <- c
		}
	}()
	nc, err := DialName(ctx, y, x.Name(), nil)
	if err == nil {
		// TLS 1.3: the client may finish before the server has checked its
		// certificate; then the refusal closes the connection.
		select {
		case <-nc.Context().Done():
		case <-time.After(10 * time.Second):
			t.Fatal("an untrusted dialer's connection stayed open")
		}
	}
	select {
	case c := <-accepted:
		t.Fatalf("listener accepted an untrusted dialer %s", c.Peer())
	case <-time.After(time.Second):
	}
	// With its own domain's membership again it gets in.
	if err := y.SetQUICCredentials(mustMember(t, w, y), w.dom.ID.Meta, w.dom.Verifier); err != nil {
		t.Fatal(err)
	}
	nc, err = DialName(ctx, y, x.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.CloseWithError(0, "")
	select {
	case c := <-accepted:
		if c.Peer() != y.Name() {
			t.Fatalf("accepted peer %s, want %s", c.Peer(), y.Name())
		}
	case <-ctx.Done():
		t.Fatal("trusted dialer not accepted")
	}
}

func mustMember(t *testing.T, w *quicWorld, c *Client) *certs.Cert {
	t.Helper()
	m, err := w.dom.Member(c.id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
