package router

import (
	"container/heap"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gdpnet/gdpnet/pdu"
)

// ErrFIBFull is returned when installing a new name would exceed the FIB's
// configured size bound.
var ErrFIBFull = errors.New("router: fib full")

// errFaceClosed: a hop was installed on a face that closed meanwhile; it
// was removed again.
var errFaceClosed = errors.New("router: face closed while its route was installed")

// Origin says where a route came from.
type Origin uint8

// Route origins.
const (
	// OriginLocal: an endpoint attached to this router advertised the name
	// with a verified chain.
	OriginLocal Origin = iota + 1
	// OriginResolver: a resolver lookup said another router holds the name.
	OriginResolver
	// OriginStatic: configured by the operator.
	OriginStatic
)

func (o Origin) String() string {
	switch o {
	case OriginLocal:
		return "local"
	case OriginResolver:
		return "resolver"
	case OriginStatic:
		return "static"
	}
	return "unknown"
}

// Hop is one next hop for a name: the face to send on and what the router
// knows about the route. Hops are immutable once installed.
type Hop struct {
	Face   *Face
	Cost   uint32    // lower is nearer; local faces are 0
	Expiry time.Time // zero: never expires
	Origin Origin
	// Router is the router that holds the name (this router for local
	// routes; for a peer route it may lie beyond Face).
	Router pdu.Name
	// Seq is the advertisement sequence that installed a local route.
	Seq uint64
	// Domains (resolver-learned hops) are the trust domains whose
	// location records proved the hop (Session 18): the record's domain,
	// or the upstream's for a name the resolver did not know. A reload
	// that withdraws trust drops a hop only when none of them is trusted
	// any more (FIB.Untrust), so routes proven by the domains still
	// trusted carry on without a new lookup.
	Domains []pdu.Name
	// DomainsUntil holds, for each of Domains, the expiry of the install
	// whose record proved it (Session 19): a domain whose record stopped
	// proving the hop is forgotten at the next install after that, so a
	// route refreshed again and again by one domain's records does not
	// keep another's forever. Empty: every domain lasts as long as the hop.
	DomainsUntil []time.Time
}

const fibShards = 256

// fibShard guards a part of the name space. Readers take the read lock only
// long enough to copy a slice header: hop slices are replaced, never mutated
// (copy on write), so a reader may use them after unlocking.
type fibShard struct {
	mu sync.RWMutex
	t  fibTable
	_  [16]byte // keep shards on separate cache lines
}

// FIB maps names to next hops. Lookups from many goroutines proceed in
// parallel (sharded read locks, no global lock); installs and removals are
// rarer and take one shard's write lock. Expiry is driven by a single heap
// that the owner drains with Expire, not by a goroutine or timer per entry.
type FIB struct {
	shards [fibShards]fibShard
	max    int
	names  atomic.Int64

	// mu guards exp and byFace. It is taken before a shard's lock, never
	// while one is held (unindex reads a shard under it).
	mu     sync.Mutex
	exp    expiryHeap
	byFace map[uint64]map[pdu.Name]struct{}

	now func() time.Time // the clock Install prunes domains by (tests set it)
}

// NewFIB returns an empty FIB holding at most max names (0: unbounded).
func NewFIB(max int) *FIB {
	f := &FIB{max: max, byFace: make(map[uint64]map[pdu.Name]struct{}), now: time.Now}
	seed := rand.Uint64()
	for i := range f.shards {
		f.shards[i].t = newFibTable(seed)
	}
	return f
}

func (f *FIB) shard(n *pdu.Name) *fibShard {
	// Names are SHA-256 outputs: any byte is uniformly distributed.
	return &f.shards[n[31]]
}

// Lookup returns the next hops for n, or nil. The slice must not be modified.
func (f *FIB) Lookup(n pdu.Name) []Hop {
	s := f.shard(&n)
	s.mu.RLock()
	h := s.t.get(&n)
	s.mu.RUnlock()
	return h
}

// Len returns the number of names in the FIB.
func (f *FIB) Len() int { return int(f.names.Load()) }

