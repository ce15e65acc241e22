package resolver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p-kad-dht/records"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/gdpnet/gdpnet/pdu"
)

// recordStore is the datastore under kad-dht's value store (and under the
// node's own local copy): every record set a peer puts, or the node
// publishes, is written through it. It enforces two things kad-dht does
// not:
//
//   - A bound per publisher: at most max keys hold an entry of any one
//     router (Record.Router — the router a location record points at; for
//     a border record, the domain router behind it), so one member cannot
//     fill every node's memory with self-minted names. An entry that would
//     take its router over the bound is dropped from the set before it is
//     stored (the set's other entries are stored; a put left with no entry
//     is refused) and counted as records_refused_total{reason="router_quota"}.
//     Entries already held under a key stay (an update is not a new key),
//     and the node's own router is never bounded at its own node.
//     Likewise all the routers of one domain other than the node's own
//     together hold at most maxDomain entries (a trusted domain's
//     operator mints routers at will): records_refused_total{reason=
//     "domain_quota"}.
//   - Expiry: a sweep every StoreSweep deletes sets older than RecordAge
//     (kad-dht's own sweep runs once a day and its lazy check only on
//     read) and drops entries whose certificates or expiry have passed,
//     so the records of a router that left go away within RecordAge, and
//     its entries in names others still hold go away when they expire.
type recordStore struct {
	ds.Batching
	self  pdu.Name
	max   int // < 0: unlimited
	age   time.Duration
	parse func(key string, value []byte) ([]*Record, error) // strict parse, no clock
	// sel is the validator's Select. kad-dht's value store and the node's
	// own (DHT.local) each select a put against the stored set before
	// writing, under locks of their own: two puts of one key, one through
	// each, could both pass and the worse land last (a lookup's fix-up put
	// of the old set overwrote the publisher's own tombstone). Put selects
	// again under mu, so the check and the write are one step. Nil: not
	// checked.
	sel func(key string, values [][]byte) (int, error)
	now func() time.Time // the verifier's clock (expiry)
	m   *dhtMetrics
	log *zap.Logger

	// ownDomain is the node's domain, never bounded; maxDomain bounds
	// every other domain's entries (< 0 or 0: unlimited).
	ownDomain pdu.Name
	maxDomain int

	mu        sync.Mutex
	routers   map[ds.Key][]entryOwner // whose entries each key holds
	perRouter map[pdu.Name]int        // keys holding an entry of each router
	perDomain map[pdu.Name]int        // entries of each other domain's routers
}

// entryOwner is the router an entry points at and that router's domain.
type entryOwner struct{ router, domain pdu.Name }

// errRouterQuota refuses a put all of whose new entries belong to routers
// over their bound.
var errRouterQuota = errors.New("resolver: router holds its maximum of records at this node")

// errDomainQuota refuses a put all of whose new entries belong to routers
// of a domain over its bound.
var errDomainQuota = errors.New("resolver: the routers' domain holds its maximum of records at this node")

func newRecordStore(inner ds.Batching, self pdu.Name, max int, age time.Duration,
	parse func(string, []byte) ([]*Record, error), now func() time.Time, m *dhtMetrics, log *zap.Logger) *recordStore {
	return &recordStore{Batching: inner, self: self, max: max, age: age, parse: parse, now: now, m: m, log: log,
		routers: map[ds.Key][]entryOwner{}, perRouter: map[pdu.Name]int{}, perDomain: map[pdu.Name]int{}}
}

