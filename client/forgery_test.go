package client_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/router"
	"github.com/gdpnet/gdpnet/router/routertest"
)

// capLink is a router link for one client that records what the client
// sends; the test plays the router (and everyone else).
type capLink struct {
	peer pdu.Name
	sent chan []byte
	done chan struct{}
	once sync.Once
}

func newCapLink(router pdu.Name) *capLink {
	return &capLink{peer: router, sent: make(chan []byte, 64), done: make(chan struct{})}
}

func (l *capLink) Peer() pdu.Name { return l.peer }
func (l *capLink) Send(p []byte) error {
	l.sent <- append([]byte(nil), p...)
	return nil
}
func (l *capLink) Done() <-chan struct{} { return l.done }
func (l *capLink) Close() error          { l.once.Do(func() { close(l.done) }); return nil }

// next returns the next PDU the client sent, decoded.
func (l *capLink) next(t *testing.T) ([]byte, pdu.Header) {
	t.Helper()
	select {
	case b := <-l.sent:
		var h pdu.Header
		if err := pdu.Decode(b, &h); err != nil {
			t.Fatal(err)
		}
		return b, h
	case <-time.After(5 * time.Second):
		t.Fatal("the client sent nothing")
	}
	panic("unreachable")
}

func marshal(t *testing.T, h pdu.Header) []byte {
	t.Helper()
	b, err := h.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// nakFrom is the NAK router reporter would send about req (pdu.NAK, as
// routers build it).
func nakFrom(t *testing.T, req []byte, code pdu.Code, reporter pdu.Name) []byte {
	t.Helper()
	h, ok := pdu.NAK(req, code, reporter)
	if !ok {
		t.Fatal("no NAK")
	}
	return marshal(t, h)
}

// TestAnswersMatchedBySourceAndEcho (issue 9 item 3): answers carrying the
// right sequence — as if the id leaked — are still refused unless their
// source could have sent them and their echo is the request; the genuine
// answer is then accepted.
func TestAnswersMatchedBySourceAndEcho(t *testing.T) {
	self, _ := certs.NewIdentity(certs.KindServer, "victim")
	routerName := pdu.Name{0xee, 1}
	other := pdu.Name{0xaa, 2} // another endpoint (or anyone)
	dead := pdu.Name{0xdd, 3}  // the name pinged
	l := newCapLink(routerName)
	c := client.New(self, l, client.Options{RequestTimeout: 3 * time.Second, Attempts: 1})
	defer c.Close()

	t.Run("ping", func(t *testing.T) {
		type result struct {
			rep client.Reply
			err error
		}
		done := make(chan result, 1)
		go func() {
			rep, err := c.Ping(context.Background(), dead, 16, 3*time.Second)
			done <- result{rep, err}
		}()
		req, h := l.next(t)
		before := c.Rejected.Load()
		reply := func(src pdu.Name, payload []byte) []byte {
			return marshal(t, pdu.Header{Type: pdu.TypeEchoReply, TTL: 30, Sequence: h.Sequence, Dst: self.Name, Src: src, Payload: payload})
		}
		wrongEcho := append([]byte(nil), req...)
		wrongEcho[len(wrongEcho)-1] ^= 1 // the last payload byte
		forged := [][]byte{
			reply(other, h.Payload),                            // echo reply from someone else
			reply(dead, make([]byte, len(h.Payload))),          // from the name, without the random payload
			nakFrom(t, wrongEcho, pdu.CodeNoRoute, other),      // NAK whose echo is not the request
			nakFrom(t, req, pdu.CodeNoRoute, dead),             // NAK "from" the destination itself
			nakFrom(t, req, pdu.CodeNoRoute, self.Name),        // NAK "from" the client
			nakFrom(t, wrongEcho, pdu.CodeNoRoute, routerName), // even the router must echo the request
		}
		for _, p := range forged {
			c.HandlePDU(p)
		}
		if got := c.Rejected.Load() - before; got != uint64(len(forged)) {
			t.Fatalf("rejected %d of %d forged answers", got, len(forged))
		}
		select {
		case r := <-done:
			t.Fatalf("ping ended on a forged answer: %+v, %v", r.rep, r.err)
		default:
		}
		// The genuine answer: the router says NO_ROUTE.
		c.HandlePDU(nakFrom(t, req, pdu.CodeNoRoute, routerName))
		r := <-done
		var nak *client.NAKError
		if !errors.As(r.err, &nak) || nak.Code != pdu.CodeNoRoute || nak.Reporter != routerName {
			t.Fatalf("ping: %+v, %v; want NAK NO_ROUTE from the router", r.rep, r.err)
		}
	})

	t.Run("ping reached", func(t *testing.T) {
		done := make(chan error, 1)
		go func() {
			rep, err := c.Ping(context.Background(), dead, 16, 3*time.Second)
			if err == nil && !rep.Reached {
				err = errors.New("not reached")
			}
			done <- err
		}()
		req, h := l.next(t)
		// A NAK from a router further on the path (TTL ≥ 1) echoing the
		// request is believed; here the destination answers first.
		_ = req
		c.HandlePDU(marshal(t, pdu.Header{Type: pdu.TypeEchoReply, TTL: 30, Sequence: h.Sequence, Dst: self.Name, Src: dead, Payload: h.Payload}))
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})

	t.Run("traceroute first hop", func(t *testing.T) {
		done := make(chan client.Reply, 1)
		go func() {
			rep, _ := c.Probe(context.Background(), dead, 0, 8, 3*time.Second)
			done <- rep
		}()
		req, _ := l.next(t)
		before := c.Rejected.Load()
		// TTL 0: only the attached router can have seen it.
		c.HandlePDU(nakFrom(t, req, pdu.CodeTTLExpired, other))
		if c.Rejected.Load()-before != 1 {
			t.Fatal("a TTL_EXPIRED for a TTL-0 probe from a non-attached router was believed")
		}
		c.HandlePDU(nakFrom(t, req, pdu.CodeTTLExpired, routerName))
		if rep := <-done; rep.Code != pdu.CodeTTLExpired || rep.From != routerName {
			t.Fatalf("first hop %+v", rep)
		}
	})

	t.Run("traceroute later hop", func(t *testing.T) {
		done := make(chan client.Reply, 1)
		go func() {
			rep, _ := c.Probe(context.Background(), dead, 2, 8, 3*time.Second)
			done <- rep
		}()
		req, _ := l.next(t)
		far := pdu.Name{0xfa, 4} // a router two hops on
		c.HandlePDU(nakFrom(t, req, pdu.CodeTTLExpired, far))
		if rep := <-done; rep.Code != pdu.CodeTTLExpired || rep.From != far {
			t.Fatalf("third hop %+v", rep)
		}
	})

	t.Run("advertise", func(t *testing.T) {
		done := make(chan error, 1)
		go func() {
			_, err := c.Advertise(context.Background(), c.Self())
			done <- err
		}()
		req, h := l.next(t)
		before := c.Rejected.Load()
		c.HandlePDU(nakFrom(t, req, pdu.CodeRateLimited, other))
		c.HandlePDU(marshal(t, pdu.Header{Type: pdu.TypeAdvertiseResult, TTL: 30, Sequence: h.Sequence, Dst: self.Name, Src: other, Payload: []byte{0xa0}}))
		if got := c.Rejected.Load() - before; got != 2 {
			t.Fatalf("rejected %d of 2 forged answers to ADVERTISE", got)
		}
		select {
		case err := <-done:
			t.Fatalf("advertise ended on a forged answer: %v", err)
		default:
		}
		// The router's genuine NAK is believed.
		c.HandlePDU(nakFrom(t, req, pdu.CodeRateLimited, routerName))
		var nak *client.NAKError
		if err := <-done; !errors.As(err, &nak) || nak.Code != pdu.CodeRateLimited {
			t.Fatalf("advertise: %v, want the router's NAK", err)
		}
	})
}

// TestRequestIDsUnpredictable: a request's sequence is not the next value
// of the counter another party sees on the client's DATA PDUs.
func TestRequestIDsUnpredictable(t *testing.T) {
	self, _ := certs.NewIdentity(certs.KindServer, "victim")
	l := newCapLink(pdu.Name{0xee})
	c := client.New(self, l, client.Options{Attempts: 1})
	defer c.Close()
	for range 20 {
		s, err := c.Send(pdu.Name{1}, []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		l.next(t)
		// The probe is cancelled once it is seen on the link: since
		// Session 20 a request whose deadline passes before its PDU
		// leaves the send lane is not sent at all, and a 1 ms deadline
		// here was missed in a loaded run ("the client sent nothing").
		ctx, cancel := context.WithCancel(context.Background())
		go func() { _, _ = c.Probe(ctx, pdu.Name{2}, 1, 8, time.Second) }()
		_, h := l.next(t)
		cancel()
		if d := h.Sequence - s; d >= 1 && d <= 1<<16 {
			t.Fatalf("probe sequence %d follows DATA sequence %d", h.Sequence, s)
		}
	}
}

// attachRaw attaches an endpoint and also returns its end of the link, on
// which the test sends raw PDUs as that endpoint.
func (f *fixture) attachRaw(kind certs.Kind, opts client.Options) (*client.Client, *routertest.Link) {
	id, err := certs.NewIdentity(kind, "endpoint")
	if err != nil {
		f.t.Fatal(err)
	}
	mine, theirs := routertest.Pipe(id.Name, f.r.Name(), 4096)
	if _, err := f.r.Attach(theirs, router.FaceEndpoint, pdu.Name{}, "mem"); err != nil {
		f.t.Fatal(err)
	}
	theirs.Start(func(l *routertest.Link, p []byte) { f.r.HandlePDU(l, p) })
	c := client.New(id, mine, opts)
	mine.Start(func(_ *routertest.Link, p []byte) { c.HandlePDU(p) })
	f.t.Cleanup(func() { _ = c.Close(); mine.Wait() })
	return c, mine
}

// slowUplink delays every PDU its client sends by d (in order): a
// high-latency access link, which leaves a forger time to answer first.
type slowUplink struct {
	*routertest.Link
	q    chan []byte
	stop chan struct{}
	wg   sync.WaitGroup
}

func newSlowUplink(l *routertest.Link, d time.Duration) *slowUplink {
	u := &slowUplink{Link: l, q: make(chan []byte, 256), stop: make(chan struct{})}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			select {
			case p := <-u.q:
				time.Sleep(d)
				_ = u.Link.Send(p)
			case <-u.stop:
				return
			}
		}
	}()
	return u
}