// Install adds h for n, replacing any hop n already has through the same
// face. It fails with ErrFIBFull when n is new and the FIB is at its bound.
func (f *FIB) Install(n pdu.Name, h Hop) error {
	s := f.shard(&n)
	s.mu.Lock()
	old := s.t.get(&n)
	if old == nil {
		if f.max > 0 && f.names.Load() >= int64(f.max) {
			s.mu.Unlock()
			return ErrFIBFull
		}
		f.names.Add(1)
	}
	hops := make([]Hop, 0, len(old)+1)
	for _, o := range old {
		if o.Face != h.Face {
			hops = append(hops, o)
		} else if o.Origin == OriginResolver && h.Origin == OriginResolver {
			// Several holders reached through one face (the upstream):
			// the hop is proven by each of their records' domains
			// whose proof has not expired.
			h.Domains, h.DomainsUntil = unionDomains(o, h, f.now())
		}
	}
	hops = append(hops, h)
	sortHops(hops)
	s.t.set(&n, hops)
	s.mu.Unlock()
	if fibHookSet != nil {
		fibHookSet(n)
	}

	f.mu.Lock()
	if !h.Expiry.IsZero() {
		heap.Push(&f.exp, expiryItem{at: h.Expiry, name: n, face: h.Face})
	}
	set := f.byFace[h.Face.id]
	if set == nil {
		set = make(map[pdu.Name]struct{})
		f.byFace[h.Face.id] = set
	}
	set[n] = struct{}{}
	f.mu.Unlock()
	if h.Face.closed.Load() {
		// detach marks a face closed before RemoveFace takes its index:
		// RemoveFace saw this entry, or this sees the face closed and
		// removes the hop it would have left on a detached face.
		f.removeIf(n, h.Face, func(Hop) bool { return true })
		f.unindex(n, h.Face)
		return errFaceClosed
	}
	return nil
}

// Test hooks (nil outside tests): fibHookSet runs when Install has set
// its hop in the shard and not yet indexed it, fibHookRemoved when a
// removal has taken a hop out of its shard and not yet out of the index.
var fibHookSet, fibHookRemoved func(n pdu.Name)

// sortHops orders hops nearest first (insertion sort: slices are tiny).
func sortHops(h []Hop) {
	for i := 1; i < len(h); i++ {
		for j := i; j > 0 && h[j].Cost < h[j-1].Cost; j-- {
			h[j], h[j-1] = h[j-1], h[j]
		}
	}
}

// Remove drops n's hop through face. It reports whether there was one.
func (f *FIB) Remove(n pdu.Name, face *Face) bool {
	removed := f.removeIf(n, face, func(Hop) bool { return true })
	if removed {
		f.unindex(n, face)
	}
	return removed
}

