package capsuled_test

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsuled"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/tunnel"
)

// slowConn delays every datagram the server sends by d, in order: a slow
// uplink, which gives a forger time to answer the server's requests first.
type slowConn struct {
	net.PacketConn
	d    time.Duration
	q    chan func()
	stop chan struct{}
	wg   sync.WaitGroup
}

func newSlowConn(pc net.PacketConn, d time.Duration) *slowConn {
	c := &slowConn{PacketConn: pc, d: d, q: make(chan func(), 4096), stop: make(chan struct{})}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			select {
			case f := <-c.q:
				f()
			case <-c.stop:
				return
			}
		}
	}()
	return c
}

func (c *slowConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	b := append([]byte(nil), p...)
	due := time.Now().Add(c.d)
	select {
	case c.q <- func() { time.Sleep(time.Until(due)); _, _ = c.PacketConn.WriteTo(b, addr) }:
	default:
	}
	return len(p), nil
}

func (c *slowConn) Close() error {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	c.wg.Wait()
	return c.PacketConn.Close()
}

// TestCreateUnderForgedNAKs (issue 9 item 3): CREATE makes the server
// advertise the capsule to its router. Another member that learns the
// server's PDU sequence counter (from an answer the server sends it) and
// NAKs the server's next sequence numbers while a CREATE is in progress
// cannot make the CREATE fail: the server's ADVERTISE carries a random id,
// believes only its router, and the router drops NAKs from endpoints.
func TestCreateUnderForgedNAKs(t *testing.T) {
	w := newWorld(t)
	n := w.router("r")

	// The server, behind a 40 ms uplink.
	sid, _ := certs.NewIdentity(certs.KindServer, "server")
	member, _ := w.dom.Member(sid)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sep, err := client.NewEndpoint(client.EndpointConfig{Identity: sid, Member: member, Domain: w.dom.ID.Meta,
		Verifier: w.dom.Verifier, Conn: newSlowConn(pc, 40*time.Millisecond), Options: client.Options{RequestTimeout: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sep.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sc, err := sep.AttachAny(ctx, []client.RouterAddr{{Addr: n.Addr(), Name: n.Router.Name()}}, client.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := capsuled.New(ctx, capsuled.Config{Dir: t.TempDir(), SyncInterval: time.Hour, PeerTimeout: time.Second},
		capsuled.Deps{Identity: sid, Client: sc, Logger: w.log.Named("server")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	owner := w.user(n, "owner")

	// The attacker: a member on a raw tunnel, watching what the server
	// sends it.
	aid, _ := certs.NewIdentity(certs.KindClient, "attacker")
	amember, _ := w.dom.Member(aid)
	var lastSeq atomic.Uint32
	var acl atomic.Pointer[client.Client]
	answered := make(chan struct{}, 16)
	apc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	aep, err := tunnel.NewEndpoint(tunnel.Config{
		Identity: tunnel.CertIdentity(aid, amember, w.dom.ID.Meta), Verify: tunnel.CertVerifier(w.dom.Verifier), Conn: apc,
		Handler: func(_ tunnel.Link, p []byte) {
			if c := acl.Load(); c != nil {
				c.HandlePDU(p)
			}
			var h pdu.Header
			if pdu.Decode(p, &h) == nil && h.Type == pdu.TypeData && h.Src == sid.Name {
				lastSeq.Store(h.Sequence)
				select {
				case answered <- struct{}{}:
				default:
				}
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = aep.Close() })
	ua := n.Tunnel.Addr()
	link, err := aep.Dial(ctx, ua, n.Router.Name(), tunnel.KindQUIC)
	if err != nil {
		t.Fatal(err)
	}
	// Its own name is advertised (answers must reach it); the same
	// tunnel also carries the raw PDUs it forges.
	ac := client.New(aid, link, client.Options{RequestTimeout: 2 * time.Second})
	acl.Store(ac)
	if _, err := ac.Advertise(ctx, ac.Self()); err != nil {
		t.Fatal(err)
	}
	send := func(h pdu.Header) {
		b, err := h.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := link.Send(b); err != nil {
			t.Fatal(err)
		}
	}

	const rounds = 5
	created := 0
	for i := range rounds {
		// Ask the server something: its answer shows its counter.
		probe, _ := (&wire.Message{Op: wire.OpMetadata, ID: uint64(i + 1), Capsule: make([]byte, 32)}).Marshal()
		send(pdu.Header{Type: pdu.TypeData, TTL: 32, Sequence: uint32(1000 + i), Dst: sid.Name, Src: aid.Name, Payload: probe})
		select {
		case <-answered:
		case <-time.After(5 * time.Second):
			t.Fatal("the server did not answer the attacker")
		}
		seen := lastSeq.Load()

		tc := newTestCapsule(t, "forged-nak target")
		places, err := client.PlaceCapsule(tc.owner, tc.meta, []certs.Name{sid.Name}, 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			done <- owner.Create(cctx, tc.owner, tc.meta, 1, places)
		}()
		// The server's ADVERTISE is on its slow uplink now: NAK the
		// sequence numbers its counter predicts.
		time.Sleep(15 * time.Millisecond)
		// (Two only: the router drops a repeat of one (source, destination,
		// type, sequence) within its dedup window, and rounds are ~3 apart.)
		for k := uint32(1); k <= 2; k++ {
			req, _ := (&pdu.Header{Type: pdu.TypeAdvertise, TTL: 1, Sequence: seen + k, Dst: n.Router.Name(), Src: sid.Name}).Marshal()
			nak, _ := pdu.NAK(req, pdu.CodeRateLimited, aid.Name)
			send(nak)
		}
		if err := <-done; err != nil {
			t.Logf("create %d: %v", i, err)
		} else {
			created++
		}
	}
	if created != rounds {
		t.Fatalf("%d of %d CREATEs failed under forged NAKs", rounds-created, rounds)
	}
}
