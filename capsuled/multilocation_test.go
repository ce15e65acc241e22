package capsuled_test

import (
	"context"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/client"
)

// TestMulticastWriterAcrossRouters: three replicas of one capsule, each at
// a different router; the writer at a fourth router sends each APPEND
// once, multicast to the capsule's name, and every batch is acknowledged
// by all three (the routers resolve every location of the name).
func TestMulticastWriterAcrossRouters(t *testing.T) {
	w := newWorld(t)
	hub := w.router("hub")
	ra, rb, rc := w.router("ra", hub), w.router("rb", hub), w.router("rc", hub)
	a, b, c := w.newReplica(ra, "replica a"), w.newReplica(rb, "replica b"), w.newReplica(rc, "replica c")
	writer := w.user(hub, "writer")
	tc := newTestCapsule(t, "three routers")
	tc.create(t, writer, 3, a, b, c)
	name := tc.meta.Name()
	eventually(t, slow*5*time.Second, "three location records", func() bool {
		all, err := w.res.LookupAll(context.Background(), name)
		return err == nil && len(all) == 3
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wr, err := writer.NewWriter(ctx, name, tc.writer.Key, client.WriterOptions{Multicast: true, Cadence: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close(context.Background())
	var ack acked
	writeN(t, wr, 1, 100, &ack)
	d := wr.Durability()
	if !d.Met || d.Acks != 3 || len(d.Holders) != 3 {
		t.Fatalf("multicast append across three routers: %+v, want 3 acknowledgements", d)
	}
	for _, r := range []*replica{a, b, c} {
		if got := ack.by[r.id.Name]; got != 100 {
			t.Fatalf("replica %s acknowledged up to %d, want 100", r.id.Name, got)
		}
	}
}
