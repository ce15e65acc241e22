package resolver

import (
	"context"
	"encoding/base32"
	"errors"
	"fmt"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p-kad-dht/records"
	record "github.com/libp2p/go-libp2p-record"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestStoreBoundPerDomain: a trusted domain mints six routers, each well
// within max_records_per_router, and has them publish a name each at a
// node of the global tier whose bound per other domain is 4: four are
// stored, two refused (domain_quota). A third domain still stores its
// own 4, the node's own domain more than 4; an update of a name already
// held is not a new entry; once one of the first domain's names is
// deleted, it may store one more.
func TestStoreBoundPerDomain(t *testing.T) {
	w := newWorld(t, time.Now().Add(-time.Minute))
	own, other, third := w.domain("own"), w.domain("greedy"), w.domain("third")
	m, err := newDHTMetrics(prometheus.NewRegistry(), "global")
	if err != nil {
		t.Fatal(err)
	}
	self := w.router(own, "this node")
	s := newRecordStore(dssync.MutexWrap(ds.NewMapDatastore()), self.id.Name, 100, time.Hour,
		func(_ string, b []byte) ([]*Record, error) { return ParseSet(b) }, time.Now, m, zap.NewNop())
	s.ownDomain, s.maxDomain = own.Meta.Name(), 4
	ctx := context.Background()
	put := func(d *certs.Identity, label string) (ds.Key, *Record, error) {
		r := w.router(d, label)
		name, chain := w.capsuleAt(r, label, time.Hour)
		rec := w.location(r, name, chain, NextSequence())
		return s.putRecord(ctx, t, name, rec)
	}
	stored := func(d *certs.Identity, n int) int {
		ok := 0
		for i := range n {
			if _, _, err := put(d, fmt.Sprintf("%s router %d", d.Meta.Description, i)); err == nil {
				ok++
			} else if !errors.Is(err, errDomainQuota) {
				t.Fatalf("put refused for another reason: %v", err)
			}
		}
		return ok
	}
	if got := stored(other, 6); got != 4 {
		t.Fatalf("%d of another domain's 6 routers' names stored, want 4 (max_records_per_domain)", got)
	}
	if got := counterValue(m.refused.WithLabelValues("domain_quota")); got != 2 {
		t.Fatalf("records_refused_total{domain_quota} = %v, want 2", got)
	}
	if got := stored(third, 4); got != 4 {
		t.Fatalf("a third domain stored %d of 4 while another was at its bound", got)
	}
	if got := stored(own, 6); got != 6 {
		t.Fatalf("the node's own domain stored %d of 6; it is not bounded", got)
	}
	// An update of a held name adds no entry: accepted at the bound.
	r := w.router(other, "greedy updater")
	name, chain := w.capsuleAt(r, "greedy updated", time.Hour)
	s.maxDomain = 5
	k, _, err := s.putRecord(ctx, t, name, w.location(r, name, chain, NextSequence()))
	if err != nil {
		t.Fatalf("fifth entry at a bound of 5: %v", err)
	}
	if _, _, err := s.putRecord(ctx, t, name, w.location(r, name, chain, NextSequence())); err != nil {
		t.Fatalf("an update of a held name at the bound: %v", err)
	}
	if _, _, err := put(other, "greedy one more"); !errors.Is(err, errDomainQuota) {
		t.Fatalf("a sixth entry at a bound of 5: %v, want domain quota", err)
	}
	// Deleted, its place is the domain's again.
	if err := s.Delete(ctx, k); err != nil {
		t.Fatal(err)
	}
	if _, _, err := put(other, "greedy after delete"); err != nil {
		t.Fatalf("after a delete, another entry of the domain: %v", err)
	}
}

// putRecord stores rec as name's one-entry set, as kad-dht does.
func (s *recordStore) putRecord(ctx context.Context, t *testing.T, name pdu.Name, rec *Record) (ds.Key, *Record, error) {
	t.Helper()
	b, err := MarshalSet([]*Record{rec})
	if err != nil {
		t.Fatal(err)
	}
	v, err := proto.Marshal(&recpb.Record{Key: []byte(dhtKey(name)), Value: b})
	if err != nil {
		t.Fatal(err)
	}
	k := ds.NewKey(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString([]byte(dhtKey(name)))) // as kad-dht keys its datastore
	return k, rec, s.Put(ctx, k, v)
}

// TestStorePutKeepsTheBetterSet: the store refuses, at the write itself,
// a set worse than the one it holds — the old location put after the
// router's tombstone (a lookup's fix-up put racing the publisher's own
// withdraw: kad-dht's value store and the node's own each selected under
// their own lock, and the old set landed last, so the publisher found its
// withdrawn name again; CI, TestDHTSmall). The tombstone stays; a newer
// location is still taken.
func TestStorePutKeepsTheBetterSet(t *testing.T) {
	w := newWorld(t, time.Now().Add(-time.Minute))
	d := w.domain("keep")
	m, err := newDHTMetrics(prometheus.NewRegistry(), "keep")
	if err != nil {
		t.Fatal(err)
	}
	val := newValidator(&Verifier{Certs: certs.NewVerifier(d.Meta), Kind: KindLocation, Domain: d.Meta.Name()}, nil)
	r := w.router(d, "publisher")
	s := newRecordStore(dssync.MutexWrap(ds.NewMapDatastore()), r.id.Name, 100, time.Hour, val.set, time.Now, m, zap.NewNop())
	s.sel = val.Select
	ctx := context.Background()
	name, chain := w.capsuleAt(r, "withdrawn", time.Hour)
	live := w.location(r, name, chain, NextSequence())
	tomb, err := live.Tombstone(r.id.Key, tombstoneSequence(live.Sequence))
	if err != nil {
		t.Fatal(err)
	}
	k, _, err := s.putRecord(ctx, t, name, tomb)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.putRecord(ctx, t, name, live); !errors.Is(err, records.ErrOldRecord) {
		t.Fatalf("the old location put over its tombstone: %v, want ErrOldRecord", err)
	}
	held := func() *Record {
		t.Helper()
		b, err := s.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		rec, set := s.decode(b)
		if rec == nil || len(set) != 1 {
			t.Fatalf("stored value does not decode to one entry: %v", set)
		}
		return set[0]
	}
	if got := held(); got.Sequence != tomb.Sequence {
		t.Fatalf("the store holds sequence %d, want the tombstone's %d", got.Sequence, tomb.Sequence)
	}
	again := w.location(r, name, chain, NextSequence())
	if _, _, err := s.putRecord(ctx, t, name, again); err != nil {
		t.Fatalf("a newer location after the tombstone: %v", err)
	}
	if got := held(); got.Sequence != again.Sequence {
		t.Fatalf("the store holds sequence %d, want the newer location's %d", got.Sequence, again.Sequence)
	}
}

// hookedDatastore runs onGet (once armed) inside a Get of key, after
// reading the value it returns: a put by another writer lands between
// that read and whatever the reader does next.
type hookedDatastore struct {
	ds.Batching
	key   ds.Key
	gets  int
	at    int // the Get of key that runs onGet (1: the first)
	onGet func()
}

func (h *hookedDatastore) Get(ctx context.Context, k ds.Key) ([]byte, error) {
	v, err := h.Batching.Get(ctx, k)
	if k == h.key && h.onGet != nil {
		if h.gets++; h.gets == h.at {
			f := h.onGet
			h.onGet = nil
			f()
		}
	}
	return v, err
}

// TestStoreDiscardKeepsTheFreshSet: kad-dht's value store and the node's
// own (DHT.local) lock separately, so when one discards a set older than
// the record age (its Get re-reads the key under its own lock, then
// deletes), the other's put of a fresh set can land between the re-read
// and the delete. The store keeps the fresh set: it was the publisher's
// own record, lost until its next republish. A stale set is still
// deleted, and so is one that does not decode.
func TestStoreDiscardKeepsTheFreshSet(t *testing.T) {
	w := newWorld(t, time.Now().Add(-time.Minute))
	d := w.domain("discard")
	m, err := newDHTMetrics(prometheus.NewRegistry(), "discard")
	if err != nil {
		t.Fatal(err)
	}
	val := newValidator(&Verifier{Certs: certs.NewVerifier(d.Meta), Kind: KindLocation, Domain: d.Meta.Name()}, nil)
	nsval := record.NamespacedValidator{recordNamespace: val}
	r := w.router(d, "publisher")
	const age = time.Hour
	inner := &hookedDatastore{Batching: dssync.MutexWrap(ds.NewMapDatastore())}
	s := newRecordStore(inner, r.id.Name, 100, age, val.set, time.Now, m, zap.NewNop())
	s.sel = val.Select
	kadStore, local := records.NewValueStore(s, nsval, age), records.NewValueStore(s, nsval, age)
	ctx := context.Background()
	name, chain := w.capsuleAt(r, "discarded", time.Hour)
	key := dhtKey(name)
	old := w.location(r, name, chain, NextSequence())
	if err := local.Put(ctx, key, mustPutRecord(t, key, old)); err != nil {
		t.Fatal(err)
	}
	// Age the stored set past the record age, where it sits.
	res, err := s.Query(ctx, dsq.Query{Prefix: "/" + recordNamespace})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := res.Rest()
	if err != nil || len(stored) != 1 {
		t.Fatalf("stored %d sets (%v), want 1", len(stored), err)
	}
	k := ds.NewKey(stored[0].Key)
	aged := new(recpb.Record)
	if err := proto.Unmarshal(stored[0].Value, aged); err != nil {
		t.Fatal(err)
	}
	aged.TimeReceived = time.Now().Add(-2 * age).UTC().Format(time.RFC3339Nano)
	agedBytes, err := proto.Marshal(aged)
	if err != nil {
		t.Fatal(err)
	}
	if err := inner.Batching.Put(ctx, k, agedBytes); err != nil {
		t.Fatal(err)
	}
	// kad-dht's Get finds the set too old (first read), re-reads it under
	// its lock (second read) — and the publisher's fresh put lands there.
	fresh := w.location(r, name, chain, NextSequence())
	inner.key, inner.at = k, 2
	var putErr error
	inner.onGet = func() { putErr = local.Put(ctx, key, mustPutRecord(t, key, fresh)) }
	if got, err := kadStore.Get(ctx, key); err != nil || got != nil {
		t.Fatalf("kad-dht's Get of the aged set: %v, %v; want nothing (too old)", got, err)
	}
	if putErr != nil {
		t.Fatalf("the publisher's put: %v", putErr)
	}
	got, err := kadStore.Get(ctx, key)
	if err != nil || got == nil {
		t.Fatalf("the publisher's fresh set was deleted by the other store's discard: %v, %v", got, err)
	}
	if set, err := val.set(key, got.GetValue()); err != nil || len(set) != 1 || set[0].Sequence != fresh.Sequence {
		t.Fatalf("the store holds %v (%v), want the fresh set (sequence %d)", set, err, fresh.Sequence)
	}
	if n := len(s.routers); n != 1 {
		t.Fatalf("the store counts %d keys, want 1", n)
	}
	// With no put in between, the aged set is discarded; so is garbage.
	if err := inner.Batching.Put(ctx, k, agedBytes); err != nil {
		t.Fatal(err)
	}
	if got, err := kadStore.Get(ctx, key); err != nil || got != nil {
		t.Fatalf("Get of the aged set: %v, %v; want nothing", got, err)
	}
	if _, err := inner.Batching.Get(ctx, k); !errors.Is(err, ds.ErrNotFound) {
		t.Fatalf("the aged set is still stored: %v", err)
	}
	if err := inner.Batching.Put(ctx, k, []byte("not a record")); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, k); err != nil {
		t.Fatal(err)
	}
	if _, err := inner.Batching.Get(ctx, k); !errors.Is(err, ds.ErrNotFound) {
		t.Fatalf("garbage is still stored: %v", err)
	}
}

