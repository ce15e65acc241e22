package router

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/gdpnet/gdpnet/pdu"
)

// TestResolveQueueEvictsLargest (Session 13): with the lookup queue full
// (max_waiting 7: identity A 4 PDUs, B 3), B's next PDU is refused (it
// holds the largest less one), C's first takes the place of A's newest
// (A's fourth name is gone, its three older ones stay), and A's own next
// one is refused.
func TestResolveQueueEvictsLargest(t *testing.T) {
	r, q := evictQueue(7)
	face := func() *Face { return &Face{share: &idShare{}} }
	a, b, c := face(), face(), face()
	n := byte(0)
	park := func(f *Face) pdu.Name {
		n++
		dst := pdu.Name{n}
		q.park(f, dst, []byte{n})
		return dst
	}
	parked := func(f *Face) int {
		if o := q.owners[f.share]; o != nil {
			return o.parked
		}
		return 0
	}
	var aNames []pdu.Name
	for range 4 {
		aNames = append(aNames, park(a))
	}
	for range 3 {
		park(b)
	}
	if q.total != 7 {
		t.Fatalf("total %d, want 7", q.total)
	}
	park(b)
	if parked(a) != 4 || parked(b) != 3 {
		t.Fatalf("B at the largest less one evicted: A %d, B %d", parked(a), parked(b))
	}
	park(c)
	if parked(a) != 3 || parked(c) != 1 || q.total != 7 {
		t.Fatalf("C's first PDU: A %d, C %d, total %d; want 3, 1, 7", parked(a), parked(c), q.total)
	}
	if q.wait[aNames[3]] != nil {
		t.Fatal("A's newest PDU kept")
	}
	for _, dst := range aNames[:3] {
		if q.wait[dst] == nil {
			t.Fatalf("A's older PDU to %x dropped", dst[:1])
		}
	}
	if got := len(q.owners[a.share].names); got != 3 {
		t.Fatalf("A has %d names to look up, want 3", got)
	}
	park(a)
	if parked(a) != 3 || a.drops.Load() != 2 {
		t.Fatalf("the largest holder's own next PDU: A %d parked, %d dropped; want 3, 2", parked(a), a.drops.Load())
	}
	value := func(c prometheus.Counter) float64 {
		var m dto.Metric
		if err := c.Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	if e, f := value(r.met.quotas[quotaResolveEvicted]), value(r.met.quotas[quotaResolveFull]); e != 1 || f != 2 {
		t.Fatalf("counted %v resolve_evicted, %v resolve_full; want 1, 2", e, f)
	}
}

// TestResolveQueueEvictionLeavesRing: an identity whose last own name loses
// its last PDU leaves the round robin (its PDUs on another identity's name
// stay parked), and the workers are handed only the names left.
func TestResolveQueueEvictionLeavesRing(t *testing.T) {
	_, q := evictQueue(4)
	a, b, c := &Face{share: &idShare{}}, &Face{share: &idShare{}}, &Face{share: &idShare{}}
	z, w, v := pdu.Name{'z'}, pdu.Name{'w'}, pdu.Name{'v'}
	q.park(b, z, []byte{1})
	q.park(a, z, []byte{2})
	q.park(a, z, []byte{3})
	q.park(a, w, []byte{4}) // A's only name of its own
	q.park(c, v, []byte{5}) // full: takes A's PDU to w
	if q.wait[w] != nil || len(q.wait[z].pdus) != 3 || q.owners[a.share].parked != 2 {
		t.Fatalf("after the eviction: w %v, %d PDUs on z, A %d parked", q.wait[w] != nil, len(q.wait[z].pdus), q.owners[a.share].parked)
	}
	var got []pdu.Name
	for {
		dst, ok := q.nextName()
		if !ok {
			break
		}
		got = append(got, dst)
	}
	if len(got) != 2 || got[0] != z || got[1] != v {
		t.Fatalf("names handed to the workers: %v, want z then v", got)
	}
}

// TestResolveQueueEvictsOnlyTheLargestsOwn (Session 14): the PDU evicted
// for a newcomer is the largest holder's own — not another identity's
// parked on a name the largest asked for first — and a name of the
// largest holder whose PDUs were taken already (its route learned another
// way) is passed over, not dereferenced (mutants: the owner check and the
// missing-wait-list check of evictFor skipped).
func TestResolveQueueEvictsOnlyTheLargestsOwn(t *testing.T) {
	_, q := evictQueue(8)
	a, b, c := &Face{share: &idShare{}}, &Face{share: &idShare{}}, &Face{share: &idShare{}}
	x, y, z, taken := pdu.Name{'x'}, pdu.Name{'y'}, pdu.Name{'z'}, pdu.Name{'t'}
	for i := range 3 {
		q.park(a, x, []byte{byte(1 + i)})
	}
	q.park(a, y, []byte{4})
	q.park(a, taken, []byte{40})
	if len(q.take(taken)) != 1 { // resolved another way: A still lists the name
		t.Fatal("nothing taken")
	}
	q.park(a, z, []byte{5})
	q.park(b, z, []byte{6}) // B's PDU on A's newest name, after A's
	q.park(a, z, []byte{7})
	q.park(b, x, []byte{8})
	if q.total != 8 || q.owners[a.share].parked != 6 {
		t.Fatalf("total %d, A %d; want full at 8, A 6", q.total, q.owners[a.share].parked)
	}
	// C's three PDUs take A's newest own ones: 7 and 5 on z (B's 6
	// stays), then, past the taken name, 4 on y.
	for i := range 3 {
		q.park(c, pdu.Name{'c', byte(i)}, []byte{byte(9 + i)})
	}
	if pz := q.wait[z]; pz == nil || len(pz.pdus) != 1 || pz.pdus[0].in != b {
		t.Fatalf("z after A's PDUs there were evicted: %v, want B's alone", pz)
	}
	if q.wait[y] != nil || len(q.wait[x].pdus) != 4 {
		t.Fatalf("y %v (want evicted), %d PDUs on x (want 4)", q.wait[y], len(q.wait[x].pdus))
	}
	if q.owners[a.share].parked != 3 || q.owners[b.share].parked != 2 || q.owners[c.share].parked != 3 || q.total != 8 {
		t.Fatalf("parked A %d, B %d, C %d, total %d; want 3, 2, 3, 8", q.owners[a.share].parked, q.owners[b.share].parked, q.owners[c.share].parked, q.total)
	}
	if b.drops.Load() != 0 || a.drops.Load() != 3 {
		t.Fatalf("drops: A %d, B %d; want 3, 0 (B holds 2 of 8)", a.drops.Load(), b.drops.Load())
	}
}

// TestResolveQueueRingTurnKept (Session 14): an identity leaving the round
// robin (its last own name evicted) just as its turn came up passes the
// turn to the next identity, not back to the one before it — which would
// get two turns in a row (mutant: leaveRing's i < next made <=).
func TestResolveQueueRingTurnKept(t *testing.T) {
	_, q := evictQueue(4)
	a, b, c, d := &Face{share: &idShare{}}, &Face{share: &idShare{}}, &Face{share: &idShare{}}, &Face{share: &idShare{}}
	a1, a2, y, z := pdu.Name{'a', 1}, pdu.Name{'a', 2}, pdu.Name{'y'}, pdu.Name{'z'}
	q.park(a, a1, []byte{1})
	q.park(a, a2, []byte{2})
	q.park(b, y, []byte{3}) // B's only name of its own
	q.park(b, a2, []byte{4})
	if dst, _ := q.nextName(); dst != a1 {
		t.Fatalf("first name looked up %v, want a1", dst)
	}
	q.take(a1) // its lookup done; B's turn is next
	q.park(c, z, []byte{5})
	q.park(d, pdu.Name{'d'}, []byte{6}) // full: B, the largest, loses its PDU on y and leaves the ring
	if q.wait[y] != nil || q.owners[b.share].inRing {
		t.Fatalf("B's PDU on y kept (%v) or B still in the ring (%v)", q.wait[y] != nil, q.owners[b.share].inRing)
	}
	if dst, _ := q.nextName(); dst != z {
		t.Fatalf("next name looked up %v, want C's z (A had its turn)", dst)
	}
}

// evictQueue is a router's resolve queue holding at most maxWaiting PDUs,
// with per-identity and per-name bounds that never bite first.
func evictQueue(maxWaiting int) (*Router, *resolveQueue) {
	r := &Router{}
	r.cfg.Resolver.MaxWaiting = maxWaiting
	r.cfg.Resolver.MaxWaitingPerIdentity = 100
	r.cfg.Resolver.MaxWaitingPerName = 64
	r.met = newMetrics(prometheus.NewRegistry(), r)
	return r, newResolveQueue(r)
}
