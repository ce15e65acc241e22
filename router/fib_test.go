package router

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/pdu"
)

func testName(i int) pdu.Name {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	return sha256.Sum256(b[:])
}

func testFace(id uint64) *Face { return &Face{id: id, kind: FaceEndpoint} }

func TestFIBInstallLookupRemove(t *testing.T) {
	f := NewFIB(0)
	a, b, c := testFace(1), testFace(2), testFace(3)
	n := testName(1)
	if f.Lookup(n) != nil {
		t.Fatal("empty FIB returned hops")
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(f.Install(n, Hop{Face: a, Cost: 2}))
	must(f.Install(n, Hop{Face: b, Cost: 0}))
	must(f.Install(n, Hop{Face: c, Cost: 1}))
	hops := f.Lookup(n)
	if len(hops) != 3 || hops[0].Face != b || hops[1].Face != c || hops[2].Face != a {
		t.Fatalf("hops not sorted nearest first: %+v", hops)
	}
	// Reinstalling through the same face replaces, not duplicates.
	must(f.Install(n, Hop{Face: a, Cost: 0, Seq: 7}))
	hops = f.Lookup(n)
	if len(hops) != 3 || hops[0].Cost != 0 || hops[1].Cost != 0 {
		t.Fatalf("replace failed: %+v", hops)
	}
	if f.Len() != 1 {
		t.Fatalf("Len = %d, want 1", f.Len())
	}
	if !f.Remove(n, b) || f.Remove(n, b) {
		t.Fatal("Remove should succeed once")
	}
	if got := f.RemoveFace(a); len(got) != 1 || got[0] != n {
		t.Fatalf("RemoveFace = %v", got)
	}
	if !f.Remove(n, c) || f.Len() != 0 || f.Lookup(n) != nil {
		t.Fatal("FIB not empty after removing every hop")
	}
}

func TestFIBSizeBound(t *testing.T) {
	f := NewFIB(2)
	a := testFace(1)
	for i := range 2 {
		if err := f.Install(testName(i), Hop{Face: a}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Install(testName(3), Hop{Face: a}); !errors.Is(err, ErrFIBFull) {
		t.Fatalf("third name: %v, want ErrFIBFull", err)
	}
	// Another hop for a name already present is not a new name.
	if err := f.Install(testName(0), Hop{Face: testFace(2)}); err != nil {
		t.Fatalf("second hop for a present name: %v", err)
	}
}

func TestFIBExpiry(t *testing.T) {
	f := NewFIB(0)
	a, b := testFace(1), testFace(2)
	now := time.Now()
	n1, n2 := testName(1), testName(2)
	_ = f.Install(n1, Hop{Face: a, Expiry: now.Add(time.Second)})
	_ = f.Install(n2, Hop{Face: a, Expiry: now.Add(time.Hour)})
	_ = f.Install(n2, Hop{Face: b}) // never expires
	if got := f.NextExpiry(); !got.Equal(now.Add(time.Second)) {
		t.Fatalf("NextExpiry = %v", got)
	}
	if got := f.Expire(now); len(got) != 0 {
		t.Fatalf("expired too early: %v", got)
	}
	// Renewal moves the expiry; the old heap entry must not remove it.
	_ = f.Install(n1, Hop{Face: a, Expiry: now.Add(2 * time.Hour)})
	if got := f.Expire(now.Add(time.Minute)); len(got) != 0 {
		t.Fatalf("renewed route expired: %v", got)
	}
	got := f.Expire(now.Add(90 * time.Minute))
	if len(got) != 1 || got[0].Name != n2 || got[0].Hop.Face != a {
		t.Fatalf("Expire = %+v, want n2 via a", got)
	}
	if hops := f.Lookup(n2); len(hops) != 1 || hops[0].Face != b {
		t.Fatalf("n2 hops after expiry: %+v", hops)
	}
	if got := f.Expire(now.Add(3 * time.Hour)); len(got) != 1 || f.Len() != 1 {
		t.Fatalf("final expiry: %+v, len %d", got, f.Len())
	}
}

func TestFIBConcurrent(t *testing.T) {
	f := NewFIB(0)
	faces := []*Face{testFace(1), testFace(2), testFace(3), testFace(4)}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				n := testName(i % 300)
				switch (i + w) % 3 {
				case 0:
					_ = f.Install(n, Hop{Face: faces[w], Cost: uint32(i % 3)})
				case 1:
					for _, h := range f.Lookup(n) {
						if h.Face == nil {
							t.Error("nil face in hops")
							return
						}
					}
				case 2:
					f.Remove(n, faces[w])
				}
			}
		}()
	}
	wg.Wait()
	count := 0
	f.Walk(func(pdu.Name, []Hop) bool { count++; return true })
	if count != f.Len() {
		t.Fatalf("Walk saw %d names, Len says %d", count, f.Len())
	}
}

