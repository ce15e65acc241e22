package capsuled

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestInboxDropsCounted (Session 13): the server's endpoint inbox is one
// for every source, before the per-requester queue; what it drops when a
// burst overflows it was counted only inside the client, so an operator saw
// requests vanish. 20,000 READs handed to a server whose inbox holds 16:
// gdp_capsuled_inbox_dropped_total is the client's count, and not zero.
func TestInboxDropsCounted(t *testing.T) {
	id, err := certs.NewIdentity(certs.KindServer, "s")
	if err != nil {
		t.Fatal(err)
	}
	net := &peerNet{self: id.Name, done: make(chan struct{})}
	net.c = client.New(id, net, client.Options{RequestTimeout: 20 * time.Millisecond, Attempts: 1, InboxSize: 16})
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := New(ctx, Config{Dir: t.TempDir(), PublishWait: 50 * time.Millisecond}, Deps{Identity: id, Client: net.c, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(); _ = net.Close() })
	req, err := (&wire.Message{Op: wire.OpRead, ID: 1, Capsule: make([]byte, 32), From: 1, To: 1}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p, err := (&pdu.Header{Type: pdu.TypeData, TTL: 32, Src: pdu.Name{7}, Dst: id.Name, Payload: req}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for range 20_000 {
		net.c.HandlePDU(p)
	}
	dropped := net.c.Dropped.Load()
	t.Logf("dropped %d of 20,000", dropped)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got *dto.Metric
	for _, mf := range mfs {
		if mf.GetName() == "gdp_capsuled_inbox_dropped_total" {
			got = mf.GetMetric()[0]
		}
	}
	if got == nil || dropped == 0 || got.GetCounter().GetValue() < float64(dropped) {
		t.Fatalf("inbox_dropped_total %v, the client dropped %d of 20,000 (inbox 16)", got, dropped)
	}
}
