package capsuled

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/pdu"
)

// TestRequesterCacheBookkeeping (Session 16, review9): random proofs,
// re-proofs and expiries over own-domain members and other domains'
// groups; after every lookup the cache's indexes agree — every proven name
// in its group's and its identity's list once, no empty group or identity
// list kept, the counted buckets holding each group at its size with
// most the largest — and the bounds hold (max names, perIdent per
// identity, a quarter of max nodes at the node gate). Each proof claims
// its identity's node, so the gate's paths are walked too (known,
// refused within proofRecheck); the walk must take every result.
func TestRequesterCacheBookkeeping(t *testing.T) {
	const max, perIdent = 40, 4
	c := newRequesterCache(max, perIdent)
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Unix(1_000_000, 0)
	now := t0
	results := map[string]int{}
	for step := range 20_000 {
		now = now.Add(time.Duration(rng.IntN(200)) * time.Millisecond)
		// 30 identities: 0-9 own-domain members (a group each), 10-29
		// members of two other domains (a group each domain).
		id := byte(rng.IntN(30))
		a := asker{group: pdu.Name{0xaa, id}, ident: pdu.Name{0xaa, id}}
		if id >= 10 {
			a.group = pdu.Name{0xd0, id % 2}
		}
		src := pdu.Name{0xee, id, byte(rng.IntN(1 + int(id)%8))} // identity 0 holds one name, 7 eight
		proof := []byte{byte(rng.IntN(3))}
		if rng.IntN(4) == 0 {
			proof = nil
		}
		notAfter := now.Add(time.Duration(1+rng.IntN(20)) * time.Second)
		// The identity's node, claimed by every proof of its names: the
		// node gate (Session 16) proves a name with credentials it
		// verified before (known), refuses others within proofRecheck,
		// and lets the rest be checked as the budget allows.
		node := pdu.Name{0xbe, id}
		_, result, d := c.lookup(src, proof, now, func(gate gateFunc) (asker, time.Time, error) {
			if ga, gnotAfter, done, err := gate(node, proof); done {
				return ga, gnotAfter, err
			}
			return a, notAfter, nil
		})
		results[result]++
		results[cacheEvicted] += d.evicted
		results[cacheGroupShare] += d.groupShare
		results[cacheIdentShare] += d.identShare
		results[cacheExpired] += d.expired
		checkCacheIndexes(t, c, step)
	}
	// Every path taken (else the walk proves less than it says).
	for _, r := range []string{cacheHit, cacheRepeated, cacheProven, cacheKnown, cacheRefused, cacheUnproven,
		cacheEvicted, cacheGroupShare, cacheIdentShare, cacheExpired} {
		if results[r] == 0 {
			t.Errorf("no lookup %s in the walk: %v", r, results)
		}
	}
}

func checkCacheIndexes(t *testing.T, c *requesterCache, step int) {
	t.Helper()
	if len(c.byName) > c.max || len(c.nodes) > c.maxRefused() {
		t.Fatalf("step %d: %d names, max %d; %d nodes, max %d", step, len(c.byName), c.max, len(c.nodes), c.maxRefused())
	}
	inGroups, most := 0, 0
	for k, g := range c.byGroup {
		if g.key != k || g.count() == 0 {
			t.Fatalf("step %d: group %v keyed %v holding %d", step, g.key, k, g.count())
		}
		for el := g.lru.Front(); el != nil; el = el.Next() {
			e := el.Value.(*provenName)
			if c.byName[e.src] != e || e.inGroup != el || e.asker.group != k {
				t.Fatalf("step %d: group %v holds %v, not indexed as such", step, k, e.src)
			}
		}
		inGroups += g.count()
		most = max(most, g.count())
		b := c.counts.by[g.count()]
		if g.slot >= len(b) || b[g.slot] != g {
			t.Fatalf("step %d: group %v (%d names) not in its bucket at slot %d", step, k, g.count(), g.slot)
		}
	}
	inBuckets := 0
	for k, b := range c.counts.by {
		for _, g := range b {
			if g.count() != k || c.byGroup[g.key] != g {
				t.Fatalf("step %d: bucket %d holds group %v of %d names (indexed: %v)", step, k, g.key, g.count(), c.byGroup[g.key] == g)
			}
			inBuckets++
		}
	}
	if inGroups != len(c.byName) || inBuckets != len(c.byGroup) || c.counts.most != most {
		t.Fatalf("step %d: %d names in groups, %d indexed; %d groups in buckets of %d; most %d, largest %d",
			step, inGroups, len(c.byName), inBuckets, len(c.byGroup), c.counts.most, most)
	}
	inIdents := 0
	for k, l := range c.byIdent {
		if l.Len() == 0 || l.Len() > c.perIdent {
			t.Fatalf("step %d: identity %v holds %d names (per identity %d)", step, k, l.Len(), c.perIdent)
		}
		for el := l.Front(); el != nil; el = el.Next() {
			e := el.Value.(*provenName)
			if c.byName[e.src] != e || e.mine != el || e.asker.ident != k {
				t.Fatalf("step %d: identity %v holds %v, not indexed as such", step, k, e.src)
			}
		}
		inIdents += l.Len()
	}
	if inIdents != len(c.byName) {
		t.Fatalf("step %d: %d names in identities, %d indexed", step, inIdents, len(c.byName))
	}
}
