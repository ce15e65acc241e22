package capsuled_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
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

// TestRequestsWaitWithinDeadline: a CREATE and a READ to a server that is
// slow, not dead (cut off for longer than Attempts × Timeout, then back),
// are re-sent until the caller's deadline and succeed; a METADATA asked of
// one replica among several (a quorum read, Info) still gives up after its
// attempts, so the caller can move on to the next replica.
func TestRequestsWaitWithinDeadline(t *testing.T) {
	w := newWorld(t)
	r1 := w.router("r1")
	a := w.newReplica(r1, "replica a")
	// 2 attempts of 150 ms: a fixed budget of 300 ms.
	user := w.userWith(r1, "impatient user", client.CapsuleOptions{Timeout: 150 * time.Millisecond, Attempts: 2})
	tc := newTestCapsule(t, "slow server")
	name := tc.meta.Name()
	places, err := client.PlaceCapsule(tc.owner, tc.meta, []certs.Name{a.id.Name}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	const outage = 1500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Info gives up after its own attempts even with a long deadline.
	a.gate.down.Store(true)
	ictx, icancel := context.WithTimeout(ctx, 10*time.Second)
	start := time.Now()
	_, err = user.Info(ictx, name, a.id.Name)
	icancel()
	if el := time.Since(start); !errors.Is(err, client.ErrNoAnswer) || el > 5*time.Second {
		t.Fatalf("METADATA of a silent replica: %v after %s (want no answer after its 2 attempts)", err, el)
	}

	healed := time.AfterFunc(outage, func() { a.gate.down.Store(false) })
	defer healed.Stop()
	start = time.Now()
	if err := user.Create(ctx, tc.owner, tc.meta, 1, places); err != nil {
		t.Fatalf("create across a %s outage with a 60 s deadline: %v", outage, err)
	}
	if el := time.Since(start); el < outage {
		t.Fatalf("created after %s, during the outage", el)
	}

	wr, err := user.NewWriter(ctx, name, tc.writer.Key, client.WriterOptions{Cadence: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close(context.Background())
	var ack acked
	writeN(t, wr, 1, 10, &ack)
	rd, err := user.NewReader(ctx, name, client.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a.gate.down.Store(true)
	healed2 := time.AfterFunc(outage, func() { a.gate.down.Store(false) })
	defer healed2.Stop()
	start = time.Now()
	recs, err := rd.Read(ctx, 1, 10)
	if err != nil {
		t.Fatalf("read across a %s outage with a 60 s deadline: %v", outage, err)
	}
	if len(recs) != 10 || time.Since(start) < outage {
		t.Fatalf("read %d records after %s", len(recs), time.Since(start))
	}
	// SUBSCRIBE as well.
	a.gate.down.Store(true)
	healed3 := time.AfterFunc(outage, func() { a.gate.down.Store(false) })
	defer healed3.Stop()
	start = time.Now()
	sub, err := rd.Subscribe(ctx, 1)
	if err != nil {
		t.Fatalf("subscribe across a %s outage with a 60 s deadline: %v", outage, err)
	}
	defer sub.Close()
	if el := time.Since(start); el < outage {
		t.Fatalf("subscribed after %s, during the outage", el)
	}
}