// unindex forgets that n has a hop through face, after a removal took
// the hop out of its shard — unless n has a hop through face again: an
// Install of n on face since (its hop set under the shard lock, its index
// entry then under mu) owns the entry, and forgetting it would leave that
// hop behind when the face detaches (RemoveFace goes by the index).
func (f *FIB) unindex(n pdu.Name, face *Face) {
	if fibHookRemoved != nil {
		fibHookRemoved(n)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.shard(&n)
	s.mu.RLock()
	again := slices.ContainsFunc(s.t.get(&n), func(h Hop) bool { return h.Face == face })
	s.mu.RUnlock()
	if again {
		return
	}
	if set := f.byFace[face.id]; set != nil {
		delete(set, n)
		if len(set) == 0 {
			delete(f.byFace, face.id)
		}
	}
}

// unionDomains returns the domains proving both the installed hop o and
// its replacement h with their expiries, in new slices (hops are immutable
// once installed): h's, then those of o whose proof is still good at now
// and that h does not name. An o domain with no expiry of its own lasts
// as long as o did.
func unionDomains(o, h Hop, now time.Time) ([]pdu.Name, []time.Time) {
	doms := slices.Clone(h.Domains)
	until := make([]time.Time, len(doms))
	for i := range doms {
		until[i] = domainUntil(h, i)
	}
	for i, d := range o.Domains {
		u := domainUntil(o, i)
		if j := slices.Index(doms, d); j >= 0 {
			if u.After(until[j]) {
				until[j] = u
			}
			continue
		}
		if u.IsZero() || u.After(now) {
			doms = append(doms, d)
			until = append(until, u)
		}
	}
	return doms, until
}

// domainUntil is when the proof of h's i-th domain runs out: its own
// expiry, or the hop's.
func domainUntil(h Hop, i int) time.Time {
	if i < len(h.DomainsUntil) {
		return h.DomainsUntil[i]
	}
	return h.Expiry
}

// Untrust applies a reload that withdrew trust to the resolver-learned
// hops: each forgets the domains trusted reports false for, and a hop
// left with none (or that never named one) is removed. It reports how
// many hops were removed and how many were kept (Router.Reload).
func (f *FIB) Untrust(trusted func(domain pdu.Name) bool) (removed, kept int) {
	type at struct {
		n    pdu.Name
		face *Face
	}
	var check []at
	f.Walk(func(n pdu.Name, hops []Hop) bool {
		for _, h := range hops {
			if h.Origin == OriginResolver {
				check = append(check, at{n, h.Face})
			}
		}
		return true
	})
	for _, c := range check {
		switch f.untrustHop(c.n, c.face, trusted) {
		case hopRemoved:
			removed++
		case hopKept:
			kept++
		}
	}
	return removed, kept
}

type untrustResult uint8

const (
	hopAbsent untrustResult = iota
	hopKept
	hopRemoved
)

// untrustHop applies trusted to n's resolver-learned hop through face:
// its untrusted domains go, and the hop goes when none is left.
func (f *FIB) untrustHop(n pdu.Name, face *Face, trusted func(pdu.Name) bool) untrustResult {
	s := f.shard(&n)
	s.mu.Lock()
	old := s.t.get(&n)
	idx := slices.IndexFunc(old, func(h Hop) bool { return h.Face == face && h.Origin == OriginResolver })
	if idx < 0 {
		s.mu.Unlock()
		return hopAbsent
	}
	// A domain still trusted keeps the hop while its own proof lasts;
	// one whose record stopped proving it does not (DomainsUntil).
	now := f.now()
	h := old[idx]
	doms := make([]pdu.Name, 0, len(h.Domains))
	until := make([]time.Time, 0, len(h.Domains))
	for i, d := range h.Domains {
		if u := domainUntil(h, i); trusted(d) && (u.IsZero() || u.After(now)) {
			doms = append(doms, d)
			until = append(until, u)
		}
	}
	if len(doms) > 0 {
		if len(doms) < len(h.Domains) {
			hops := slices.Clone(old)
			hops[idx].Domains = doms
			hops[idx].DomainsUntil = until
			s.t.set(&n, hops)
		}
		s.mu.Unlock()
		return hopKept
	}
	if len(old) == 1 {
		s.t.del(&n)
		f.names.Add(-1)
	} else {
		s.t.set(&n, slices.Delete(slices.Clone(old), idx, idx+1))
	}
	s.mu.Unlock()
	f.unindex(n, face)
	return hopRemoved
}

// removeIf drops n's hop through face when cond holds for it.
func (f *FIB) removeIf(n pdu.Name, face *Face, cond func(Hop) bool) bool {
	s := f.shard(&n)
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.t.get(&n)
	idx := -1
	for i, o := range old {
		if o.Face == face {
			idx = i
			break
		}
	}
	if idx < 0 || !cond(old[idx]) {
		return false
	}
	if len(old) == 1 {
		s.t.del(&n)
		f.names.Add(-1)
		return true
	}
	hops := make([]Hop, 0, len(old)-1)
	hops = append(hops, old[:idx]...)
	hops = append(hops, old[idx+1:]...)
	s.t.set(&n, hops)
	return true
}

// RemoveFace drops every hop through face and returns the names that had
// one.
func (f *FIB) RemoveFace(face *Face) []pdu.Name {
	f.mu.Lock()
	set := f.byFace[face.id]
	delete(f.byFace, face.id)
	f.mu.Unlock()
	names := make([]pdu.Name, 0, len(set))
	for n := range set {
		if f.removeIf(n, face, func(Hop) bool { return true }) {
			names = append(names, n)
		}
	}
	return names
}

// Expired is a route that Expire removed.
type Expired struct {
	Name pdu.Name
	Hop  Hop
}

// Expire removes every hop whose expiry is at or before now and returns
// them. Hops renewed since they were scheduled are left alone.
func (f *FIB) Expire(now time.Time) []Expired {
	var due []expiryItem
	f.mu.Lock()
	for len(f.exp) > 0 && !f.exp[0].at.After(now) {
		due = append(due, heap.Pop(&f.exp).(expiryItem))
	}
	f.mu.Unlock()
	var out []Expired
	for _, it := range due {
		var gone Hop
		if f.removeIf(it.name, it.face, func(h Hop) bool {
			gone = h
			return !h.Expiry.IsZero() && !h.Expiry.After(now)
		}) {
			out = append(out, Expired{Name: it.name, Hop: gone})
			f.unindex(it.name, it.face)
		}
	}
	return out
}

// NextExpiry returns when the earliest scheduled expiry falls due, or the
// zero time when nothing is scheduled.
func (f *FIB) NextExpiry() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.exp) == 0 {
		return time.Time{}
	}
	return f.exp[0].at
}

// Walk calls fn for every name and its hops until fn returns false. It holds
// one shard's read lock at a time.
func (f *FIB) Walk(fn func(n pdu.Name, hops []Hop) bool) {
	for i := range f.shards {
		s := &f.shards[i]
		s.mu.RLock()
		more := s.t.each(fn)
		s.mu.RUnlock()
		if !more {
			return
		}
	}
}

type expiryItem struct {
	at   time.Time
	name pdu.Name
	face *Face
}

type expiryHeap []expiryItem

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiryItem)) }
func (h *expiryHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}
