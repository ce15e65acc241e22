package capsuled_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/client"
)

// TestSubscribeReadByTimeHashAndMulticast: replicas a and b at r1; the
// writer at r2 sends each APPEND once, multicast to the capsule's name; a
// reader at r2 follows a subscription from seqno 1 (backlog, then live
// pushes), and reads by time and by hash.
func TestSubscribeReadByTimeHashAndMulticast(t *testing.T) {
	w := newWorld(t)
	r1 := w.router("r1")
	r2 := w.router("r2", r1)
	a, b := w.newReplica(r1, "replica a"), w.newReplica(r1, "replica b")
	writer := w.user(r2, "writer")
	reader := w.user(r2, "reader")
	tc := newTestCapsule(t, "subscribed")
	tc.create(t, writer, 2, a, b)
	c := tc.meta.Name()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wr, err := writer.NewWriter(ctx, c, tc.writer.Key, client.WriterOptions{Multicast: true, Cadence: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close(context.Background())
	var ack acked
	writeN(t, wr, 1, 500, &ack)
	if d := wr.Durability(); !d.Met || d.Acks != 2 {
		t.Fatalf("multicast append: %v", d)
	}
	mid := time.Now()
	time.Sleep(2 * time.Millisecond)

	rd, err := reader.NewReader(ctx, c, client.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := rd.Subscribe(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	// Live records come on the writer's cadence while the backlog drains.
	go func() {
		for i := uint64(501); i <= 1000; i++ {
			if _, err := wr.Append(ctx, payload(i)); err != nil {
				return
			}
		}
	}()
	next := uint64(1)
	for next <= 1000 {
		ev, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("subscription at %d: %v", next, err)
		}
		for _, e := range ev.Entries {
			if e.Seqno != next || !bytes.Equal(e.Data, payload(next)) {
				t.Fatalf("pushed %d, want %d", e.Seqno, next)
			}
			next++
		}
	}

	// Reads and proofs below go to either replica (the capsule's name), so
	// both must hold the whole log first: the live appends above returned
	// before their last batch was acknowledged.
	if _, err := wr.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	eventually(t, slow*5*time.Second, "both replicas acknowledge seqno 1000", func() bool {
		d := wr.Durability()
		return d.Seqno == 1000 && d.Acks == 2
	})
	got, err := rd.ReadAt(ctx, mid)
	if err != nil || got.Seqno != 501 {
		t.Fatalf("read at %v: seqno %d, %v; want 501", mid, got.Seqno, err)
	}
	byHash, err := rd.ReadHash(ctx, got.Hash())
	if err != nil || byHash.Seqno != 501 {
		t.Fatalf("read by hash: %d, %v", byHash.Seqno, err)
	}
	// PROOF: the record is in the log the newest heartbeat signs; a
	// tampered copy is not.
	if err := rd.Prove(ctx, byHash); err != nil {
		t.Fatalf("prove: %v", err)
	}
	bad := byHash
	bad.Data = append([]byte(nil), bad.Data...)
	bad.Data[0] ^= 1
	if err := rd.Prove(ctx, bad); !errors.Is(err, capsule.ErrBadDataHash) {
		t.Fatalf("prove a tampered record: %v", err)
	}
	forged := capsule.NewRecord(c, bad.Seqno, bad.Time, bad.Prev, bad.Data)
	if err := rd.Prove(ctx, forged); !errors.Is(err, capsule.ErrBadProof) {
		t.Fatalf("prove a re-hashed forgery: %v", err)
	}

	// An idle writer keeps readers' view fresh with heartbeats alone.
	idle, err := writer.NewWriter(ctx, c, tc.writer.Key, client.WriterOptions{Cadence: -1, HeartbeatEvery: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close(context.Background())
	eventually(t, slow*5*time.Second, "a heartbeat-only push", func() bool {
		nctx, ncancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer ncancel()
		ev, err := sub.Next(nctx)
		return err == nil && len(ev.Entries) == 0 && rd.Age() < time.Second
	})
}
