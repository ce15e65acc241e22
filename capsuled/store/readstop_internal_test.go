package store

import (
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/gdpnet/gdpnet/capsule"
)

// TestReadStopsAtTo: a read of entries [from, to] stops at to. Going on to
// look for the next key would load the sstable block holding the entry
// after to — a whole record from disk for every one-record READ a file
// reader sends (caapi/fs reads a file one chunk record per READ).
func TestReadStopsAtTo(t *testing.T) {
	s := openTest(t, t.TempDir(), "pebble")
	defer s.Close()
	tc := newTestCapsule(t, 7)
	if err := s.Create(t.Context(), tc.name, tc.meta); err != nil {
		t.Fatal(err)
	}
	const size = 40 << 10
	w := tc.writer()
	rng := rand.New(rand.NewPCG(1, 2))
	for range 6 {
		b := make([]byte, size) // incompressible, as chunks of a model are
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		w.Append(b)
	}
	recs, hb := w.Flush()
	mustAppend(t, s, tc.name, recs, hb)
	pe := s.eng.(*pebbleEngine)
	if err := pe.db.Flush(); err != nil { // the entries into sstables
		t.Fatal(err)
	}
	for _, r := range [][2]uint64{{3, 3}, {2, 4}} {
		before := pe.scanBlockBytes.Load()
		n := 0
		if err := s.ReadRaw(tc.name, r[0], r[1], func(uint64, []byte) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		want := int(r[1] - r[0] + 1)
		if n != want {
			t.Fatalf("read %v: %d entries", r, n)
		}
		// want entries' blocks and the index, not one more entry's.
		if got := pe.scanBlockBytes.Load() - before; got == 0 || got >= uint64((want+1)*size) {
			t.Fatalf("read %v loaded %d block bytes: more than its %d entries of %d bytes", r, got, want, size)
		}
	}
}

// entryGets counts the point reads of entries an engine serves.
type entryGets struct {
	engine
	n atomic.Int64
}

func (e *entryGets) get(k []byte) ([]byte, error) {
	if len(k) > 0 && k[0] == tEntry {
		e.n.Add(1)
	}
	return e.engine.get(k)
}

// TestProofUsesLeafOfEntryRead: the inclusion proof of a one-entry READ
// needs the hash of the entry beside it; after a READ of that entry it
// comes from the node cache, not from loading the entry (a whole record)
// again. Without a read before, the proof still loads it.
func TestProofUsesLeafOfEntryRead(t *testing.T) {
	s := openTest(t, t.TempDir(), "pebble")
	defer s.Close()
	tc := newTestCapsule(t, 8)
	if err := s.Create(t.Context(), tc.name, tc.meta); err != nil {
		t.Fatal(err)
	}
	recs, hb := writeRecs(tc.writer(), 8, 1000)
	mustAppend(t, s, tc.name, recs, hb)
	eg := &entryGets{engine: s.eng}
	s.eng = eg
	read := func(seq uint64) {
		if err := s.ReadRaw(tc.name, seq, seq, func(uint64, []byte) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	proof := func(seq uint64) {
		p, err := s.InclusionProof(tc.name, seq, hb.Seqno)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Verify(recs[seq-1].Hash(), hb.Root); err != nil {
			t.Fatalf("proof of %d: %v", seq, err)
		}
	}
	read(3) // a READ of entry 3, then of entry 4 (leaf 3 beside it)
	read(4)
	before := eg.n.Load()
	proof(4)
	proof(3)
	if n := eg.n.Load() - before; n != 0 {
		t.Fatalf("%d entries loaded for the proofs of entries just read", n)
	}
	proof(6) // entry 5 not read: loaded
	if n := eg.n.Load() - before; n != 1 {
		t.Fatalf("%d entries loaded for a proof beside an entry not read, want 1", n)
	}
}

// TestRecreatedCapsuleIgnoresRacedLeaf: a READ that raced a Delete can add
// a leaf hash of the deleted capsule to the node cache after Delete purged
// it. A capsule created again under the same name must never be served
// that hash: its proofs verify against its own records.
func TestRecreatedCapsuleIgnoresRacedLeaf(t *testing.T) {
	s := openTest(t, t.TempDir(), "pebble")
	defer s.Close()
	tc := newTestCapsule(t, 9)
	if err := s.Create(t.Context(), tc.name, tc.meta); err != nil {
		t.Fatal(err)
	}
	recs, hb := writeRecs(tc.writer(), 8, 100)
	mustAppend(t, s, tc.name, recs, hb)
	cs, err := s.state(tc.name)
	if err != nil {
		t.Fatal(err)
	}
	gen := cs.gen.Load() // what a READ of entry 3 keyed its leaf by
	if err := s.Delete(t.Context(), tc.name); err != nil {
		t.Fatal(err)
	}
	// The racing READ's leaf lands after the purge.
	s.nodes.Add(nodeCacheKey{tc.name, gen, 0, 2}, capsule.Hash{0xde, 0xad})
	if err := s.Create(t.Context(), tc.name, tc.meta); err != nil {
		t.Fatal(err)
	}
	recs, hb = writeRecs(tc.writer(), 8, 100)
	mustAppend(t, s, tc.name, recs, hb)
	p, err := s.InclusionProof(tc.name, 4, hb.Seqno) // leaf 3 (index 2) is entry 4's sibling
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(recs[3].Hash(), hb.Root); err != nil {
		t.Fatalf("the re-created capsule's proof of entry 4 used the deleted one's leaf: %v", err)
	}
}
