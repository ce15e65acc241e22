package capsuled

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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
	if got := gatherCounter(t, reg, "gdp_capsuled_inbox_dropped_total"); dropped == 0 || got < float64(dropped) {
		t.Fatalf("inbox_dropped_total %v, the client dropped %d of 20,000 (inbox 16)", got, dropped)
	}
}

// TestInboxFloodLeavesRoom (Session 14): one source hands a server READs
// far faster than its receive loop takes them, keeping its endpoint inbox
// full; another source's READs, one every 2,000 of the flood's, are all
// answered: the inbox is split between its sources past half full
// (client.Options.InboxSize), and what the flood loses there is counted
// in gdp_capsuled_inbox_share_dropped_total. Before, the inbox was first
// come and the honest READs were dropped with the flood's excess.
func TestInboxFloodLeavesRoom(t *testing.T) {
	id, err := certs.NewIdentity(certs.KindServer, "s")
	if err != nil {
		t.Fatal(err)
	}
	net := &peerNet{self: id.Name, done: make(chan struct{})}
	net.c = client.New(id, net, client.Options{RequestTimeout: 20 * time.Millisecond, Attempts: 1, InboxSize: 64})
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := New(ctx, Config{Dir: t.TempDir(), PublishWait: 50 * time.Millisecond}, Deps{Identity: id, Client: net.c, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(); _ = net.Close() })
	flooder, honest := pdu.Name{7}, pdu.Name{8}
	answered := make(chan uint64, 64)
	net.set(func(h pdu.Header, m *wire.Message) []peerAnswer {
		if h.Dst == honest && m.IsResponse() {
			answered <- m.ID
		}
		return nil
	}, nil)
	read := func(src pdu.Name, n uint64) []byte {
		req, err := (&wire.Message{Op: wire.OpRead, ID: n, Capsule: make([]byte, 32), From: 1, To: 1}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		p, err := (&pdu.Header{Type: pdu.TypeData, TTL: 32, Src: src, Dst: id.Name, Payload: req}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	flood := read(flooder, 1)
	const tries = 10
	for i := range tries {
		for range 2_000 {
			net.c.HandlePDU(flood)
		}
		net.c.HandlePDU(read(honest, uint64(100+i)))
	}
	got := map[uint64]bool{}
	for len(got) < tries {
		select {
		case id := <-answered:
			got[id] = true
		case <-time.After(3 * time.Second):
			t.Fatalf("%d of %d honest READs answered while another source flooded the inbox (dropped %d, for their share %d)",
				len(got), tries, net.c.Dropped.Load(), net.c.DroppedShare.Load())
		}
	}
	share := gatherCounter(t, reg, "gdp_capsuled_inbox_share_dropped_total")
	t.Logf("honest %d/%d answered; the flood's 20,000: dropped %d, for its share %d (metric %v)", len(got), tries, net.c.Dropped.Load(), net.c.DroppedShare.Load(), share)
	if share == 0 || share > float64(net.c.Dropped.Load()) {
		t.Fatalf("inbox_share_dropped_total %v, the client dropped %d for their share", share, net.c.DroppedShare.Load())
	}
}

// gatherCounter is the value of the unlabelled counter name in reg.
func gatherCounter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("%s not registered", name)
	return 0
}
