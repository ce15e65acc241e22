package capsuled_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestStorageShare (Session 13): one member's writers filled a server's
// disk until min_free_bytes refused every member's appends. The records
// held for the capsules one requester placed are now bounded
// (placement.max_bytes_per_requester), over all of them: past it, their
// APPENDs are answered 503 and anti-entropy does not pull them from
// another replica, counted by op; another member's appends are all stored.
func TestStorageShare(t *testing.T) {
	const share = 12_000 // bytes; a record of 1,000 bytes is ~1,120 stored
	w := newWorld(t)
	r1 := w.router("r1")
	s1 := w.newReplicaConf(r1, "s1", capsuled.Config{Placement: capsuled.PlacementPolicy{MaxBytesPerRequester: share}})
	s2 := w.newReplica(r1, "s2") // no share of its own to speak of: the default
	flooder := w.userWith(r1, "flooder", client.CapsuleOptions{Timeout: 300 * time.Millisecond, Attempts: 2})
	honest := w.user(r1, "honest")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, b, h := newTestCapsule(t, "flood a"), newTestCapsule(t, "flood b"), newTestCapsule(t, "honest")
	a.create(t, flooder, 1, s1)
	b.create(t, flooder, 1, s1, s2)
	h.create(t, honest, 1, s1)
	writer := func(cc *client.CapsuleClient, tc *testCapsule, rs ...*replica) *client.Writer {
		var names []pdu.Name
		for _, r := range rs {
			names = append(names, r.id.Name)
		}
		wr, err := cc.NewWriter(ctx, tc.meta.Name(), tc.writer.Key, client.WriterOptions{Cadence: -1, Replicas: names, W: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			// s1 never takes the flooder's last batches: do not wait for it
			cctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			wr.Close(cctx)
		})
		return wr
	}
	// batch writes records of 1,000 bytes; a replica answering 503 is
	// re-sent to until the batch's 3 s are up.
	batch := func(wr *client.Writer, records int) (client.Durability, error) {
		bctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		for range records {
			if _, err := wr.Append(bctx, bytes.Repeat([]byte{'x'}, 1000)); err != nil {
				return client.Durability{}, err
			}
		}
		return wr.Flush(bctx)
	}
	held := func(tcs ...*testCapsule) uint64 {
		var n uint64
		for _, tc := range tcs {
			v, err := s1.srv.Store().Bytes(tc.meta.Name())
			if err != nil {
				t.Fatal(err)
			}
			n += v
		}
		return n
	}
	// Capsule a, on s1 alone: batches until s1 refuses one.
	wa := writer(flooder, a, s1)
	stored := 0
	for range 10 {
		d, err := batch(wa, 5)
		if err != nil || !d.Met {
			t.Logf("refused after %d batches: %v %v", stored, d, err)
			break
		}
		stored++
	}
	if stored == 0 || stored > 3 {
		t.Fatalf("s1 stored %d batches of 5 KB of one member, want 1-3 (share %d bytes)", stored, share)
	}
	if got := w1metric(s1, "append"); got < 1 {
		t.Fatalf("appends refused: %v", got)
	}
	// Capsule b, on s1 and s2, W=1: s2 takes it, s1 refuses it (the share
	// is the member's over all the capsules it placed) and does not pull
	// it from s2 either.
	wb := writer(flooder, b, s1, s2)
	for i := range 4 {
		if d, err := batch(wb, 5); err != nil || !d.Met {
			t.Fatalf("batch %d of b (W=1 on s2): %v %v", i, d, err)
		}
	}
	eventually(t, 10*time.Second, "anti-entropy rounds refused", func() bool { return w1metric(s1, "sync") >= 3 })
	if got := held(a, b); got >= share+6_000 {
		t.Fatalf("s1 holds %d bytes for the flooder, share %d plus one batch", got, share)
	}
	if got := held(b); got != 0 {
		t.Fatalf("s1 holds %d bytes of b", got)
	}
	// Another member is not refused: 10 records of 1,000 bytes, within
	// its own share.
	wh := writer(honest, h, s1)
	ok := 0
	for range 10 {
		if d, err := batch(wh, 1); err == nil && d.Met {
			ok++
		}
	}
	if ok < 10 {
		t.Fatalf("another member's batches stored on s1: %d/10", ok)
	}
}

func w1metric(r *replica, op string) float64 {
	return r.metricLabels("gdp_capsuled_storage_refused_total", op, "requester")
}

// TestStorageShareRetryAnswered: once the member that placed a capsule
// holds its share, only batches that bring new records are refused. A
// writer's re-send of a batch this server stored (its answer was lost)
// and a heartbeat alone are answered as usual — refused, the writer would
// count a durable batch as not stored here — and add no bytes.
func TestStorageShareRetryAnswered(t *testing.T) {
	w := newWorld(t)
	r1 := w.router("r1")
	s1 := w.newReplicaConf(r1, "s1", capsuled.Config{Placement: capsuled.PlacementPolicy{MaxBytesPerRequester: 3_000}})
	owner := w.user(r1, "owner")
	tc := newTestCapsule(t, "retried")
	tc.create(t, owner, 1, s1)
	c := tc.meta.Name()
	u := w.rawUser(r1)
	wr := capsule.NewWriter(c, tc.writer.Key)
	batch := func() *wire.Message {
		wr.Append(bytes.Repeat([]byte{'x'}, 1000))
		wr.Append(bytes.Repeat([]byte{'y'}, 1000))
		recs, hb := wr.Flush()
		return appendMsg(c, recs, hb)
	}
	if resp := u.do(s1.id.Name, batch()); resp.Status != wire.StatusOK {
		t.Fatalf("first batch: %v %q", resp.Status, resp.Error)
	}
	second := batch()
	if resp := u.do(s1.id.Name, second); resp.Status != wire.StatusOK {
		t.Fatalf("second batch (the share not yet reached): %v %q", resp.Status, resp.Error)
	}
	if resp := u.do(s1.id.Name, batch()); resp.Status != wire.StatusUnavailable {
		t.Fatalf("third batch, past the share: %v %q, want 503", resp.Status, resp.Error)
	}
	held, err := s1.srv.Store().Bytes(c)
	if err != nil {
		t.Fatal(err)
	}
	resend := *second
	if resp := u.do(s1.id.Name, &resend); resp.Status != wire.StatusOK || resp.Head != 4 {
		t.Fatalf("the second batch sent again: %v %q head %d, want 200 head 4", resp.Status, resp.Error, resp.Head)
	}
	hbOnly := &wire.Message{Op: wire.OpAppend, Capsule: c[:], Heartbeat: second.Heartbeat}
	if resp := u.do(s1.id.Name, hbOnly); resp.Status != wire.StatusOK {
		t.Fatalf("its heartbeat alone: %v %q, want 200", resp.Status, resp.Error)
	}
	if after, err := s1.srv.Store().Bytes(c); err != nil || after != held {
		t.Fatalf("bytes held %d after the re-sends, %d before (%v)", after, held, err)
	}
}
