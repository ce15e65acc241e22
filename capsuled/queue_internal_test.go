package capsuled

import (
	"math/rand/v2"
	"testing"

	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestRequestQueueOrder: requesters are served round robin, each in its
// own order; a full queue makes room for a requester holding fewer than
// the largest holder less one by evicting that holder's newest request,
// and refuses everyone else.
func TestRequestQueueOrder(t *testing.T) {
	flood, a, b := pdu.Name{1}, pdu.Name{2}, pdu.Name{3}
	req := func(from pdu.Name, id uint64) request {
		return request{from: from, msg: &wire.Message{Op: wire.OpRead, ID: id}}
	}
	q := newRequestQueue(6)
	for id := range uint64(5) {
		if ev, _, ok := q.push(req(flood, id)); !ok || ev != nil {
			t.Fatalf("push %d into a queue with room: ok %v, evicted %v", id, ok, ev)
		}
	}
	if _, _, ok := q.push(req(a, 100)); !ok {
		t.Fatal("a's first request refused with room left")
	}
	// Full: b (holding none) takes the place of flood's newest (id 4).
	ev, holder, ok := q.push(req(b, 200))
	if !ok || ev == nil || ev.from != flood || ev.msg.ID != 4 || holder != flood {
		t.Fatalf("b's first request into the full queue: ok %v, evicted %+v, holder %v; want flood's request 4 evicted", ok, ev, holder)
	}
	// a holds 1, flood 4: a's second evicts flood's 3.
	if ev, _, ok := q.push(req(a, 101)); !ok || ev == nil || ev.msg.ID != 3 {
		t.Fatalf("a's second request: ok %v, evicted %+v; want flood's request 3 evicted", ok, ev)
	}
	// flood (the largest holder) is refused; so is a third from a (a 2,
	// flood 3: no holder has more than a's share plus one).
	if _, _, ok := q.push(req(flood, 9)); ok {
		t.Fatal("the largest holder's request into the full queue was taken")
	}
	if _, holder, ok := q.push(req(a, 102)); ok || holder != flood {
		t.Fatalf("a's third request (a 2, flood 3): ok %v, holder %v; want refused, flood named", ok, holder)
	}
	// Round robin, each requester in its own order.
	var got []uint64
	for {
		r, ok := q.pop()
		if !ok {
			break
		}
		got = append(got, r.msg.ID)
	}
	want := []uint64{0, 100, 200, 1, 101, 2}
	if len(got) != len(want) {
		t.Fatalf("served %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("served %v, want %v", got, want)
		}
	}
	if q.len() != 0 {
		t.Fatalf("%d left after popping all", q.len())
	}
}

// TestRequestQueueLargestHolder drives a small full queue with random
// pushes (a few heavy requesters, many light ones) and pops, and checks
// every answer against counts kept beside it: a push into the full queue
// is refused exactly when no requester holds more than the pusher plus
// one; otherwise the evicted request is the newest of a requester holding
// the most; holder always holds the most. The count buckets that find the
// largest holder must agree with a scan of every requester.
func TestRequestQueueLargestHolder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	q := newRequestQueue(40)
	counts := map[pdu.Name]int{}
	newest := map[pdu.Name]uint64{}
	most := func() int {
		m := 0
		for _, c := range counts {
			m = max(m, c)
		}
		return m
	}
	var id uint64
	for step := range 20_000 {
		if rng.IntN(3) == 0 {
			r, ok := q.pop()
			if ok != (len(counts) > 0) {
				t.Fatalf("step %d: pop ok %v with %d requesters waiting", step, ok, len(counts))
			}
			if ok {
				if counts[r.from]--; counts[r.from] == 0 {
					delete(counts, r.from)
				}
			}
		} else {
			var from pdu.Name
			if rng.IntN(2) == 0 {
				from = pdu.Name{byte(1 + rng.IntN(3))} // heavy
			} else {
				from = pdu.Name{byte(10 + rng.IntN(60))}
			}
			id++
			full, m, mine := q.len() >= 40, most(), counts[from]
			ev, holder, ok := q.push(request{from: from, msg: &wire.Message{Op: wire.OpRead, ID: id}})
			if full && counts[holder] != m {
				t.Fatalf("step %d: holder holds %d, the largest %d", step, counts[holder], m)
			}
			switch {
			case !full:
				if !ok || ev != nil {
					t.Fatalf("step %d: push into a queue with room: ok %v, evicted %v", step, ok, ev)
				}
			case m <= mine+1:
				if ok {
					t.Fatalf("step %d: taken though the largest holder holds %d and the pusher %d", step, m, mine)
				}
			default:
				if !ok || ev == nil {
					t.Fatalf("step %d: refused (or nothing evicted) though the largest holder holds %d and the pusher %d", step, m, mine)
				}
				if counts[ev.from] != m || ev.msg.ID != newest[ev.from] {
					t.Fatalf("step %d: evicted request %d of a holder of %d (its newest %d), want the newest of a holder of %d",
						step, ev.msg.ID, counts[ev.from], newest[ev.from], m)
				}
				counts[ev.from]--
			}
			if ok {
				counts[from]++
				newest[from] = id
			}
		}
		// The newest of each requester, for the eviction check: the queue's
		// own FIFO tail.
		for from := range newest {
			if h := q.per[from]; h != nil {
				newest[from] = h.reqs[len(h.reqs)-1].msg.ID
			}
		}
		if q.most != most() {
			t.Fatalf("step %d: buckets say the largest holder holds %d, a scan %d", step, q.most, most())
		}
	}
}
