package router_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/advert"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/router"
	"github.com/gdpnet/gdpnet/router/routertest"
)

// rawEP is an endpoint that speaks the control protocol by hand, so tests
// can send what a well-behaved client never would.
type rawEP struct {
	t    *testing.T
	id   *certs.Identity
	link *routertest.Link
	// routerSide is the router's end of link: its Dropped counts PDUs the
	// in-memory link lost because the router fell behind.
	routerSide *routertest.Link
	in         chan []byte
	seq        uint32
}

func (w *world) raw(r *testRouter, kind certs.Kind, desc string) *rawEP {
	w.t.Helper()
	id, err := certs.NewIdentity(kind, desc)
	if err != nil {
		w.t.Fatal(err)
	}
	return w.rawAs(r, id)
}

// rawAs attaches a new face of identity id to r (as a restarted endpoint
// does: a new tunnel session).
func (w *world) rawAs(r *testRouter, id *certs.Identity) *rawEP {
	w.t.Helper()
	mine, theirs := routertest.Pipe(id.Name, r.Name(), 1024)
	if _, err := r.Attach(theirs, router.FaceEndpoint, pdu.Name{}, "mem"); err != nil {
		w.t.Fatal(err)
	}
	theirs.Start(func(l *routertest.Link, p []byte) { r.HandlePDU(l, p) })
	e := &rawEP{t: w.t, id: id, link: mine, routerSide: theirs, in: make(chan []byte, 1024)}
	mine.Start(func(_ *routertest.Link, p []byte) {
		select {
		case e.in <- append([]byte(nil), p...):
		default:
		}
	})
	w.t.Cleanup(func() { _ = mine.Close(); mine.Wait() })
	return e
}

// send sends a control PDU and waits for the PDU answering its sequence.
func (e *rawEP) send(typ pdu.Type, payload []byte) pdu.Header {
	e.t.Helper()
	e.seq++
	h := pdu.Header{Type: typ, TTL: 1, Sequence: e.seq, Src: e.id.Name, Payload: payload}
	b, err := h.Marshal()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.link.Send(b); err != nil {
		e.t.Fatal(err)
	}
	timeout := time.After(3 * time.Second)
	for {
		select {
		case p := <-e.in:
			var got pdu.Header
			if pdu.Decode(p, &got) == nil && got.Sequence == e.seq && got.Type != pdu.TypeData {
				return got
			}
		case <-timeout:
			e.t.Fatalf("no answer to %s", typ)
		}
	}
}

