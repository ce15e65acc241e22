package router

import (
	"math/rand/v2"
	"testing"

	"github.com/gdpnet/gdpnet/pdu"
)

// TestFibTableAgainstMap drives the open-addressing table and a Go map with
// the same random inserts and deletes (names drawn from a small pool so
// probe runs collide, wrap around the end and shrink) and checks they
// always agree.
func TestFibTableAgainstMap(t *testing.T) {
	for _, seed := range []uint64{0, 1, 0xdeadbeef} {
		rng := rand.New(rand.NewPCG(seed, 7))
		tab := newFibTable(seed)
		ref := map[pdu.Name][]Hop{}
		pool := make([]pdu.Name, 300)
		for i := range pool {
			pool[i] = testName(i)
		}
		face := testFace(1)
		for op := range 40000 {
			n := pool[rng.IntN(len(pool))]
			if rng.IntN(3) == 0 {
				want := ref[n] != nil
				delete(ref, n)
				if got := tab.del(&n); got != want {
					t.Fatalf("seed %d op %d: del = %v, want %v", seed, op, got, want)
				}
			} else {
				h := []Hop{{Face: face, Seq: uint64(op)}}
				ref[n] = h
				tab.set(&n, h)
			}
			if op%97 == 0 {
				if tab.n != len(ref) {
					t.Fatalf("seed %d op %d: %d names, want %d", seed, op, tab.n, len(ref))
				}
				for _, p := range pool {
					got, want := tab.get(&p), ref[p]
					if (got == nil) != (want == nil) || (got != nil && got[0].Seq != want[0].Seq) {
						t.Fatalf("seed %d op %d: get %s = %v, want %v", seed, op, p, got, want)
					}
				}
			}
		}
		count := 0
		tab.each(func(n pdu.Name, h []Hop) bool {
			if ref[n] == nil || ref[n][0].Seq != h[0].Seq {
				t.Fatalf("each yields %s not in the reference", n)
			}
			count++
			return true
		})
		if count != len(ref) {
			t.Fatalf("each yielded %d, want %d", count, len(ref))
		}
	}
}
