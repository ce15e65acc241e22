package client

import (
	"context"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestInboxShares: a source flooding a client that does not keep up is
// stopped at about half the inbox (counted in Dropped and DroppedShare);
// two other sources arriving afterwards still find room for their PDUs;
// once Receive has taken the flood's PDUs, the flooder may send again.
func TestInboxShares(t *testing.T) {
	me, err := certs.NewIdentity(certs.KindServer, "busy server")
	if err != nil {
		t.Fatal(err)
	}
	net := &fakeNet{self: me.Name, done: make(chan struct{})}
	const inbox = 64
	c := New(me, net, Options{InboxSize: inbox})
	t.Cleanup(func() { _ = c.Close(); _ = net.Close() })
	deliver := func(src pdu.Name, n int) {
		for i := range n {
			b, err := (&pdu.Header{Type: pdu.TypeData, TTL: 32, Sequence: uint32(i), Src: src, Dst: me.Name, Payload: []byte{byte(i)}}).Marshal()
			if err != nil {
				t.Fatal(err)
			}
			c.HandlePDU(b)
		}
	}
	flood, a, b := pdu.Name{1}, pdu.Name{2}, pdu.Name{3}
	deliver(flood, 1000)
	if got := len(c.inbox); got != inbox/2 {
		t.Fatalf("the flood holds %d of an inbox of %d, want half (%d)", got, inbox, inbox/2)
	}
	if c.DroppedShare.Load() != 1000-inbox/2 || c.Dropped.Load() != c.DroppedShare.Load() {
		t.Fatalf("dropped %d, for their share %d; want %d both", c.Dropped.Load(), c.DroppedShare.Load(), 1000-inbox/2)
	}
	// Two more sources: each gets its (k+1)-th, the flood nothing more.
	deliver(a, 10)
	deliver(b, 10)
	deliver(flood, 10)
	got := map[pdu.Name]int{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for len(c.inbox) > 0 {
		m, err := c.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got[m.Src]++
	}
	if got[a] != 10 || got[b] != 10 || got[flood] != inbox/2 {
		t.Fatalf("delivered flood %d, a %d, b %d; want %d, 10, 10", got[flood], got[a], got[b], inbox/2)
	}
	// Drained: the flood's share was given back.
	deliver(flood, inbox/2)
	if len(c.inbox) != inbox/2 {
		t.Fatalf("after the drain the flood got %d of %d PDUs in", len(c.inbox), inbox/2)
	}
}
