package capsuled

import (
	"math/rand/v2"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gdpnet/gdpnet/pdu"
)

// TestSubscriptionsLargestHolder: after any sequence of subscriptions
// added, dropped and evicted, the holder admit would take one from holds
// the most subscriptions (what a scan of every subscriber finds), and a
// subscriber is refused exactly when no holder has more than its share
// plus one — checked against counts kept beside the set.
func TestSubscriptionsLargestHolder(t *testing.T) {
	s := &Server{met: newMetrics(prometheus.NewRegistry())}
	const maxSubs, maxPer = 40, 12
	s.pol.Store(&policy{maxSubs: maxSubs, maxSubsPer: maxPer})
	ss := newSubscriptions(s)
	rng := rand.New(rand.NewPCG(7, 11))
	model := map[pdu.Name]int{}
	var live []*subscription
	id := uint64(0)
	for step := range 20000 {
		who := pdu.Name{byte(rng.IntN(9))}
		if rng.IntN(3) > 0 || len(live) == 0 {
			most := 0
			for _, n := range model {
				most = max(most, n)
			}
			mine := model[who]
			full := len(ss.m) >= maxSubs
			reason := ss.admit(who, who)
			switch {
			case mine >= maxPer:
				if reason != "subscriber_quota" {
					t.Fatalf("step %d: %v holds %d (quota %d): admit %q", step, who, mine, maxPer, reason)
				}
				continue
			case !full:
				if reason != "" {
					t.Fatalf("step %d: room left, admit %q", step, reason)
				}
			case most <= mine+1:
				if reason != "subscriptions_full" {
					t.Fatalf("step %d: full, largest holder %d, %v holds %d: admit %q, want refused", step, most, who, mine, reason)
				}
				continue
			default:
				if reason != "" {
					t.Fatalf("step %d: full, largest holder %d, %v holds %d: admit %q, want one evicted", step, most, who, mine, reason)
				}
				// one subscription of a holder of `most` is gone
				var victim pdu.Name
				found := false
				for w, n := range model {
					if n != len(ss.byWho[w]) {
						if found || n != most || n-1 != len(ss.byWho[w]) {
							t.Fatalf("step %d: evicted from %v holding %d, the largest holds %d", step, w, n, most)
						}
						victim, found = w, true
					}
				}
				if !found {
					t.Fatalf("step %d: admit evicted nothing", step)
				}
				model[victim]--
				kept := live[:0]
				for _, sub := range live {
					if ss.m[sub.key] == sub {
						kept = append(kept, sub)
					}
				}
				live = kept
			}
			id++
			sub := &subscription{key: subKey{who, id}, share: who, cancel: func() {}}
			ss.add(sub)
			live = append(live, sub)
			model[who]++
		} else {
			i := rng.IntN(len(live))
			sub := live[i]
			live[i] = live[len(live)-1]
			live = live[:len(live)-1]
			ss.drop(sub)
			model[sub.key.who]--
		}
		for w, n := range model {
			if n == 0 {
				delete(model, w)
			}
		}
		most := 0
		for _, n := range model {
			most = max(most, n)
		}
		if ss.most != most {
			t.Fatalf("step %d: largest holder holds %d, the set says %d", step, most, ss.most)
		}
	}
}

// TestSubscriptionRestand (Session 19, review12): a renewal whose proof
// lapsed (proven -> unproven) moves to the unproven pool when it has room,
// and stays in its identity's share when the pool is full — never ended
// for the pool's sake; one that proves an identity whose share is full is
// refused (the caller ends it).
func TestSubscriptionRestand(t *testing.T) {
	s := &Server{met: newMetrics(prometheus.NewRegistry())}
	s.pol.Store(&policy{maxSubs: 100, maxSubsPer: 2, maxSubsUnp: 2})
	ss := newSubscriptions(s)
	id, dom, other := pdu.Name{1}, pdu.Name{2}, pdu.Name{3}
	n := uint64(0)
	subscribe := func(who, share, domain pdu.Name) *subscription {
		t.Helper()
		if reason := ss.admit(who, share); reason != "" {
			t.Fatalf("admit %v in %v: %s", who, share, reason)
		}
		n++
		sub := &subscription{key: subKey{who, n}, share: share, domain: domain, cancel: func() {}}
		ss.add(sub)
		return sub
	}
	held := func(share pdu.Name) int { return len(ss.byWho[share]) }
	a := subscribe(pdu.Name{10}, id, dom)
	// The pool has room: a lapsed proof moves there.
	if r := ss.restand(a, a.key.who, unprovenGroup, pdu.Name{}); r != "" || a.share != unprovenGroup || held(id) != 0 || held(unprovenGroup) != 1 {
		t.Fatalf("lapsed, pool with room: %q, share %v, identity holds %d, pool %d; want moved", r, a.share, held(id), held(unprovenGroup))
	}
	// Proven again: back to the identity.
	if r := ss.restand(a, a.key.who, id, dom); r != "" || a.share != id || held(unprovenGroup) != 0 {
		t.Fatalf("proven again: %q, share %v; want the identity's", r, a.share)
	}
	// The pool full (names that prove nothing): a lapsed proof stays put.
	subscribe(pdu.Name{20}, unprovenGroup, pdu.Name{})
	subscribe(pdu.Name{21}, unprovenGroup, pdu.Name{})
	if r := ss.restand(a, a.key.who, unprovenGroup, pdu.Name{}); r != "" || a.share != id || ss.m[a.key] != a || held(id) != 1 || held(unprovenGroup) != 2 {
		t.Fatalf("lapsed, pool full: %q, share %v, live %v; want kept in the identity's share", r, a.share, ss.m[a.key] == a)
	}
	// Another identity whose share is full: refused.
	subscribe(pdu.Name{30}, other, dom)
	subscribe(pdu.Name{31}, other, dom)
	if r := ss.restand(a, a.key.who, other, dom); r != "subscriber_quota" {
		t.Fatalf("into a full identity share: %q, want subscriber_quota", r)
	}
}
