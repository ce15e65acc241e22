package router_test

import (
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gdpnet/gdpnet/advert"
	"github.com/gdpnet/gdpnet/certs"
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
