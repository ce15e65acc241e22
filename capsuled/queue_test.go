package capsuled_test

import (
	"context"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestRequestQueueFair: one member floods a capsule server with READs far
// faster than its one worker serves them, keeping its request queue full;
// another member's requests are still answered, each at once, and the
// flood's excess is answered 503 and counted. Before, one FIFO was shared:
// the honest requests were answered 503 "overloaded" while the flood held
// the queue.
func TestRequestQueueFair(t *testing.T) {
	w, ra, srv, c := readHard(t, 64)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// The flood: READs of the whole capsule (each answer a full page and
	// its proof), 16 at a time every 10 ms (about 1,600/s, several times
	// the 50–200 a second the one worker serves); the answers are read and
	// thrown away.
	att := w.rawUser(ra)
	own := att.c.Name()
	busy := floodReads(t, att.c, srv.id.Name, c, []pdu.Name{own, own, own, own, own, own, own, own, own, own, own, own, own, own, own, own}, 10*time.Millisecond)
	eventually(t, 20*time.Second, "the flood to fill the request queue", func() bool {
		return busy.Load() > 0
	})

	// Two attempts (askDuringFlood says why).
	honest := w.userWith(ra, "honest", client.CapsuleOptions{Timeout: time.Second, Attempts: 2})
	const tries = 10
	if ok, _ := askDuringFlood(ctx, t, honest, c, ra, srv, tries); ok < tries {
		t.Fatalf("%d of %d honest requests answered during the flood, want all", ok, tries)
	}
	full, evicted := srv.metric("gdp_capsuled_queue_refused_total", "full"), srv.metric("gdp_capsuled_queue_refused_total", "evicted")
	if full+evicted == 0 {
		t.Fatal("the flood's excess was not counted in gdp_capsuled_queue_refused_total")
	}
	t.Logf("queue_refused_total: full %v, evicted %v", full, evicted)
}
