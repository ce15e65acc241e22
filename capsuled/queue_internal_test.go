package capsuled

import (
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
