package capsuled

import (
	"math/rand/v2"
	"slices"
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
	wantServed(t, q, 0, 100, 200, 1, 101, 2)
}

// wantServed pops q until it is empty and fails t unless the requests
// came out with the IDs want, in that order.
func wantServed(t *testing.T, q *requestQueue, want ...uint64) {
	t.Helper()
	var got []uint64
	for {
		r, ok := q.pop()
		if !ok {
			break
		}
		got = append(got, r.msg.ID)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("served %v, want %v", got, want)
	}
	if q.len() != 0 {
		t.Fatalf("%d left after popping all", q.len())
	}
}

// TestRequestQueueGroupsOrder (Session 15): groups are served round
// robin, and a group's names round robin within its turns: a group of two
// names gets as many turns as a group of one.
func TestRequestQueueGroupsOrder(t *testing.T) {
	ga, gb := pdu.Name{0xa}, pdu.Name{0xb}
	a1, a2, b := pdu.Name{1}, pdu.Name{2}, pdu.Name{3}
	q := newRequestQueue(16)
	for _, r := range []struct {
		g, from pdu.Name
		id      uint64
	}{{ga, a1, 10}, {ga, a1, 11}, {ga, a1, 12}, {ga, a2, 20}, {gb, b, 30}, {gb, b, 31}} {
		if _, _, ok := q.push(request{from: r.from, msg: &wire.Message{Op: wire.OpRead, ID: r.id}, asker: asker{group: r.g}}); !ok {
			t.Fatalf("push %d refused", r.id)
		}
	}
	wantServed(t, q, 10, 30, 20, 31, 11, 12)
}

// TestRequestQueueLargestHolder drives a small full queue with random
// pushes (requests of four groups — identities — each from a few heavy
// names and many light ones) and pops, and checks every answer against
// counts kept beside it (Session 15: two levels): a push into the full
// queue evicts the newest request of a largest name of a largest group
// when that group holds more than the pusher's group plus one; else the
// newest of a largest name of the pusher's own group when that name holds
// more than the pusher's name plus one; else it is refused. holder is the
// evicted request's name, or a largest name of a largest group. The count
// buckets that find the largest holders must agree with a scan.
func TestRequestQueueLargestHolder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	q := newRequestQueue(40)
	type key struct{ g, n pdu.Name }
	counts := map[key]int{}
	groupN := map[pdu.Name]int{}
	newest := map[key]uint64{}
	mostG := func() int {
		m := 0
		for _, c := range groupN {
			m = max(m, c)
		}
		return m
	}
	mostN := func(g pdu.Name) int {
		m := 0
		for k, c := range counts {
			if k.g == g {
				m = max(m, c)
			}
		}
		return m
	}
	var id uint64
	for step := range 30_000 {
		if rng.IntN(3) == 0 {
			r, ok := q.pop()
			if ok != (len(counts) > 0) {
				t.Fatalf("step %d: pop ok %v with %d names waiting", step, ok, len(counts))
			}
			if ok {
				k := key{r.group, r.from}
				if counts[k]--; counts[k] == 0 {
					delete(counts, k)
				}
				if groupN[r.group]--; groupN[r.group] == 0 {
					delete(groupN, r.group)
				}
			}
		} else {
			g := pdu.Name{0xa0 + byte(rng.IntN(4))}
			var from pdu.Name
			if rng.IntN(2) == 0 {
				from = pdu.Name{byte(1 + rng.IntN(3))} // heavy
			} else {
				from = pdu.Name{byte(10 + rng.IntN(60))}
			}
			id++
			k := key{g, from}
			full, mG, mineG, mineN, mN := q.len() >= 40, mostG(), groupN[g], counts[k], mostN(g)
			ev, holder, ok := q.push(request{from: from, msg: &wire.Message{Op: wire.OpRead, ID: id}, asker: asker{group: g}})
			switch {
			case !full:
				if !ok || ev != nil {
					t.Fatalf("step %d: push into a queue with room: ok %v, evicted %v", step, ok, ev)
				}
			case mG > mineG+1:
				if !ok || ev == nil {
					t.Fatalf("step %d: refused (or nothing evicted) though the largest group holds %d and the pusher's %d", step, mG, mineG)
				}
				ek := key{ev.group, ev.from}
				if groupN[ev.group] != mG || counts[ek] != mostN(ev.group) || ev.msg.ID != newest[ek] || holder != ev.from {
					t.Fatalf("step %d: evicted request %d of a name holding %d in a group of %d (holder %v), want the newest of a largest name of a group of %d",
						step, ev.msg.ID, counts[ek], groupN[ev.group], holder, mG)
				}
			case mN > mineN+1:
				if !ok || ev == nil {
					t.Fatalf("step %d: refused though the pusher's group's largest name holds %d and the pusher %d", step, mN, mineN)
				}
				ek := key{ev.group, ev.from}
				if ev.group != g || counts[ek] != mN || ev.msg.ID != newest[ek] {
					t.Fatalf("step %d: evicted request %d of group %v holding %d, want the newest of the pusher's group's largest name (%d)",
						step, ev.msg.ID, ev.group, counts[ek], mN)
				}
			default:
				if ok {
					t.Fatalf("step %d: taken though the largest group holds %d (the pusher's %d) and the pusher's group's largest name %d (the pusher %d)",
						step, mG, mineG, mN, mineN)
				}
				if holder == (pdu.Name{}) {
					t.Fatalf("step %d: refused without naming a holder", step)
				}
			}
			if ev != nil {
				ek := key{ev.group, ev.from}
				if counts[ek]--; counts[ek] == 0 {
					delete(counts, ek)
				}
				groupN[ev.group]--
			}
			if ok {
				counts[k]++
				groupN[g]++
				newest[k] = id
			}
		}
		// The newest of each name, for the eviction check: the queue's own
		// FIFO tail.
		for k := range newest {
			if g := q.groups[k.g]; g != nil {
				if h := g.names[k.n]; h != nil {
					newest[k] = h.reqs[len(h.reqs)-1].msg.ID
				}
			}
		}
		if q.counts.most != mostG() {
			t.Fatalf("step %d: buckets say the largest group holds %d, a scan %d", step, q.counts.most, mostG())
		}
		for gk, g := range q.groups {
			if g.counts.most != mostN(gk) || g.n != groupN[gk] {
				t.Fatalf("step %d: group %v: buckets say %d/%d, a scan %d/%d", step, gk, g.counts.most, g.n, mostN(gk), groupN[gk])
			}
		}
	}
}