func (u *slowUplink) Send(p []byte) error {
	u.q <- append([]byte(nil), p...)
	return nil
}

func (u *slowUplink) Close() error {
	close(u.stop)
	u.wg.Wait()
	return u.Link.Close()
}

// TestForgedAnswersFromAnotherClient (issue 9 item 3): a second client that
// learns the victim's sequence counter (from a DATA PDU the victim sends
// it) answers each of the victim's next requests first, with the sequence
// the counter predicts: a NAK for the ADVERTISE, an ECHO_REPLY for a ping
// of a dead name, a NAK for a ping of a live one. None of them is believed:
// every advertisement succeeds, no ping of the dead name reports success,
// and every honest ping is answered.
func TestForgedAnswersFromAnotherClient(t *testing.T) {
	f := newFixture(t)
	opts := client.Options{RequestTimeout: 2 * time.Second, Attempts: 1}
	id, _ := certs.NewIdentity(certs.KindServer, "victim")
	mine, theirs := routertest.Pipe(id.Name, f.r.Name(), 4096)
	if _, err := f.r.Attach(theirs, router.FaceEndpoint, pdu.Name{}, "mem"); err != nil {
		t.Fatal(err)
	}
	theirs.Start(func(l *routertest.Link, p []byte) { f.r.HandlePDU(l, p) })
	victim := client.New(id, newSlowUplink(mine, 30*time.Millisecond), opts)
	mine.Start(func(_ *routertest.Link, p []byte) { victim.HandlePDU(p) })
	t.Cleanup(func() { _ = victim.Close(); mine.Wait() })

	live := f.attach(certs.KindServer, opts)
	attacker, raw := f.attachRaw(certs.KindClient, opts)
	ctx := context.Background()
	for _, c := range []*client.Client{victim, live, attacker} {
		if _, err := c.Advertise(ctx, c.Self()); err != nil {
			t.Fatal(err)
		}
	}
	dead := pdu.Name{0xde, 0xad}

	// The victim talks to the attacker once: the attacker sees a sequence.
	if _, err := victim.Send(attacker.Name(), []byte("hello")); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	m, err := attacker.Receive(rctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	next := m.Sequence

	// forge sends, 5 ms after the victim's request left (25 ms before it
	// reaches the router), the answer built for the predicted sequence.
	forge := func(build func(seq uint32) pdu.Header) {
		next++
		time.Sleep(5 * time.Millisecond)
		h := build(next)
		if err := raw.Send(marshal(t, h)); err != nil {
			t.Error(err)
		}
	}
	nakAbout := func(req pdu.Header) pdu.Header {
		nak, _ := pdu.NAK(marshal(t, req), pdu.CodeRateLimited, attacker.Name())
		return nak
	}
	async := func(op func() error) chan error {
		ch := make(chan error, 1)
		go func() { ch <- op() }()
		return ch
	}
	const rounds = 6
	var advOK, deadReached, liveReached int
	for range rounds {
		done := async(func() error { _, err := victim.Advertise(ctx, victim.Self()); return err })
		forge(func(seq uint32) pdu.Header {
			return nakAbout(pdu.Header{Type: pdu.TypeAdvertise, TTL: 1, Sequence: seq, Dst: f.r.Name(), Src: victim.Name()})
		})
		if err := <-done; err == nil {
			advOK++
		} else {
			t.Logf("advertise: %v", err)
		}

		done = async(func() error {
			rep, err := victim.Ping(ctx, dead, 8, 2*time.Second)
			if err == nil && rep.Reached {
				deadReached++
			}
			return nil
		})
		forge(func(seq uint32) pdu.Header {
			return pdu.Header{Type: pdu.TypeEchoReply, TTL: 32, Sequence: seq, Dst: victim.Name(), Src: attacker.Name(), Payload: make([]byte, 8)}
		})
		<-done

		done = async(func() error {
			rep, err := victim.Ping(ctx, live.Name(), 8, 2*time.Second)
			if err == nil && rep.Reached {
				liveReached++
			}
			return nil
		})
		forge(func(seq uint32) pdu.Header {
			return nakAbout(pdu.Header{Type: pdu.TypeEchoRequest, TTL: 32, Sequence: seq, Dst: live.Name(), Src: victim.Name(), Payload: make([]byte, 8)})
		})
		<-done
	}
	t.Logf("advertise %d/%d, dead reached %d/%d, live reached %d/%d, rejected %d, router drops{forbidden} %v",
		advOK, rounds, deadReached, rounds, liveReached, rounds, victim.Rejected.Load(), dropped(t, f.r, "forbidden"))
	if advOK != rounds {
		t.Errorf("%d of %d advertisements failed under forged NAKs", rounds-advOK, rounds)
	}
	if deadReached != 0 {
		t.Errorf("a ping of a dead name reported success %d times", deadReached)
	}
	if liveReached != rounds {
		t.Errorf("honest pings reached %d of %d", liveReached, rounds)
	}
}

// dropped reads gdp_router_pdus_dropped_total{reason}.
func dropped(t *testing.T, r *router.Router, reason string) float64 {
	t.Helper()
	mfs, err := r.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "gdp_router_pdus_dropped_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
