package tunnel

import (
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/pdu"
)

func warnName(i int) pdu.Name {
	var n pdu.Name
	binary.BigEndian.PutUint64(n[:], uint64(i)+1)
	return n
}

// The memory of peers warned about holds at most maxWarnedPeers. Full of
// live memberships, a new peer is warned about and not remembered, and a
// remembered peer's renewed membership is remembered (warned about once,
// not on every later link). Once memberships expire, they make room for
// new peers, soonest-expired first, and a renewed peer is kept.
func TestWarnedPeersBound(t *testing.T) {
	var mu sync.Mutex
	t0 := time.Unix(1_000_000, 0)
	now := t0
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := newTestNode(t, false, func(c *Config) { c.Now = clock }).ep
	// Expiries one second apart from t0+1h: peer i expires at t0+1h+i s.
	for i := 0; i < maxWarnedPeers; i++ {
		if !e.firstWarning(warnName(i), t0.Add(time.Hour+time.Duration(i)*time.Second)) {
			t.Fatalf("peer %d: first warning refused", i)
		}
	}
	if e.firstWarning(warnName(7), t0.Add(time.Hour+7*time.Second)) {
		t.Fatal("a remembered peer and membership was warned about twice")
	}
	stranger := warnName(maxWarnedPeers + 1)
	for k := 0; k < 2; k++ {
		if !e.firstWarning(stranger, t0.Add(2*time.Hour)) {
			t.Fatalf("full of live memberships: a new peer's warning %d refused (it cannot be remembered)", k)
		}
	}
	// Peer 0 renews: warned about once for the new membership.
	renewed := t0.Add(10 * time.Hour)
	if !e.firstWarning(warnName(0), renewed) {
		t.Fatal("a renewed membership was not warned about")
	}
	if e.firstWarning(warnName(0), renewed) {
		t.Fatal("full: a renewed membership was warned about again on its next link (not remembered)")
	}
	// Peers 1..10 have expired (t0+1h+10.5 s): ten new peers take their
	// places; the eleventh finds none expired and is not remembered.
	mu.Lock()
	now = t0.Add(time.Hour + 10*time.Second + 500*time.Millisecond)
	mu.Unlock()
	for i := 0; i < 10; i++ {
		p := warnName(2*maxWarnedPeers + i)
		if !e.firstWarning(p, t0.Add(3*time.Hour)) || e.firstWarning(p, t0.Add(3*time.Hour)) {
			t.Fatalf("new peer %d after ten expired: want warned once and remembered", i)
		}
	}
	p := warnName(3 * maxWarnedPeers)
	if !e.firstWarning(p, t0.Add(3*time.Hour)) || !e.firstWarning(p, t0.Add(3*time.Hour)) {
		t.Fatal("the eleventh new peer was remembered: an entry that had not expired was forgotten")
	}
	if e.firstWarning(warnName(0), renewed) || e.firstWarning(warnName(11), t0.Add(time.Hour+11*time.Second)) {
		t.Fatal("a renewed or a live membership was forgotten when expired ones made room")
	}
}

// scanWarned is the memory before Session 13, the baseline of the
// benchmark: once full, every warning scanned all entries for expired ones.
type scanWarned map[pdu.Name]time.Time

func (w scanWarned) first(peer pdu.Name, exp, now time.Time) bool {
	if at, ok := w[peer]; ok && at.Equal(exp) {
		return false
	}
	if len(w) >= maxWarnedPeers {
		for n, at := range w {
			if at.Before(now) {
				delete(w, n)
			}
		}
	}
	if len(w) < maxWarnedPeers {
		w[peer] = exp
	}
	return true
}

// BenchmarkWarnedFull: a warning about a new peer while the memory is full
// of live memberships (4,096 peers), the cost paid under the endpoint's
// lock: scan (the old map, every entry looked at) vs heap (Session 13).
func BenchmarkWarnedFull(b *testing.B) {
	t0 := time.Unix(1_000_000, 0)
	names := make([]pdu.Name, 1<<16)
	for i := range names {
		names[i] = warnName(maxWarnedPeers + i)
	}
	b.Run("scan", func(b *testing.B) {
		w := scanWarned{}
		for i := 0; i < maxWarnedPeers; i++ {
			w.first(warnName(i), t0.Add(time.Hour), t0)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			w.first(names[i%len(names)], t0.Add(time.Hour), t0)
		}
	})
	b.Run("heap", func(b *testing.B) {
		var w warnedPeers
		for i := 0; i < maxWarnedPeers; i++ {
			w.first(warnName(i), t0.Add(time.Hour), t0)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			w.first(names[i%len(names)], t0.Add(time.Hour), t0)
		}
	})
}

// refWarned is the memory's rule written plainly (a map, a linear search
// for the soonest expiry): warnedPeers must answer as it does.
type refWarned map[pdu.Name]time.Time

func (w refWarned) first(peer pdu.Name, exp, now time.Time) bool {
	if at, ok := w[peer]; ok {
		if at.Equal(exp) {
			return false
		}
		w[peer] = exp
		return true
	}
	for len(w) >= maxWarnedPeers {
		var soonest pdu.Name
		var at time.Time
		for n, e := range w {
			if at.IsZero() || e.Before(at) {
				soonest, at = n, e
			}
		}
		if !at.Before(now) {
			break
		}
		delete(w, soonest)
	}
	if len(w) < maxWarnedPeers {
		w[peer] = exp
	}
	return true
}

// 30,000 random warnings (6,000 peers, renewals, a clock moving on)
// answered as the plain rule answers them, the memory never above
// maxWarnedPeers and its map and heap in agreement.
func TestWarnedPeersMatchesRule(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Unix(1_000_000, 0)
	now := t0
	var w warnedPeers
	ref := refWarned{}
	exps := map[pdu.Name]time.Time{}
	for i := 0; i < 30000; i++ {
		now = now.Add(time.Duration(rng.IntN(2000)) * time.Microsecond)
		p := warnName(rng.IntN(6000))
		exp, ok := exps[p]
		if !ok || rng.IntN(10) == 0 {
			// A new (or renewed) membership: distinct expiries, up to 20 s on.
			exp = now.Add(time.Duration(rng.Int64N(int64(20 * time.Second))))
			exps[p] = exp
		}
		if got, want := w.first(p, exp, now), ref.first(p, exp, now); got != want {
			t.Fatalf("event %d: warned %v, the rule says %v", i, got, want)
		}
		if w.len() > maxWarnedPeers || w.len() != len(ref) || len(w.byPeer) != w.len() {
			t.Fatalf("event %d: heap %d, map %d, rule %d entries (max %d)", i, w.len(), len(w.byPeer), len(ref), maxWarnedPeers)
		}
	}
	for j, en := range w.heap {
		if en.i != j || w.byPeer[en.peer] != en || !ref[en.peer].Equal(en.exp) {
			t.Fatalf("heap entry %d disagrees with the map or the rule", j)
		}
	}
}