// bigFIB is built once per benchmark binary, not once per b.N round.
var bigFIB struct {
	once  sync.Once
	f     *FIB
	names []pdu.Name
}

// BenchmarkFIBLookup1M measures a lookup among 1,000,000 names from
// parallel goroutines (the forwarding hot path). Target: ≤ 200 ns.
func BenchmarkFIBLookup1M(b *testing.B) {
	const n = 1_000_000
	bigFIB.once.Do(func() {
		bigFIB.f = NewFIB(0)
		face := testFace(1)
		bigFIB.names = make([]pdu.Name, n)
		for i := range bigFIB.names {
			bigFIB.names[i] = testName(i)
			_ = bigFIB.f.Install(bigFIB.names[i], Hop{Face: face})
		}
	})
	f, names := bigFIB.f, bigFIB.names
	// serial: the latency of one lookup on one core (names in sequence,
	// so the benchmark's own array is prefetched; the FIB's buckets are
	// random, as in real traffic).
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			if f.Lookup(names[i%n]) == nil {
				b.Fatal("miss")
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/lookup")
	})
	// parallel: every core looking up at once (no global lock).
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			i := int(next.Add(n / 4))
			for pb.Next() {
				if f.Lookup(names[i%n]) == nil {
					b.Fatal("miss")
				}
				i++
			}
		})
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/lookup")
	})
}