func (e *rawEP) advertise(a *advert.Advertise) *advert.Result {
	e.t.Helper()
	b, err := advert.MarshalAdvertise(a)
	if err != nil {
		e.t.Fatal(err)
	}
	h := e.send(pdu.TypeAdvertise, b)
	if h.Type != pdu.TypeAdvertiseResult {
		e.t.Fatalf("answer is %s %s, want ADVERTISE_RESULT", h.Type, h.Code)
	}
	res, err := advert.ParseResult(h.Payload)
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

func (e *rawEP) rtCert(routerName pdu.Name, nb, na time.Time) *certs.Cert {
	e.t.Helper()
	c, err := certs.IssueRtCert(e.id, routerName, nb, na)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// expectData waits for a DATA PDU with payload want.
func (e *rawEP) expectData(want []byte) {
	e.t.Helper()
	timeout := time.After(3 * time.Second)
	for {
		select {
		case p := <-e.in:
			var h pdu.Header
			if pdu.Decode(p, &h) == nil && h.Type == pdu.TypeData && bytes.Equal(h.Payload, want) {
				return
			}
		case <-timeout:
			e.t.Fatalf("DATA %q never arrived", want)
		}
	}
}

func seqNow() uint64 { return uint64(time.Now().UnixNano()) }

// TestAdvertisementSecurity tries every kind of bad advertisement against a
// router where a legitimate server already holds capsule C. Each must be
// refused with its reason, counted, and leave C's route untouched.
func TestAdvertisementSecurity(t *testing.T) {
	w := newWorld(t)
	r := w.router("r", router.Config{}, nil)
	other := w.router("other", router.Config{}, nil)
	now := time.Now()
	hour := now.Add(time.Hour)
	ago := now.Add(-time.Minute)

	c, _ := newCapsule("the capsule")
	c2, _ := newCapsule("another capsule")
	legit := w.raw(r, certs.KindServer, "legit server")
	legitAd, _ := c.AdCert(legit.id.Name, time.Hour)
	legitRt := legit.rtCert(r.Name(), ago, hour)
	first := &advert.Advertise{Seq: seqNow(), Endpoint: legit.id.Meta.Marshal(), RtCert: legitRt.Marshal(),
		Names: []advert.AdvertName{{Name: c.Meta.Name(), Target: c.Meta.Marshal(), AdCert: legitAd.Marshal()}}}
	if res := legit.advertise(first); res.Names[0].Status != advert.StatusOK {
		t.Fatalf("legitimate advertisement refused: %+v", res.Names[0])
	}

	m := w.raw(r, certs.KindServer, "mallory")
	mRt := m.rtCert(r.Name(), ago, hour)
	capsuleEntry := func(cap *routertest.Capsule, ad *certs.Cert) advert.AdvertName {
		return advert.AdvertName{Name: cap.Meta.Name(), Target: cap.Meta.Marshal(), AdCert: ad.Marshal()}
	}
	ownerAd := func(server pdu.Name, nb, na time.Time) *certs.Cert {
		ad, err := certs.IssueAdCert(c.Owner, c.Meta.Name(), server, nb, na)
		if err != nil {
			t.Fatal(err)
		}
		return ad
	}
	forgedRt := mRt.Marshal()
	forgedRt[len(forgedRt)-1] ^= 0x01 // last byte is inside the signature
	selfSigned, _ := certs.IssueAdCert(m.id.Key, c.Meta.Name(), m.id.Name, ago, hour)
	c2Ad, _ := c2.AdCert(m.id.Name, time.Hour)

	tests := []struct {
		name string
		from *rawEP
		ad   func() *advert.Advertise
		want advert.Status
	}{
		{"forged signature", m, func() *advert.Advertise {
			return &advert.Advertise{Seq: seqNow(), Endpoint: m.id.Meta.Marshal(), RtCert: forgedRt,
				Names: []advert.AdvertName{capsuleEntry(c, ownerAd(m.id.Name, ago, hour))}}
		}, advert.StatusBadSignature},
		{"expired adcert", m, func() *advert.Advertise {
			return &advert.Advertise{Seq: seqNow(), Endpoint: m.id.Meta.Marshal(), RtCert: mRt.Marshal(),
				Names: []advert.AdvertName{capsuleEntry(c, ownerAd(m.id.Name, now.Add(-2*time.Hour), now.Add(-time.Hour)))}}
		}, advert.StatusExpired},
		{"not yet valid adcert", m, func() *advert.Advertise {
			return &advert.Advertise{Seq: seqNow(), Endpoint: m.id.Meta.Marshal(), RtCert: mRt.Marshal(),
				Names: []advert.AdvertName{capsuleEntry(c, ownerAd(m.id.Name, now.Add(time.Hour), now.Add(2*time.Hour)))}}
		}, advert.StatusNotYetValid},
		{"adcert not from the owner", m, func() *advert.Advertise {
			return &advert.Advertise{Seq: seqNow(), Endpoint: m.id.Meta.Marshal(), RtCert: mRt.Marshal(),
				Names: []advert.AdvertName{capsuleEntry(c, selfSigned)}}
		}, advert.StatusBadSignature},
		{"rtcert naming another router", m, func() *advert.Advertise {
			return &advert.Advertise{Seq: seqNow(), Endpoint: m.id.Meta.Marshal(), RtCert: m.rtCert(other.Name(), ago, hour).Marshal(),
				Names: []advert.AdvertName{capsuleEntry(c, ownerAd(m.id.Name, ago, hour))}}
		}, advert.StatusWrongSubject},
		{"chain for a different name", m, func() *advert.Advertise {
			e := capsuleEntry(c2, c2Ad)
			e.Name = c.Meta.Name()
			return &advert.Advertise{Seq: seqNow(), Endpoint: m.id.Meta.Marshal(), RtCert: mRt.Marshal(),
				Names: []advert.AdvertName{e}}
		}, advert.StatusNameMismatch},
		{"someone else's valid chain", m, func() *advert.Advertise {
			a := *first
			a.Seq = seqNow()
			return &a
		}, advert.StatusNotEndpoint},
		{"replayed old advertisement", legit, func() *advert.Advertise { return first }, advert.StatusReplay},
		{"older sequence", legit, func() *advert.Advertise {
			a := *first
			a.Seq--
			return &a
		}, advert.StatusReplay},
		{"sequence outside the clock window", legit, func() *advert.Advertise {
			a := *first
			a.Seq = uint64(now.Add(-time.Hour).UnixNano())
			return &a
		}, advert.StatusReplay},
	}
	cl := w.endpoint(r, certs.KindClient, "reader")
	advertise(t, cl)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := metric(t, r, "gdp_router_advertisements_total", "result", tc.want.String())
			res := tc.from.advertise(tc.ad())
			if len(res.Names) != 1 || res.Names[0].Status != tc.want {
				t.Fatalf("result %+v, want %s", res.Names, tc.want)
			}
			if res.Names[0].Detail == "" {
				t.Error("refusal carries no detail")
			}
			if got := metric(t, r, "gdp_router_advertisements_total", "result", tc.want.String()); got != before+1 {
				t.Errorf("advertisements_total{result=%s} = %v, want %v", tc.want, got, before+1)
			}
			// No black hole: C still routes to the legitimate server only.
			hops := r.FIB().Lookup(c.Meta.Name())
			if len(hops) != 1 || hops[0].Face.Peer() != legit.id.Name {
				t.Fatalf("route for C changed: %+v", hops)
			}
			payload := []byte{byte(i), 'd', 'a', 't', 'a'}
			if _, err := cl.Send(c.Meta.Name(), payload); err != nil {
				t.Fatal(err)
			}
			legit.expectData(payload)
		})
	}
	if got := metric(t, r, "gdp_router_advertisements_total", "result", "accepted"); got != 2 {
		t.Fatalf("accepted = %v, want 2 (the legitimate server and the reader)", got)
	}
}

func TestAdvertiseMalformedGetsNAK(t *testing.T) {
	w := newWorld(t)
	r := w.router("r", router.Config{}, nil)
	e := w.raw(r, certs.KindServer, "s")
	for _, payload := range [][]byte{nil, {0xff}, {0xa0}, bytes.Repeat([]byte{0x41}, 300)} {
		h := e.send(pdu.TypeAdvertise, payload)
		if h.Type != pdu.TypeNAK || h.Code != pdu.CodeMalformed {
			t.Fatalf("payload % x: got %s %s, want NAK MALFORMED", payload, h.Type, h.Code)
		}
	}
	if got := metric(t, r, "gdp_router_advertisements_total", "result", "malformed"); got != 4 {
		t.Fatalf("malformed = %v", got)
	}
}
