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

// TestIdentitySharesForgotten (Session 14): a share lives only while its
// identity has a face, and another domain's only while the domain has one
// — an identity reconnecting gets a fresh share, and a router up for
// months does not keep one for every identity that ever connected
// (mutants: release's "last face" tests <= 0 made < 0).
func TestIdentitySharesForgotten(t *testing.T) {
	ids := &identities{m: map[pdu.Name]*idShare{}}
	nb := func() *tokenBucket { return newTokenBucket(1, 1) }
	dom := pdu.Name{'d'}
	var shares []*idShare
	for i := range 3 {
		for range 2 { // two faces each
			s, err := ids.acquire(pdu.Name{byte(i)}, dom, true, 8, 100, nb, nb, nb)
			if err != nil {
				t.Fatal(err)
			}
			shares = append(shares, s)
		}
	}
	if len(ids.m) != 3 || len(ids.doms) != 1 || ids.doms[dom].faces != 6 {
		t.Fatalf("%d identities, %d domains", len(ids.m), len(ids.doms))
	}
	ids.release(shares[0])
	if ids.m[pdu.Name{0}] == nil {
		t.Fatal("an identity with a face left was forgotten")
	}
	for _, s := range shares[1:] {
		ids.release(s)
	}
	if len(ids.m) != 0 || len(ids.doms) != 0 {
		t.Fatalf("every face released: %d identity shares and %d domain shares kept", len(ids.m), len(ids.doms))
	}
}

// TestDomainRateFloor (Session 14): each identity of another domain is
// guaranteed the domain's verification budget over face.max_per_domain —
// a share of one name of the burst is a floor, under one is none.
func TestDomainRateFloor(t *testing.T) {
	for _, tt := range []struct {
		rate         float64
		burst, faces int
		want         bool
	}{
		{10, 5, 5, true},
		{10, 4, 5, false},
		{10, 5, -1, false}, // faces unbounded
		{-1, 5, 5, false},  // budget unbounded
	} {
		if got := domainRateFloor(tt.rate, tt.burst, tt.faces); (got != nil) != tt.want {
			t.Errorf("domainRateFloor(%v, %d, %d) = %v, want a floor %v", tt.rate, tt.burst, tt.faces, got, tt.want)
		}
	}
}