// Put stores a value record, first dropping the entries over their
// router's bound.
func (s *recordStore) Put(ctx context.Context, k ds.Key, value []byte) error {
	rec, set := s.decode(value)
	if set == nil { // not a record set of ours: stored as is, not counted
		return s.Batching.Put(ctx, k, value)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sel != nil {
		if cur, err := s.Batching.Get(ctx, k); err == nil {
			if old, oset := s.decode(cur); oset != nil && bytes.Equal(old.GetKey(), rec.GetKey()) {
				if i, err := s.sel(string(rec.GetKey()), [][]byte{rec.GetValue(), old.GetValue()}); err == nil && i != 0 {
					return fmt.Errorf("%w: a better record set is stored (checked at the write)", records.ErrOldRecord)
				}
			}
		}
	}
	held := map[pdu.Name]bool{}
	for _, o := range s.routers[k] {
		held[o.router] = true
	}
	keep := make([]*Record, 0, len(set))
	dropped, domDropped := 0, 0
	added := map[pdu.Name]int{} // new entries of each other domain in this put
	for _, r := range set {
		rt, dom := r.Router(), r.Domain()
		if s.max >= 0 && !held[rt] && rt != s.self && s.perRouter[rt] >= s.max {
			dropped++
			continue
		}
		if s.maxDomain > 0 && !held[rt] && rt != s.self && dom != s.ownDomain {
			if s.perDomain[dom]+added[dom] >= s.maxDomain {
				domDropped++
				continue
			}
			added[dom]++
		}
		keep = append(keep, r)
	}
	if dropped > 0 {
		s.m.refused.WithLabelValues("router_quota").Add(float64(dropped))
	}
	if domDropped > 0 {
		s.m.refused.WithLabelValues("domain_quota").Add(float64(domDropped))
	}
	if dropped+domDropped > 0 {
		if len(keep) == 0 {
			if dropped == 0 {
				s.log.Debug("put refused: domain over its record quota", zap.Stringer("domain", set[0].Domain()))
				return fmt.Errorf("%w (%d)", errDomainQuota, s.maxDomain)
			}
			s.log.Debug("put refused: router over its record quota", zap.Stringer("router", set[0].Router()))
			return fmt.Errorf("%w (%d)", errRouterQuota, s.max)
		}
		b, err := MarshalSet(keep)
		if err != nil {
			return err
		}
		rec.Value = b
		if value, err = proto.Marshal(rec); err != nil {
			return err
		}
	}
	if err := s.Batching.Put(ctx, k, value); err != nil {
		return err
	}
	s.index(k, keep)
	return nil
}

// Delete removes a key and its entries from the counts — unless the key
// holds a record set a value store keeps (one of ours, received within
// the record age), which Delete leaves in place and reports done. The
// only deleter of a record set is a value store discarding what its Get
// found corrupt, misfiled or older than the record age; it re-reads the
// key under its own lock first, but kad-dht's value store and the node's
// own (DHT.local) lock separately, so the other's put of a fresh set can
// land between that re-read and this Delete: deleting then would lose
// the fresh set (the publisher's own record, until its next republish).
func (s *recordStore) Delete(ctx context.Context, k ds.Key) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, err := s.Batching.Get(ctx, k); err == nil && s.fresh(cur) {
		return nil
	}
	if err := s.Batching.Delete(ctx, k); err != nil {
		return err
	}
	s.index(k, nil)
	return nil
}

// fresh reports whether value is one of this store's record sets that a
// value store would keep: it decodes, and it was received within the
// record age (as records.ValueStore ages records).
func (s *recordStore) fresh(value []byte) bool {
	rec, _ := s.decode(value)
	if rec == nil {
		return false
	}
	if s.age <= 0 {
		return true
	}
	recv, err := time.Parse(time.RFC3339Nano, rec.GetTimeReceived())
	return err == nil && time.Since(recv) <= s.age
}

// Batch writes through Put and Delete, so batches are bounded too.
func (s *recordStore) Batch(context.Context) (ds.Batch, error) { return ds.NewBasicBatch(s), nil }

// decode returns the protobuf record and its parsed set, or nils when
// value is not one of this store's record sets.
func (s *recordStore) decode(value []byte) (*recpb.Record, []*Record) {
	rec := new(recpb.Record)
	if proto.Unmarshal(value, rec) != nil {
		return nil, nil
	}
	set, err := s.parse(string(rec.GetKey()), rec.GetValue())
	if err != nil {
		return nil, nil
	}
	return rec, set
}

