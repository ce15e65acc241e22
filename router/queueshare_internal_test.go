package router

import (
	"testing"

	"github.com/gdpnet/gdpnet/pdu"
)

// TestQueueShareSurvivesReconnect (review7): an identity's share of a
// face's egress queue is its peer name's, not its *idShare's. The router
// drops an identity's idShare when its last face closes and makes a new
// one when it reconnects, while its PDUs still wait in the egress queue;
// keyed by the idShare, a flooder that cycled its tunnel got a fresh
// share each time and could fill a stalled face's queue despite the split.
func TestQueueShareSurvivesReconnect(t *testing.T) {
	q := newQueueShares(64, 64*1024) // unit 1 KiB
	flood := pdu.Name{1}
	first := &idShare{peer: flood}
	n := 0
	for {
		if _, ok := q.take(first, 1024); !ok {
			break
		}
		if n++; n > 64 {
			t.Fatal("a lone sender was never refused")
		}
	}
	if n != 32 {
		t.Fatalf("a lone flooder holds %d KiB of a 64 KiB queue, want half (32)", n)
	}
	// Its last face closes, it reconnects: a new idShare for the same peer.
	again := &idShare{peer: flood}
	if _, ok := q.take(again, 1024); ok {
		t.Fatal("the reconnected flooder got a fresh share while its PDUs still wait")
	}
	// Another identity still finds its (k+1)-th: 64/3 KiB.
	other := &idShare{peer: pdu.Name{2}}
	got := 0
	for {
		if _, ok := q.take(other, 1024); !ok {
			break
		}
		got++
	}
	if got != 21 && got != 20 {
		t.Fatalf("another identity got %d KiB, want about a third of 64", got)
	}
	// What the first connection queued is given back under the peer's
	// name: the reconnected flooder may send again once it drained.
	for range n {
		q.give(first, 1024)
	}
	if _, ok := q.take(again, 1024); !ok {
		t.Fatal("the flooder refused after its PDUs drained")
	}
}