// mustPutRecord is rec as the one-entry set kad-dht puts under key.
func mustPutRecord(t *testing.T, key string, rec *Record) *recpb.Record {
	t.Helper()
	b, err := MarshalSet([]*Record{rec})
	if err != nil {
		t.Fatal(err)
	}
	return &recpb.Record{Key: []byte(key), Value: b}
}

// TestDHTStoreSelectsAtTheWrite: a node's record store is wired to the
// validator's Select, so a put that passed a value store's check before
// the node's own tombstone was written (kad-dht's store and DHT.local
// lock separately) is refused at the write.
func TestDHTStoreSelectsAtTheWrite(t *testing.T) {
	w := newWorld(t, time.Now().Add(-time.Minute))
	d := w.domain("wired")
	c := startDHTs(t, w, d, certs.NewVerifier(d.Meta), false, "wired", 1, 0, nil)
	n, r := c.nodes[0], c.routers[0]
	ctx := context.Background()
	name, chain := w.capsuleAt(r, "wired", time.Hour)
	live := w.location(r, name, chain, NextSequence())
	tomb, err := live.Tombstone(r.id.Key, tombstoneSequence(live.Sequence))
	if err != nil {
		t.Fatal(err)
	}
	key := dhtKey(name)
	if err := n.local.Put(ctx, key, mustPutRecord(t, key, tomb)); err != nil {
		t.Fatal(err)
	}
	res, err := n.store.Query(ctx, dsq.Query{Prefix: "/" + recordNamespace})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := res.Rest()
	if err != nil || len(stored) != 1 {
		t.Fatalf("stored %d sets (%v), want 1", len(stored), err)
	}
	v, err := proto.Marshal(mustPutRecord(t, key, live))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.store.Put(ctx, ds.NewKey(stored[0].Key), v); !errors.Is(err, records.ErrOldRecord) {
		t.Fatalf("the old location written over the node's tombstone: %v, want ErrOldRecord", err)
	}
}
