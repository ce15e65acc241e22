package capsuled_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/client"
)

// TestWriterWaitsWithinDeadline: replicas that are slow, not dead (here
// cut off for a while and then back), get the whole deadline of the call:
// the writer re-sends with backoff until they answer instead of giving up
// after Attempts × Timeout, which is far shorter than the outage.
func TestWriterWaitsWithinDeadline(t *testing.T) {
	w := newWorld(t)
	r1 := w.router("r1")
	a := w.newReplica(r1, "replica a")
	writer := w.user(r1, "writer")
	tc := newTestCapsule(t, "slow replica")
	tc.create(t, writer, 1, a)
	name := tc.meta.Name()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// 2 attempts of 150 ms: the old budget was 300 ms.
	wr, err := writer.NewWriter(ctx, name, tc.writer.Key, client.WriterOptions{Cadence: -1, Timeout: 150 * time.Millisecond, Attempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close(context.Background())
	var ack acked
	writeN(t, wr, 1, 10, &ack)

	a.gate.down.Store(true)
	const outage = 1500 * time.Millisecond
	healed := time.AfterFunc(outage, func() { a.gate.down.Store(false) })
	defer healed.Stop()
	start := time.Now()
	for i := uint64(11); i <= 20; i++ {
		if _, err := wr.Append(ctx, payload(i)); err != nil {
			t.Fatal(err)
		}
	}
	d, err := wr.Flush(ctx)
	if err != nil {
		t.Fatalf("flush across a %s outage with a 60 s deadline: %v", outage, err)
	}
	if !d.Met || d.Seqno != 20 {
		t.Fatalf("durability after the outage: %v", d)
	}
	if el := time.Since(start); el < outage {
		t.Fatalf("acknowledged after %s, during the outage", el)
	}
	// Without a deadline the budget is Attempts × Timeout, then the batch
	// stays queued and the next call re-sends it.
	a.gate.down.Store(true)
	if _, err := wr.Append(ctx, payload(21)); err != nil {
		t.Fatal(err)
	}
	if _, err := wr.Flush(context.Background()); !errors.Is(err, client.ErrNoReplica) {
		t.Fatalf("flush without a deadline while the replica is cut off: %v", err)
	}
	a.gate.down.Store(false)
	if d, err := wr.Flush(ctx); err != nil || !d.Met || d.Seqno != 21 {
		t.Fatalf("flush after healing: %v, %v", d, err)
	}
}

// TestWriterResendsAfterMeasuredRTT: a batch lost on its way to one
// replica is re-sent after the measured round-trip time (srtt + 4·rttvar),
// not after the configured Timeout (10 s here), so a loss costs a writer
// on a fast network milliseconds.
func TestWriterResendsAfterMeasuredRTT(t *testing.T) {
	w := newWorld(t)
	r1 := w.router("r1")
	a, b := w.newReplica(r1, "replica a"), w.newReplica(r1, "replica b")
	writer := w.user(r1, "writer")
	tc := newTestCapsule(t, "lossy replica")
	tc.create(t, writer, 2, a, b)
	name := tc.meta.Name()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const timeout = 10 * time.Second
	wr, err := writer.NewWriter(ctx, name, tc.writer.Key, client.WriterOptions{Cadence: -1, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close(context.Background())
	// Batches acknowledged at once give the writer its RTT samples.
	var ack acked
	for i := uint64(1); i <= 20; i++ {
		writeN(t, wr, i, i, &ack)
	}
	// b loses the next batch (and anything else for 200 ms).
	b.gate.down.Store(true)
	healed := time.AfterFunc(200*time.Millisecond, func() { b.gate.down.Store(false) })
	defer healed.Stop()
	start := time.Now()
	if _, err := wr.Append(ctx, payload(21)); err != nil {
		t.Fatal(err)
	}
	d, err := wr.Flush(ctx)
	el := time.Since(start)
	if err != nil || !d.Met {
		t.Fatalf("flush: %v, %v", d, err)
	}
	t.Logf("a batch lost on one replica settled in %s (Timeout %s)", el, timeout)
	if el >= timeout/2 {
		t.Fatalf("the lost batch was re-sent only after %s: the writer waited for the Timeout, not the measured RTT", el)
	}
}