// index records which routers have an entry under k (none: k is gone).
// The caller holds s.mu.
func (s *recordStore) index(k ds.Key, set []*Record) {
	for _, o := range s.routers[k] {
		if s.perRouter[o.router]--; s.perRouter[o.router] <= 0 {
			delete(s.perRouter, o.router)
		}
		if o.domain != s.ownDomain {
			if s.perDomain[o.domain]--; s.perDomain[o.domain] <= 0 {
				delete(s.perDomain, o.domain)
			}
		}
	}
	if len(set) == 0 {
		delete(s.routers, k)
	} else {
		rs := make([]entryOwner, len(set))
		for i, r := range set {
			rs[i] = entryOwner{r.Router(), r.Domain()}
			s.perRouter[rs[i].router]++
			if rs[i].domain != s.ownDomain {
				s.perDomain[rs[i].domain]++
			}
		}
		s.routers[k] = rs
	}
	s.m.stored.Set(float64(len(s.routers)))
}

// held returns how many keys hold an entry of router.
func (s *recordStore) held(router pdu.Name) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perRouter[router]
}

// sweep deletes the sets older than the record age or with no unexpired
// entry, and rewrites those with some expired entries without them.
func (s *recordStore) sweep(ctx context.Context) {
	res, err := s.Batching.Query(ctx, dsq.Query{Prefix: "/" + recordNamespace})
	if err != nil {
		s.log.Warn("record sweep: query failed", zap.Error(err))
		return
	}
	entries, err := res.Rest()
	if err != nil {
		s.log.Warn("record sweep: query failed", zap.Error(err))
		return
	}
	now := s.now()
	for _, e := range entries {
		if ctx.Err() != nil {
			return
		}
		k := ds.NewKey(e.Key)
		rec, set := s.decode(e.Value)
		if rec == nil {
			continue // not ours; kad-dht's Get discards what it cannot read
		}
		recv, err := time.Parse(time.RFC3339Nano, rec.GetTimeReceived())
		if err != nil || (s.age > 0 && time.Since(recv) > s.age) {
			if s.replace(ctx, k, e.Value, nil) {
				s.m.swept.WithLabelValues("age").Inc()
			}
			continue
		}
		live := make([]*Record, 0, len(set))
		for _, r := range set {
			if now.Before(r.EffectiveExpiry()) {
				live = append(live, r)
			}
		}
		if len(live) == len(set) {
			continue
		}
		var next []byte
		if len(live) > 0 {
			b, err := MarshalSet(live)
			if err != nil {
				continue
			}
			rec.Value = b // TimeReceived stays: the set does not get younger
			if next, err = proto.Marshal(rec); err != nil {
				continue
			}
		}
		if s.replace(ctx, k, e.Value, next) {
			s.m.swept.WithLabelValues("expired").Add(float64(len(set) - len(live)))
		}
	}
}

// replace swaps the value under k for next (nil: deletes k) if it still
// holds seen, and reports whether it did.
func (s *recordStore) replace(ctx context.Context, k ds.Key, seen, next []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.Batching.Get(ctx, k)
	if err != nil || !bytes.Equal(cur, seen) {
		return false
	}
	if next == nil {
		if s.Batching.Delete(ctx, k) != nil {
			return false
		}
		s.index(k, nil)
		return true
	}
	if s.Batching.Put(ctx, k, next) != nil {
		return false
	}
	_, set := s.decode(next)
	s.index(k, set)
	return true
}

// sweepLoop runs sweep every StoreSweep.
func (d *DHT) sweepLoop() {
	d.every(d.cfg.StoreSweep, func() { d.store.sweep(d.ctx) })
}

// every runs fn each interval until the node closes; it is the body of the
// node's background loops and marks d.wg done when it returns.
func (d *DHT) every(interval time.Duration, fn func()) {
	defer d.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}
