package router_test

// Tests added by the mutation sweep (docs/SECURITY.md §2.13): each kills a
// mutant of the router's trust checks that every other test let live.

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/gdpnet/gdpnet/advert"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/internal/config"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
	"github.com/gdpnet/gdpnet/router/routertest"
)

// capsuleNames makes n capsules, each with an adcert for server.
func capsuleNames(t *testing.T, n int, server pdu.Name) []advert.AdvertName {
	t.Helper()
	out := make([]advert.AdvertName, n)
	for i := range out {
		c, err := routertest.NewCapsule("capsule")
		if err != nil {
			t.Fatal(err)
		}
		ad, err := c.AdCert(server, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = advert.AdvertName{Name: c.Meta.Name(), Target: c.Meta.Marshal(), AdCert: ad.Marshal()}
	}
	return out
}

func (e *rawEP) advertiseNames(r *testRouter, names ...advert.AdvertName) *advert.Result {
	e.t.Helper()
	now := time.Now()
	return e.advertise(&advert.Advertise{Seq: seqNow(), Endpoint: e.id.Meta.Marshal(),
		RtCert: e.rtCert(r.Name(), now.Add(-time.Minute), now.Add(time.Hour)).Marshal(), Names: names})
}

// TestAdvertiseUndecodableParts: an ADVERTISE whose CBOR is sound but whose
// endpoint metadata, rtcert, target metadata or adcert does not decode is
// refused malformed for the names concerned (not a panic, not a route).
// Mutants: advertise.go skip-if of the ParseMetadata/ParseCert errors in
// advertiseParsed and advertiseOne.
func TestAdvertiseUndecodableParts(t *testing.T) {
	w := newWorld(t)
	r := w.router("r", router.Config{}, nil)
	s := w.raw(r, certs.KindServer, "server")
	now := time.Now()
	rt := s.rtCert(r.Name(), now.Add(-time.Minute), now.Add(time.Hour)).Marshal()
	garbage := []byte{0xa1, 0x01, 0x02} // a CBOR map, not metadata or a cert

	for _, tc := range []struct {
		name     string
		endpoint []byte
		rt       []byte
	}{{"endpoint metadata", garbage, rt}, {"rtcert", s.id.Meta.Marshal(), garbage}} {
		names := capsuleNames(t, 2, s.id.Name)
		res := s.advertise(&advert.Advertise{Seq: seqNow(), Endpoint: tc.endpoint, RtCert: tc.rt, Names: names})
		for i, nr := range res.Names {
			if nr.Status != advert.StatusMalformed {
				t.Errorf("%s undecodable: name %d %s, want malformed", tc.name, i, nr.Status)
			}
			if r.FIB().Lookup(names[i].Name) != nil {
				t.Errorf("%s undecodable: name %d installed", tc.name, i)
			}
		}
	}

	good := capsuleNames(t, 3, s.id.Name)
	badTarget, badAd := good[1], good[2]
	badTarget.Target = garbage
	badAd.AdCert = garbage
	res := s.advertiseNames(r, good[0], badTarget, badAd)
	if res.Names[0].Status != advert.StatusOK {
		t.Fatalf("the sound name beside them: %s %s", res.Names[0].Status, res.Names[0].Detail)
	}
	for i, what := range map[int]string{1: "target metadata", 2: "adcert"} {
		if res.Names[i].Status != advert.StatusMalformed {
			t.Errorf("%s undecodable: %s, want malformed", what, res.Names[i].Status)
		}
		if r.FIB().Lookup(good[i].Name) != nil {
			t.Errorf("%s undecodable: name installed", what)
		}
	}
}

// TestNamesPerFaceLimit: a face holds at most max_names_per_face names
// (the limit itself is allowed); a name it already holds is renewed.
// Mutants: advertise.go:244 skip-if and boundary (>= → >).
func TestNamesPerFaceLimit(t *testing.T) {
	w := newWorld(t)
	r := w.router("r", router.Config{Advertise: router.AdvertiseConfig{MaxNamesPerFace: 2}}, nil)
	s := w.raw(r, certs.KindServer, "server")
	names := capsuleNames(t, 3, s.id.Name)
	res := s.advertiseNames(r, names...)
	want := []advert.Status{advert.StatusOK, advert.StatusOK, advert.StatusTooMany}
	for i, nr := range res.Names {
		if nr.Status != want[i] {
			t.Fatalf("name %d: %s (%s), want %s", i, nr.Status, nr.Detail, want[i])
		}
	}
	if r.FIB().Lookup(names[2].Name) != nil {
		t.Fatal("the name over the limit is installed")
	}
	if got := r.IdentityNames(s.id.Name); got != 2 {
		t.Fatalf("identity holds %d names, want 2", got)
	}
	// At the limit, a held name is renewed, a new one still refused.
	res = s.advertiseNames(r, names[0], names[2])
	if res.Names[0].Status != advert.StatusOK || res.Names[1].Status != advert.StatusTooMany {
		t.Fatalf("at the limit: %+v", res.Names)
	}
}

// TestFIBFullRefused: a name the FIB has no room for is refused fib_full,
// not answered OK without a route, and the identity's share is given back.
// Mutant: advertise.go:263 skip-if of the fib.Install error.
func TestFIBFullRefused(t *testing.T) {
	w := newWorld(t)
	r := w.router("r", router.Config{FIBSize: 2}, nil)
	s := w.raw(r, certs.KindServer, "server")
	names := capsuleNames(t, 4, s.id.Name)
	res := s.advertiseNames(r, names...)
	ok, full := 0, 0
	for i, nr := range res.Names {
		switch nr.Status {
		case advert.StatusOK:
			ok++
			if r.FIB().Lookup(names[i].Name) == nil {
				t.Errorf("name %d answered OK without a route", i)
			}
		case advert.StatusFIBFull:
			full++
		default:
			t.Errorf("name %d: %s %s", i, nr.Status, nr.Detail)
		}
	}
	if ok > 2 || full < 2 {
		t.Fatalf("%d OK, %d fib_full with a FIB of 2", ok, full)
	}
	if got := r.IdentityNames(s.id.Name); got != ok {
		t.Fatalf("identity holds %d names, %d installed", got, ok)
	}
}

// TestWithdrawChecked: an undecodable WITHDRAW is NAKed malformed, and a
// replayed one (a sequence not above the last) removes nothing.
// Mutants: advertise.go:320 and :324 skip-if (ParseWithdraw, replay check).
func TestWithdrawChecked(t *testing.T) {
	w := newWorld(t)
	r := w.router("r", router.Config{}, nil)
	s := w.raw(r, certs.KindServer, "server")
	names := capsuleNames(t, 1, s.id.Name)
	seq := seqNow()
	now := time.Now()
	res := s.advertise(&advert.Advertise{Seq: seq, Endpoint: s.id.Meta.Marshal(),
		RtCert: s.rtCert(r.Name(), now.Add(-time.Minute), now.Add(time.Hour)).Marshal(), Names: names})
	if res.Names[0].Status != advert.StatusOK {
		t.Fatalf("advertise: %+v", res.Names[0])
	}
	for _, payload := range [][]byte{{0xff}, {0xa1, 0x01, 0x02}} {
		if h := s.send(pdu.TypeWithdraw, payload); h.Type != pdu.TypeNAK || h.Code != pdu.CodeMalformed {
			t.Fatalf("withdraw % x: %s %s, want NAK MALFORMED", payload, h.Type, h.Code)
		}
	}
	b, err := advert.MarshalWithdraw(&advert.Withdraw{Seq: seq, Names: []pdu.Name{names[0].Name}})
	if err != nil {
		t.Fatal(err)
	}
	h := s.send(pdu.TypeWithdraw, b)
	wres, err := advert.ParseResult(h.Payload)
	if h.Type != pdu.TypeAdvertiseResult || err != nil {
		t.Fatalf("replayed withdraw answered %s %s (%v)", h.Type, h.Code, err)
	}
	if len(wres.Names) != 1 || wres.Names[0].Status != advert.StatusReplay {
		t.Fatalf("replayed withdraw: %+v, want replay", wres.Names)
	}
	if r.FIB().Lookup(names[0].Name) == nil {
		t.Fatal("a replayed withdraw removed the route")
	}
}

// TestNegativeRateUnlimited: advertise.rate negative means unlimited, so a
// burst of 1 does not limit an identity's names.
// Mutants: ratelimit.go:28 skip-if and drop-or-right (b.rate <= 0).
func TestNegativeRateUnlimited(t *testing.T) {
	w := newWorld(t)
	r := w.router("r", router.Config{Advertise: router.AdvertiseConfig{Rate: -1, Burst: 1}}, nil)
	s := w.raw(r, certs.KindServer, "server")
	res := s.advertiseNames(r, capsuleNames(t, 4, s.id.Name)...)
	for i, nr := range res.Names {
		if nr.Status != advert.StatusOK {
			t.Fatalf("name %d with an unlimited rate: %s %s", i, nr.Status, nr.Detail)
		}
	}
}

// TestPublishRoomForWaitingName: with the identity's share of the publish
// queue full, a name whose job is still waiting is accepted again (its job
// is replaced, it takes no more room); a new name is refused.
// Mutant: publish.go:86 skip-if (ok: the name already waits).
func TestPublishRoomForWaitingName(t *testing.T) {
	w := newWorld(t)
	slow := &slowPublish{Resolver: w.res, delay: 5 * time.Second}
	r := w.router("r", router.Config{Resolver: router.ResolverConfig{PublishQueuePerIdentity: 2}}, slow)
	s := w.raw(r, certs.KindServer, "server")
	names := capsuleNames(t, 3, s.id.Name)
	// The single publisher is busy for 5 s with the router's own record
	// or with names[0]: names[1] waits.
	if res := s.advertiseNames(r, names[0], names[1]); res.Names[0].Status != advert.StatusOK || res.Names[1].Status != advert.StatusOK {
		t.Fatalf("first advertisement: %+v", res.Names)
	}
	res := s.advertiseNames(r, names[1], names[2])
	if res.Names[0].Status != advert.StatusOK {
		t.Fatalf("a name whose job waits, advertised again: %s %s", res.Names[0].Status, res.Names[0].Detail)
	}
	if res.Names[1].Status != advert.StatusRateLimited {
		t.Fatalf("a new name with the share full: %s, want rate_limited", res.Names[1].Status)
	}
}

// TestAdvertRateRefills: the per-identity verification budget refills at
// its rate: with a burst of 1, a second name is refused at once and
// accepted once a token has come back (the bucket caps it at exactly 1).
// Mutants: ratelimit.go:40 skip-if and boundary (>= → >).
func TestAdvertRateRefills(t *testing.T) {
	w := newWorld(t)
	r := w.router("r", router.Config{Advertise: router.AdvertiseConfig{Rate: 50, Burst: 1}}, nil)
	s := w.raw(r, certs.KindServer, "server")
	names := capsuleNames(t, 3, s.id.Name)
	res := s.advertiseNames(r, names[0], names[1])
	if res.Names[0].Status != advert.StatusOK || res.Names[1].Status != advert.StatusRateLimited {
		t.Fatalf("two names with a burst of 1: %+v", res.Names)
	}
	time.Sleep(100 * time.Millisecond) // 5 tokens' worth at 50/s, capped at 1
	if res := s.advertiseNames(r, names[2]); res.Names[0].Status != advert.StatusOK {
		t.Fatalf("after the bucket refilled: %s %s", res.Names[0].Status, res.Names[0].Detail)
	}
}

// blockLookups is a resolver whose lookups never answer (until the router
// closes): every PDU to an unknown name stays parked.
type blockLookups struct{ *resolver.Static }

func (b blockLookups) LookupAll(ctx context.Context, _ pdu.Name) ([]*resolver.Record, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestResolveQueueBounds: PDUs parked while lookups run are bounded per
// name, per identity and in all, each at the configured value itself; the
// PDU beyond a bound is dropped queue_full (per identity also counted as
// a quota refusal), never parked.
// Mutants: resolve.go:170 (max_waiting) skip-if and boundary, :176
// boundary (o.parked >= per identity), :184 (per name) skip-if and
// boundary.
func TestResolveQueueBounds(t *testing.T) {
	w := newWorld(t)
	a := w.router("a", router.Config{Resolver: router.ResolverConfig{
		MaxWaiting: 4, MaxWaitingPerIdentity: 3, MaxWaitingPerName: 2, Timeout: config.Duration(time.Minute),
	}}, blockLookups{w.res})
	x := w.endpoint(a, certs.KindClient, "x")
	advertise(t, x)
	y := w.endpoint(a, certs.KindClient, "y")
	advertise(t, y)
	waiting := func() float64 { return metric(t, a, "gdp_router_resolve_waiting_pdus", "", "") }
	full := func() float64 { return metric(t, a, "gdp_router_pdus_dropped_total", "reason", "queue_full") }
	quota := func() float64 { return metric(t, a, "gdp_router_quota_refusals_total", "reason", "resolve_queue") }
	step := 0
	send := func(c *client.Client, dst byte, wantWaiting, wantFull, wantQuota float64) {
		t.Helper()
		step++
		if _, err := c.Send(pdu.Name{0xee, dst}, []byte("x")); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the PDU parked or dropped", func() bool { return waiting()+full() == float64(step) })
		if waiting() != wantWaiting || full() != wantFull || quota() != wantQuota {
			t.Fatalf("step %d: waiting %v queue_full %v quota %v, want %v %v %v",
				step, waiting(), full(), quota(), wantWaiting, wantFull, wantQuota)
		}
	}
	send(x, 1, 1, 0, 0)
	send(x, 1, 2, 0, 0)
	send(x, 1, 2, 1, 0) // a third PDU for one name: over max_waiting_per_name 2
	send(x, 2, 3, 1, 0)
	send(x, 3, 3, 2, 1) // x's fourth: over max_waiting_per_identity 3
	send(y, 4, 4, 2, 1)
	send(y, 5, 4, 3, 1) // the fifth in all: over max_waiting 4
}

// memberRouter is a member router of w's domain attached to hub over a
// router face, sending by hand what an honest router never would.
type memberRouter struct {
	creds *routertest.Router
	link  *routertest.Link
}

func (w *world) memberRouter(hub *testRouter, desc string) *memberRouter {
	w.t.Helper()
	rc, err := w.dom.NewRouter(desc)
	if err != nil {
		w.t.Fatal(err)
	}
	mine, theirs := routertest.Pipe(rc.ID.Name, hub.Name(), 1024)
	if _, err := hub.Attach(theirs, router.FaceRouter, w.dom.ID.Name, "mem"); err != nil {
		w.t.Fatal(err)
	}
	theirs.Start(func(l *routertest.Link, p []byte) { hub.HandlePDU(l, p) })
	mine.Start(func(*routertest.Link, []byte) {})
	w.t.Cleanup(func() { _ = mine.Close(); mine.Wait() })
	return &memberRouter{creds: rc, link: mine}
}

// record makes a valid location record, held by holder, of a self-minted
// endpoint name.
func (m *memberRouter) record(t *testing.T, holder *routertest.Router) *resolver.Record {
	t.Helper()
	ep, err := certs.NewIdentity(certs.KindClient, "self-minted")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	rt, err := certs.IssueRtCert(ep, holder.ID.Name, now.Add(-time.Minute), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	chain := &certs.Chain{Target: ep.Meta, RtCert: rt, Router: holder.ID.Meta, Member: holder.Member, Domain: holder.Domain}
	rec, err := resolver.NewLocation(holder.ID.Key, ep.Name, chain, []string{"127.0.0.1:9"}, 1, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func (m *memberRouter) send(t *testing.T, hub *testRouter, rec *resolver.Record) {
	t.Helper()
	b, err := rec.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p, _ := (&pdu.Header{Type: pdu.TypeAdvertise, TTL: 1, Dst: hub.Name(), Src: m.creds.ID.Name, Payload: b}).Marshal()
	if err := m.link.Send(p); err != nil {
		t.Fatal(err)
	}
}

// TestDownstreamRecordChecks: a record a member router sends on its
// tunnel is stored only when it is that router's own location record,
// within the router's share of the verification budget, and when there is
// a resolver to store it in; each refusal is counted by its reason.
// Mutants: upstream.go:189 skip-if (no resolver: a nil dereference), :193
// skip-if and drop-or-right (the per-identity budget), :203 drop-or-left
// (a border record), :244 skip-if (the resolver's refusal counted stored).
func TestDownstreamRecordChecks(t *testing.T) {
	w := newWorld(t)
	downstream := func(r *testRouter, result string) float64 {
		return metric(t, r, "gdp_router_downstream_records_total", "result", result)
	}

	t.Run("budget", func(t *testing.T) {
		hub := w.router("hub", router.Config{Advertise: router.AdvertiseConfig{Rate: 0.001, Burst: 1}}, nil)
		m := w.memberRouter(hub, "member")
		first, second := m.record(t, m.creds), m.record(t, m.creds)
		m.send(t, hub, first)
		m.send(t, hub, second)
		eventually(t, "both records handled", func() bool { return downstream(hub, "stored")+downstream(hub, "rate_limited") == 2 })
		if downstream(hub, "stored") != 1 {
			t.Fatalf("stored %v, rate_limited %v, want 1 and 1", downstream(hub, "stored"), downstream(hub, "rate_limited"))
		}
		if _, err := w.res.Lookup(context.Background(), second.Name); err == nil {
			t.Fatal("the record over the budget is in the resolver")
		}
	})

	t.Run("another router's record", func(t *testing.T) {
		hub := w.router("hub2", router.Config{}, resolver.NewStatic(&resolver.Verifier{Certs: w.dom.Verifier}))
		m := w.memberRouter(hub, "member2")
		victim, err := w.dom.NewRouter("victim")
		if err != nil {
			t.Fatal(err)
		}
		// Valid and signed by its holder, but relayed by another router.
		m.send(t, hub, m.record(t, victim))
		eventually(t, "the record refused", func() bool { return downstream(hub, "not_holder") == 1 })
		// A global-tier (border) record of the member's own endpoint: only
		// location records come from downstream.
		own := m.record(t, m.creds)
		border, err := resolver.NewBorder(m.creds.ID.Key, m.creds.ID.Meta, m.creds.Member, own.Name, own.Chain, own.Addrs, 1, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		m.send(t, hub, border)
		eventually(t, "the border record refused", func() bool { return downstream(hub, "not_holder") == 2 })
		if downstream(hub, "stored") != 0 {
			t.Fatal("a record not the member's own location record was stored")
		}
	})

	t.Run("refused by the resolver", func(t *testing.T) {
		hub := w.router("hub4", router.Config{}, resolver.NewStatic(&resolver.Verifier{Certs: w.dom.Verifier}))
		m := w.memberRouter(hub, "member4")
		ep, err := certs.NewIdentity(certs.KindClient, "expired")
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		rt, err := certs.IssueRtCert(ep, m.creds.ID.Name, now.Add(-2*time.Hour), now.Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		chain := &certs.Chain{Target: ep.Meta, RtCert: rt, Router: m.creds.ID.Meta, Member: m.creds.Member, Domain: m.creds.Domain}
		rec, err := resolver.NewLocation(m.creds.ID.Key, ep.Name, chain, []string{"127.0.0.1:9"}, 1, now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		m.send(t, hub, rec)
		eventually(t, "the record refused", func() bool { return downstream(hub, "refused") == 1 })
		if downstream(hub, "stored") != 0 {
			t.Fatal("a record the resolver refused is counted stored")
		}
	})

	t.Run("no resolver", func(t *testing.T) {
		rc, err := w.dom.NewRouter("lone")
		if err != nil {
			t.Fatal(err)
		}
		rr, err := router.New(router.Config{Listen: "127.0.0.1:9"}, router.Deps{
			Identity: rc.ID, Member: rc.Member, Domain: rc.Domain, Verifier: w.dom.Verifier, Logger: zaptest.NewLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = rr.Close() })
		hub := &testRouter{Router: rr, creds: rc}
		m := w.memberRouter(hub, "member3")
		m.send(t, hub, m.record(t, m.creds))
		eventually(t, "the record dropped", func() bool { return downstream(hub, "no_resolver") == 1 })
	})
}

// TestWithdrawFromRouterFaceDropped: a WITHDRAW is an endpoint's control
// message; on a router face it is dropped forbidden, unanswered.
// Mutant: forward.go:59 skip-if (in.kind != FaceEndpoint).
func TestWithdrawFromRouterFaceDropped(t *testing.T) {
	w := newWorld(t)
	hub := w.router("hub", router.Config{}, nil)
	m := w.memberRouter(hub, "member")
	b, err := advert.MarshalWithdraw(&advert.Withdraw{Seq: seqNow(), Names: []pdu.Name{{1}}})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := (&pdu.Header{Type: pdu.TypeWithdraw, TTL: 1, Dst: hub.Name(), Src: m.creds.ID.Name, Payload: b}).Marshal()
	if err := m.link.Send(p); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the WITHDRAW dropped", func() bool {
		return metric(t, hub, "gdp_router_pdus_dropped_total", "reason", "forbidden") == 1
	})
}

// TestMaxPDUIsInclusive: a PDU of exactly max_pdu bytes is forwarded, one
// byte more is refused too_big.
// Mutant: forward.go:40 boundary (> → >=).
func TestMaxPDUIsInclusive(t *testing.T) {
	w := newWorld(t)
	r := w.router("r", router.Config{MaxPDU: 1000}, nil)
	a := w.endpoint(r, certs.KindClient, "a")
	b := w.endpoint(r, certs.KindServer, "b")
	advertise(t, a)
	advertise(t, b)
	payload := make([]byte, 1000-pdu.HeaderLen)
	if _, err := a.Send(b.Name(), payload); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, b); len(m.Payload) != len(payload) {
		t.Fatalf("got %d payload bytes, want %d", len(m.Payload), len(payload))
	}
	if _, err := a.Send(b.Name(), append(payload, 0)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the PDU one byte over refused", func() bool {
		return metric(t, r, "gdp_router_pdus_dropped_total", "reason", "too_big") == 1
	})
}

// TestLearnRouteOutcomes: what a lookup comes to, as a member sees it and
// as the lookups metric counts it. A name whose only record names this
// router (a stale record: nothing attached here holds it) is NO_ROUTE,
// counted stale. A name whose only holder cannot be reached (no tunnel, no
// dial, no upstream) is NO_ROUTE, counted found, and remembered: more
// PDUs to it are answered from the negative cache, not looked up again.
// A name the resolver does not know goes to the upstream, which holds it.
// Mutants: resolve.go:484 skip-case (a record naming this router taken as
// a holder), :498 skip-if (an unreachable holder counted installed), :528
// boundary (no forbidden record called forbidden), :531 skip-case (an
// unreachable holder counted stale), :467 skip-if (no upstream fallback).
func TestLearnRouteOutcomes(t *testing.T) {
	w := newWorld(t)
	resOf := func() *resolver.Static {
		s := resolver.NewStatic(&resolver.Verifier{Certs: w.dom.Verifier})
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	hubRes, spokeRes := resOf(), resOf()
	hub := w.router("hub", router.Config{}, hubRes)
	hubName := hub.Name()
	spoke := w.router("spoke", router.Config{Peers: []router.PeerConfig{{Name: hubName, Addr: "127.0.0.1:9"}}, Upstream: &hubName}, spokeRes)
	c := w.endpoint(hub, certs.KindClient, "client at the hub")
	advertise(t, c)
	ghost, err := w.dom.NewRouter("ghost") // a member router that is not running
	if err != nil {
		t.Fatal(err)
	}
	stale := (*memberRouter)(nil).record(t, hub.creds)
	gone := (*memberRouter)(nil).record(t, ghost)
	for _, rec := range []*resolver.Record{stale, gone} {
		if err := hubRes.Publish(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
	}
	lookups := func(result string) float64 {
		return metric(t, hub, "gdp_router_resolver_lookups_total", "result", result)
	}
	ping := func(dst pdu.Name, what string) {
		t.Helper()
		var nak *client.NAKError
		if _, err := c.Ping(context.Background(), dst, 8, time.Second); !errors.As(err, &nak) || nak.Code != pdu.CodeNoRoute {
			t.Fatalf("ping %s: %v, want NAK NO_ROUTE", what, err)
		}
	}
	ping(stale.Name, "a name whose record names this router")
	if lookups("stale") != 1 || lookups("found") != 0 || lookups("forbidden") != 0 {
		t.Fatalf("lookups stale %v found %v forbidden %v, want 1 0 0", lookups("stale"), lookups("found"), lookups("forbidden"))
	}
	for range 3 {
		ping(gone.Name, "a name held by a router that cannot be reached")
	}
	if lookups("found") != 1 || lookups("stale") != 1 {
		t.Fatalf("after three pings of an unreachable holder's name: lookups found %v stale %v, want 1 (then the negative cache) and 1",
			lookups("found"), lookups("stale"))
	}

	// The spoke's resolver knows nothing of the hub's client: the spoke
	// sends toward its upstream, which holds it.
	w.connect(hub, spoke)
	e := w.endpoint(spoke, certs.KindClient, "endpoint at the spoke")
	advertise(t, e)
	eventually(t, "the hub's resolver to hold the spoke's record (for the answer)", func() bool {
		rec, err := hubRes.Lookup(context.Background(), e.Name())
		return err == nil && rec.Router() == spoke.Name()
	})
	if _, err := e.Ping(context.Background(), c.Name(), 8, 5*time.Second); err != nil {
		t.Fatalf("ping through the upstream: %v", err)
	}
}
