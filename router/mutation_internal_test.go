package router

import (
	"testing"

	"github.com/gdpnet/gdpnet/pdu"
)

// TestPeerSlotsBounds: a downstream router gets exactly limit slots and
// exactly maxDownstreamBacklog queued records, another router its own;
// the record beyond both is refused (neither started nor queued).
// Mutants (docs/SECURITY.md §2.13): upstream.go:75 boundary (< → <=) and
// :79 boundary (>= → >).
func TestPeerSlotsBounds(t *testing.T) {
	var p peerSlots
	a, b := pdu.Name{1}, pdu.Name{2}
	for i := range 3 {
		if start, queued := p.admit(a, 3, downJob{}); !start || queued {
			t.Fatalf("record %d within the limit: start %v queued %v", i, start, queued)
		}
	}
	for i := range maxDownstreamBacklog {
		if start, queued := p.admit(a, 3, downJob{}); start || !queued {
			t.Fatalf("record %d of the backlog: start %v queued %v", i, start, queued)
		}
	}
	if start, queued := p.admit(a, 3, downJob{}); start || queued {
		t.Fatalf("record beyond the slots and the backlog: start %v queued %v", start, queued)
	}
	if start, _ := p.admit(b, 3, downJob{}); !start {
		t.Fatal("another router's record waits behind the first router's")
	}
	// A slot holder drains the backlog, then its slot is free again.
	for i := range maxDownstreamBacklog {
		if _, ok := p.next(a); !ok {
			t.Fatalf("backlog record %d lost", i)
		}
	}
	if _, ok := p.next(a); ok {
		t.Fatal("more records than were queued")
	}
	if start, _ := p.admit(a, 3, downJob{}); !start {
		t.Fatal("the released slot is not given out again")
	}
}
