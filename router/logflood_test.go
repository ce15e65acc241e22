package router_test

import (
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gdpnet/gdpnet/advert"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/router"
)

// A member sending 10,000 refused advertisements (half refused whole for a
// malformed endpoint, half name by name for a malformed adcert) has every
// name counted in gdp_router_advertisements_total, and costs the log a few
// lines, not one per ADVERTISE.
func TestRefusedAdvertisementFloodLogsBounded(t *testing.T) {
	core, obs := observer.New(zap.InfoLevel)
	w := newWorld(t)
	w.log = zap.New(core)
	r := w.router("r", router.Config{Advertise: router.AdvertiseConfig{Rate: -1}}, nil)
	m := w.raw(r, certs.KindServer, "mallory")
	c, _ := newCapsule("a capsule")
	now := time.Now()
	rt := m.rtCert(r.Name(), now.Add(-time.Minute), now.Add(time.Hour)).Marshal()
	const n = 10000
	for i := 0; i < n; i++ {
		a := &advert.Advertise{Seq: seqNow(), Endpoint: m.id.Meta.Marshal(), RtCert: rt,
			Names: []advert.AdvertName{{Name: c.Meta.Name(), Target: c.Meta.Marshal(), AdCert: []byte("not an adcert")}}}
		if i%2 == 0 {
			a.Endpoint = []byte("not metadata")
		}
		if res := m.advertise(a); res.Names[0].Status != advert.StatusMalformed {
			t.Fatalf("advertisement %d: %+v, want malformed", i, res.Names[0])
		}
	}
	if got := metric(t, r, "gdp_router_advertisements_total", "result", advert.StatusMalformed.String()); got != n {
		t.Errorf("gdp_router_advertisements_total{result=malformed} = %v, want %d", got, n)
	}
	lines := obs.FilterMessage("advertisement refused").All()
	if len(lines) == 0 || len(lines) > 4 {
		t.Fatalf("%d \"advertisement refused\" lines for %d refused advertisements, want 1..4", len(lines), n)

	}
	if f := lines[0].ContextMap(); f["peer"] != m.id.Name.String() || f["reason"] != "malformed" {
		t.Errorf("line %v: want the peer and the reason", f)
	}
	if _, ok := lines[0].ContextMap()["suppressed"]; !ok {
		t.Errorf("line %v has no suppressed field", lines[0].ContextMap())
	}
}

// A member router (a spoke) sending 10,000 records of another router and
// 1,000 undecodable ones has every one counted in
// gdp_router_downstream_records_total and costs the log a line per reason,
// not one per record: one per reason and interval the flood spanned (2 s
// here, longer on a loaded machine: it may outlast the 10 s interval).
func TestRefusedDownstreamFloodLogsBounded(t *testing.T) {
	core, obs := observer.New(zap.InfoLevel)
	w := newWorld(t)
	w.log = zap.New(core)
	hub := w.router("hub", router.Config{Advertise: router.AdvertiseConfig{Rate: -1}}, nil)
	m := w.memberRouter(hub, "member")
	victim, err := w.dom.NewRouter("victim")
	if err != nil {
		t.Fatal(err)
	}
	rec := m.record(t, victim)
	junk, _ := (&pdu.Header{Type: pdu.TypeAdvertise, TTL: 1, Dst: hub.Name(), Src: m.creds.ID.Name, Payload: []byte("not a record")}).Marshal()
	downstream := func(result string) float64 {
		return metric(t, hub, "gdp_router_downstream_records_total", "result", result)
	}
	const n, bad = 10000, 1000
	start := time.Now()
	for i := 0; i < n; i++ {
		m.send(t, hub, rec)
		if i < bad {
			if err := m.link.Send(junk); err != nil {
				t.Fatal(err)
			}
		}
		if i%500 == 499 { // the in-memory link holds 1,024 PDUs
			want := float64(i + 1)
			eventually(t, "records handled", func() bool { return downstream("not_holder") == want })
		}
	}
	took := time.Since(start)
	if got := downstream("malformed"); got != bad {
		t.Errorf("malformed = %v, want %d", got, bad)
	}
	refused := obs.FilterMessage("downstream record refused").Len()
	malformed := obs.FilterMessage("malformed downstream record").Len()
	// A line opens a window of one interval: k lines need (k-1) intervals.
	most := 1 + int(took/logging.DefaultLimitInterval)
	if refused == 0 || refused > most || malformed == 0 || malformed > most {
		t.Fatalf("%d \"downstream record refused\" lines for %d records, %d \"malformed downstream record\" for %d in %s, want 1..%d each",
			refused, n, malformed, bad, took.Round(time.Millisecond), most)
	}
}
