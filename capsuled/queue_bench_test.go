package capsuled

import (
	"encoding/binary"
	"testing"

	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/pdu"
)

// BenchmarkRequestQueuePush is a push into a full request queue of 8,192
// with 4,096 requesters waiting (4,095 holding one or two requests, a
// flood holding the rest), the case a flood keeps the server in:
//
//   - refused: the flood's own request (it is the largest holder);
//   - evict: a light requester's, which takes the place of the flood's
//     newest.
//
// Each push finds the largest holder. Session 11's queue scanned every
// requester for it under the queue's lock: 57.0 µs (refused) and 54.4 µs
// (evict) a push on the 2-core test machine (load 0.9); the count buckets
// (Session 12) find it in O(1): 46 ns and 494 ns (the evict figure is the
// light requester's FIFO growing, two allocations, as before).
func BenchmarkRequestQueuePush(b *testing.B) {
	const requesters, max = 4096, 8192
	name := func(i int) pdu.Name {
		var n pdu.Name
		binary.BigEndian.PutUint32(n[:], uint32(i+1))
		return n
	}
	flood := name(requesters - 1)
	msg := &wire.Message{Op: wire.OpRead}
	fill := func() *requestQueue {
		q := newRequestQueue(max)
		for i := range requesters - 1 {
			q.push(request{from: name(i), msg: msg})
		}
		for q.len() < max {
			q.push(request{from: flood, msg: msg})
		}
		return q
	}
	b.Run("refused", func(b *testing.B) {
		q := fill()
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, _, ok := q.push(request{from: flood, msg: msg}); ok {
				b.Fatal("the flood's request was taken")
			}
		}
	})
	b.Run("evict", func(b *testing.B) {
		q := fill()
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			k := i % (requesters - 1)
			if k == 0 && i > 0 {
				// Every light requester holds two now: start again.
				b.StopTimer()
				q = fill()
				b.StartTimer()
			}
			if ev, _, ok := q.push(request{from: name(k), msg: msg}); !ok || ev == nil || ev.from != flood {
				b.Fatalf("push %d: ok %v, evicted %v; want the flood's newest evicted", i, ok, ev)
			}
		}
	})
}
