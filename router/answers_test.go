package router_test

import (
	"context"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/router"
)

// TestEndpointCannotSendNAKs (issue 9 item 3): only routers originate NAKs
// and ADVERTISE_RESULTs, and endpoints rely on it (PROTOCOL.md §1.9): one
// sent by an endpoint — from a name it holds, so past the source check —
// is dropped and counted, and never reaches the endpoint it names.
func TestEndpointCannotSendNAKs(t *testing.T) {
	w := newWorld(t)
	r := w.router("r", router.Config{}, nil)
	victim := w.endpoint(r, certs.KindServer, "victim")
	advertise(t, victim)
	id, _ := certs.NewIdentity(certs.KindClient, "forger")
	forger, raw := w.attachLink(r, id)
	advertise(t, forger)

	req, _ := (&pdu.Header{Type: pdu.TypeEchoRequest, TTL: 32, Sequence: 7, Dst: pdu.Name{9}, Src: victim.Name(), Payload: make([]byte, 8)}).Marshal()
	nak, _ := pdu.NAK(req, pdu.CodeNoRoute, forger.Name())
	result := pdu.Header{Type: pdu.TypeAdvertiseResult, TTL: 32, Sequence: 8, Dst: victim.Name(), Src: forger.Name(), Payload: []byte{0xa0}}
	before := metric(t, r, "gdp_router_pdus_dropped_total", "reason", "forbidden")
	for _, h := range []pdu.Header{nak, result} {
		b, err := h.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := raw.Send(b); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "both forged answers dropped", func() bool {
		return metric(t, r, "gdp_router_pdus_dropped_total", "reason", "forbidden")-before == 2
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if m, err := victim.Receive(ctx); err == nil {
		t.Fatalf("the victim received a forged %s from %s", m.Type, m.Src)
	}
	// The forger's ordinary traffic still flows.
	if rep, err := forger.Ping(context.Background(), victim.Name(), 8, time.Second); err != nil || !rep.Reached {
		t.Fatalf("forger's ping: %+v, %v", rep, err)
	}
}