// An empty FIB allocates its shards' slots only as names arrive: a
// simulation runs ten thousand routers whose names fill few shards (it
// held 256 KiB of empty slots a router), and the table still works from
// empty through growth and back.
func TestFIBEmptyIsSmall(t *testing.T) {
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	fibs := make([]*FIB, 16)
	for i := range fibs {
		fibs[i] = NewFIB(0)
	}
	runtime.ReadMemStats(&m1)
	if per := (m1.TotalAlloc - m0.TotalAlloc) / uint64(len(fibs)); per > 32<<10 {
		t.Fatalf("an empty FIB allocates %d bytes, want ≤ 32 KiB", per)
	}
	f, a := fibs[0], testFace(1)
	if f.Lookup(testName(1)) != nil || f.Remove(testName(1), a) {
		t.Fatal("empty FIB found a name")
	}
	for i := range 2000 {
		if err := f.Install(testName(i), Hop{Face: a}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2000 {
		if f.Lookup(testName(i)) == nil {
			t.Fatalf("name %d lost", i)
		}
		if i%2 == 0 && !f.Remove(testName(i), a) {
			t.Fatalf("name %d not removed", i)
		}
	}
	if f.Len() != 1000 || f.Lookup(testName(0)) != nil || f.Lookup(testName(1)) == nil {
		t.Fatalf("after removing half: Len %d", f.Len())
	}
}

// TestFIBUntrust (Session 18): a reload that withdraws a domain removes the
// resolver-learned hops proven only by that domain's records; a hop
// proven also by a domain still trusted (two holders' records reached
// through one face) keeps the trusted domain, and local hops are left
// alone.
func TestFIBUntrust(t *testing.T) {
	f := NewFIB(0)
	up, local := testFace(1), testFace(2)
	a, b, c := testName(100), testName(101), testName(102)
	onlyB, both, mine := testName(1), testName(2), testName(3)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(f.Install(onlyB, Hop{Face: up, Cost: 2, Origin: OriginResolver, Domains: []pdu.Name{b}}))
	must(f.Install(both, Hop{Face: up, Cost: 2, Origin: OriginResolver, Domains: []pdu.Name{a}}))
	must(f.Install(both, Hop{Face: up, Cost: 2, Origin: OriginResolver, Domains: []pdu.Name{b}}))
	must(f.Install(mine, Hop{Face: local, Origin: OriginLocal}))
	must(f.Install(mine, Hop{Face: up, Cost: 2, Origin: OriginResolver, Domains: []pdu.Name{c}}))

	trusted := map[pdu.Name]bool{a: true, c: true} // b withdrawn
	removed, kept := f.Untrust(func(d pdu.Name) bool { return trusted[d] })
	if removed != 1 || kept != 2 {
		t.Fatalf("Untrust: removed %d, kept %d; want 1, 2", removed, kept)
	}
	if f.Lookup(onlyB) != nil {
		t.Fatal("a hop proven only by the withdrawn domain stayed")
	}
	h := f.Lookup(both)
	if len(h) != 1 || len(h[0].Domains) != 1 || h[0].Domains[0] != a {
		t.Fatalf("a hop proven by a trusted domain and the withdrawn one: %+v, want it kept with the trusted domain only", h)
	}
	if len(f.Lookup(mine)) != 2 {
		t.Fatalf("hops of a name in a trusted domain: %+v, want the local and the learnt one", f.Lookup(mine))
	}
	if n := f.Len(); n != 2 {
		t.Fatalf("Len %d after Untrust, want 2", n)
	}

	trusted = map[pdu.Name]bool{c: true} // then a withdrawn too
	if removed, kept := f.Untrust(func(d pdu.Name) bool { return trusted[d] }); removed != 1 || kept != 1 {
		t.Fatalf("second Untrust: removed %d, kept %d; want 1, 1", removed, kept)
	}
	if f.Lookup(both) != nil {
		t.Fatal("a hop whose every proving domain was withdrawn stayed")
	}
	// The removed hops are unindexed: removing the face finds only mine.
	if names := f.RemoveFace(up); len(names) != 1 || names[0] != mine {
		t.Fatalf("RemoveFace after Untrust: %v, want only the trusted name's", names)
	}
}

// TestFIBDomainProofExpires: a hop refreshed by one domain's records
// forgets a domain whose record stopped proving it once that record's
// proof has expired (review11 of Session 17: the union kept every domain
// that ever proved the hop until the hop itself expired, and a hop
// refreshed before each expiry kept them forever), so withdrawing the
// domain that proves it now removes it.
func TestFIBDomainProofExpires(t *testing.T) {
	f := NewFIB(0)
	t0 := time.Unix(1_800_000_000, 0)
	now := t0
	f.now = func() time.Time { return now }
	up := testFace(1)
	b, c := testName(101), testName(102)
	n := testName(1)
	ttl := 30 * time.Second
	install := func(d pdu.Name) {
		t.Helper()
		if err := f.Install(n, Hop{Face: up, Cost: 2, Origin: OriginResolver, Expiry: now.Add(ttl),
			Domains: []pdu.Name{d}, DomainsUntil: []time.Time{now.Add(ttl)}}); err != nil {
			t.Fatal(err)
		}
	}
	install(b)
	now = t0.Add(10 * time.Second)
	install(c) // both prove it: B's record until t0+30 s, C's until t0+40 s
	if h := f.Lookup(n); len(h) != 1 || len(h[0].Domains) != 2 {
		t.Fatalf("two records' domains through one face: %+v, want both", h)
	}
	now = t0.Add(35 * time.Second)
	install(c) // B's proof is over; C refreshes the hop
	if h := f.Lookup(n); len(h) != 1 || len(h[0].Domains) != 1 || h[0].Domains[0] != c {
		t.Fatalf("after B's proof expired: %+v, want C's domain only", h)
	}
	removed, kept := f.Untrust(func(d pdu.Name) bool { return d == b }) // C withdrawn
	if removed != 1 || kept != 0 || f.Lookup(n) != nil {
		t.Fatalf("C withdrawn: removed %d, kept %d, hops %+v; want the hop gone (B no longer proves it)", removed, kept, f.Lookup(n))
	}

	// Untrust itself does not count a domain whose proof has run out.
	f2 := NewFIB(0)
	f2.now = func() time.Time { return now }
	if err := f2.Install(n, Hop{Face: up, Cost: 2, Origin: OriginResolver, Expiry: now.Add(ttl),
		Domains: []pdu.Name{b, c}, DomainsUntil: []time.Time{now.Add(-time.Second), now.Add(ttl)}}); err != nil {
		t.Fatal(err)
	}
	if removed, _ := f2.Untrust(func(d pdu.Name) bool { return d == b }); removed != 1 {
		t.Fatalf("Untrust kept a hop whose only trusted domain's proof had expired (removed %d)", removed)
	}
}

// detachedFIBHops lists the names with a hop through face that RemoveFace
// (what detach calls) left behind, after running it.
func detachedFIBHops(f *FIB, face *Face) []pdu.Name {
	f.RemoveFace(face)
	var left []pdu.Name
	f.Walk(func(n pdu.Name, hops []Hop) bool {
		for _, h := range hops {
			if h.Face == face {
				left = append(left, n)
			}
		}
		return true
	})
	return left
}

// TestFIBReinstallDuringRemovalStaysIndexed: a hop's shard and the
// per-face index are guarded by two locks, so an Install of the same name
// on the same face can land between a removal taking the old hop out of
// its shard and out of the index (Remove: a withdraw racing the next
// advertisement; Expire: a route expiring as the lookup that renews it
// installs). The new hop keeps its index entry, so the face's detach
// still removes it — not a route left on a closed face until it expires.
func TestFIBReinstallDuringRemovalStaysIndexed(t *testing.T) {
	t.Cleanup(func() { fibHookRemoved = nil })
	now := time.Now()
	for _, c := range []struct {
		name   string
		remove func(f *FIB, n pdu.Name, face *Face) bool
	}{
		{"remove", func(f *FIB, n pdu.Name, face *Face) bool { return f.Remove(n, face) }},
		{"expire", func(f *FIB, n pdu.Name, face *Face) bool { return len(f.Expire(now.Add(2*time.Second))) == 1 }},
		{"untrust", func(f *FIB, n pdu.Name, face *Face) bool {
			removed, _ := f.Untrust(func(pdu.Name) bool { return false })
			return removed == 1
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := NewFIB(0)
			face, n := testFace(1), testName(7)
			dom := testName(99)
			if err := f.Install(n, Hop{Face: face, Expiry: now.Add(time.Second), Origin: OriginResolver, Domains: []pdu.Name{dom}}); err != nil {
				t.Fatal(err)
			}
			var again error
			fibHookRemoved = func(pdu.Name) {
				fibHookRemoved = nil
				again = f.Install(n, Hop{Face: face, Expiry: now.Add(time.Hour), Origin: OriginLocal})
			}
			if !c.remove(f, n, face) {
				t.Fatal("the first hop was not removed")
			}
			if again != nil {
				t.Fatalf("the install between: %v", again)
			}
			if hops := f.Lookup(n); len(hops) != 1 || hops[0].Face != face {
				t.Fatalf("after the install between: %+v, want the new hop", hops)
			}
			if left := detachedFIBHops(f, face); len(left) != 0 {
				t.Fatalf("the face detached, %d hops through it left in the FIB (its index entry was removed)", len(left))
			}
			if f.Len() != 0 {
				t.Fatalf("Len = %d after the detach, want 0", f.Len())
			}
		})
	}
}

// TestFIBInstallOnDetachingFace: a hop installed as its face detaches
// (an advertisement or a lookup finishing as the tunnel goes down) is not
// left in the FIB. Install sets the hop, then indexes it under another
// lock; detach marks the face closed, then RemoveFace removes what the
// index lists. When RemoveFace runs in between, Install sees the face
// closed after indexing, removes its hop and says so.
func TestFIBInstallOnDetachingFace(t *testing.T) {
	t.Cleanup(func() { fibHookSet = nil })
	f := NewFIB(0)
	face, n, other := testFace(1), testName(8), testName(9)
	if err := f.Install(other, Hop{Face: face}); err != nil {
		t.Fatal(err)
	}
	var removed []pdu.Name
	fibHookSet = func(pdu.Name) {
		fibHookSet = nil
		face.closed.Store(true) // as detach does, before RemoveFace
		removed = f.RemoveFace(face)
	}
	if err := f.Install(n, Hop{Face: face, Origin: OriginLocal}); !errors.Is(err, errFaceClosed) {
		t.Fatalf("Install on a face that detached meanwhile: %v, want errFaceClosed", err)
	}
	if len(removed) != 1 || removed[0] != other {
		t.Fatalf("RemoveFace removed %v, want only the name indexed before", removed)
	}
	if hops := f.Lookup(n); len(hops) != 0 {
		t.Fatalf("a hop on the detached face stayed in the FIB: %+v", hops)
	}
	if f.Len() != 0 {
		t.Fatalf("Len = %d, want 0", f.Len())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.byFace) != 0 {
		t.Fatalf("the index still lists faces: %v", f.byFace)
	}
}
