package capsuled_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsuled"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/client"
)

// TestRequestQueueFair: one member floods a capsule server with READs far
// faster than its one worker serves them, keeping its request queue full;
// another member's requests are still answered, each at once, and the
// flood's excess is answered 503 and counted. Before, one FIFO was shared:
// the honest requests were answered 503 "overloaded" while the flood held
// the queue.
func TestRequestQueueFair(t *testing.T) {
	w := newWorld(t)
	ra := w.router("router A")
	srv := w.newReplicaConf(ra, "server", capsuled.Config{Workers: 1, Queue: 64})
	owner := w.user(ra, "owner")
	tc := newTestCapsule(t, "read hard")
	tc.create(t, owner, 1, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// One batch in flight at a time: with one worker, a batch that arrives
	// before the one it follows waits for it on the only worker, and is
	// refused.
	write := tc.writes(ctx, t, owner, 1, srv)
	for range 10 {
		write(100)
	}

	// The flood: READs of the whole capsule (each answer a full page and
	// its proof), 16 at a time every 10 ms (about 1,600/s, several times the 50–200 a second the one worker serves); the answers are read and
	// thrown away.
	att := w.rawUser(ra)
	c := tc.meta.Name()
	fctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var busy atomic.Int64 // the flood's READs answered 503
	wg.Add(2)
	go func() {
		defer wg.Done()
		for fctx.Err() == nil {
			in, err := att.c.Receive(fctx)
			if err != nil {
				return
			}
			if m, err := wire.Unmarshal(in.Payload); err == nil && m.Status == wire.StatusUnavailable {
				busy.Add(1)
			}
		}
	}()
	go func() {
		defer wg.Done()
		var id uint64
		for fctx.Err() == nil {
			for range 16 {
				id++
				b, err := (&wire.Message{Op: wire.OpRead, ID: id, Capsule: c[:], From: 1}).Marshal()
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = att.c.Send(srv.id.Name, b)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	defer func() { stop(); wg.Wait() }()
	refused := func() float64 {
		return srv.metric("gdp_capsuled_queue_refused_total", "full") + srv.metric("gdp_capsuled_queue_refused_total", "evicted")
	}
	eventually(t, 20*time.Second, "the flood to fill the request queue", func() bool {
		return busy.Load() > 0
	})

	// Two attempts: a 503 is an answer and fails at once; a PDU lost in
	// the flood's traffic on a loaded machine (3 of 400 under two busy
	// loops, Session 15) is sent again.
	honest := w.userWith(ra, "honest", client.CapsuleOptions{Timeout: time.Second, Attempts: 2})
	const tries = 10
	ok := 0
	for i := range tries {
		start := time.Now()
		_, err := honest.Info(ctx, c, srv.id.Name)
		if err == nil {
			ok++
		}
		t.Logf("honest request %d during the flood: %v in %s", i, err, time.Since(start).Round(time.Millisecond))
	}
	if ok < tries {
		t.Fatalf("%d of %d honest requests answered during the flood, want all", ok, tries)
	}
	if refused() == 0 {
		t.Fatal("the flood's excess was not counted in gdp_capsuled_queue_refused_total")
	}
	t.Logf("queue_refused_total: full %v, evicted %v", srv.metric("gdp_capsuled_queue_refused_total", "full"),
		srv.metric("gdp_capsuled_queue_refused_total", "evicted"))
}
