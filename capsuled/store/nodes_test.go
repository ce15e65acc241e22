package store

import (
	"testing"

	"github.com/gdpnet/gdpnet/capsule"
)

// proveEvery checks the inclusion proof of every entry of tc in the tree
// of the head and consistency proofs from every m to the head, against
// the writer-signed root, from nodes the store reads or computes.
func proveEvery(t *testing.T, s *Store, tc testCapsule) {
	t.Helper()
	h := verifyAll(t, s, tc)
	recs, err := s.Read(tc.name, 1, h.Seqno)
	if err != nil {
		t.Fatal(err)
	}
	var mt capsule.MemTree
	roots := []capsule.Hash{{}}
	for _, r := range recs {
		mt.Append(r.Hash())
		roots = append(roots, mt.Root())
	}
	for _, r := range recs {
		p, err := s.InclusionProof(tc.name, r.Seqno, h.Seqno)
		if err != nil || p.Verify(r.Hash(), h.Heartbeat.Root) != nil {
			t.Fatalf("inclusion of %d in %d: %v", r.Seqno, h.Seqno, err)
		}
	}
	for m := uint64(1); m < h.Seqno; m += 7 {
		p, err := s.ConsistencyProof(tc.name, m, h.Seqno)
		if err != nil || p.Verify(roots[m], h.Heartbeat.Root) != nil {
			t.Fatalf("consistency %d -> %d: %v", m, h.Seqno, err)
		}
	}
}

// lowNodes counts the interior nodes stored below StoredNodeLevel.
func lowNodes(s *Store, tc testCapsule) int {
	n := 0
	s.eng.scan(key(tNode, tc.name), prefixEnd(key(tNode, tc.name)), func(k, _ []byte) bool {
		pos := u64(k[33:]) + 1
		if lvl := 0; pos&1 == 0 {
			for pos&1 == 0 {
				pos >>= 1
				lvl++
			}
			if lvl < StoredNodeLevel {
				n++
			}
		}
		return true
	})
	return n
}

// TestSparseNodes: a store writes the Merkle nodes from StoredNodeLevel
// up only (checkNodes counts them and checks each) and computes the lower
// ones from the entries: every inclusion and consistency proof verifies,
// before and after a reopen (which loads the head's tree from them).
func TestSparseNodes(t *testing.T) {
	for _, eng := range []string{"pebble", "bbolt"} {
		t.Run(eng, func(t *testing.T) {
			dir := t.TempDir()
			s := openTest(t, dir, eng)
			tc := newTestCapsule(t, 21)
			if err := s.Create(t.Context(), tc.name, tc.meta); err != nil {
				t.Fatal(err)
			}
			w := tc.writer()
			for i := range 20 {
				recs, hb := writeRecs(w, i%9+1, 40)
				mustAppend(t, s, tc.name, recs, hb)
			}
			checkNodes(t, s, tc)
			if n := lowNodes(s, tc); n != 0 {
				t.Fatalf("%d nodes below level %d stored", n, StoredNodeLevel)
			}
			proveEvery(t, s, tc)
			s.Close()
			s = openTest(t, dir, eng)
			defer s.Close()
			proveEvery(t, s, tc)
		})
	}
}

// TestOldNodeLayoutReadable: a store written by a version that stored
// every interior node is opened by this one: its log, proofs and head load
// as before, appends go on with the sparse layout (no node below
// StoredNodeLevel added), and every proof across both verifies.
func TestOldNodeLayoutReadable(t *testing.T) {
	dir := t.TempDir()
	old, err := Open(dir, Options{everyNode: true})
	if err != nil {
		t.Fatal(err)
	}
	tc := newTestCapsule(t, 22)
	if err := old.Create(t.Context(), tc.name, tc.meta); err != nil {
		t.Fatal(err)
	}
	w := tc.writer()
	for i := range 12 {
		recs, hb := writeRecs(w, i%7+1, 40)
		mustAppend(t, old, tc.name, recs, hb)
	}
	checkNodes(t, old, tc)
	was := lowNodes(old, tc)
	if was == 0 {
		t.Fatal("the old layout stored no low nodes")
	}
	old.Close()
	s := openTest(t, dir, "pebble")
	proveEvery(t, s, tc)
	for i := range 12 {
		recs, hb := writeRecs(w, i%5+1, 40)
		mustAppend(t, s, tc.name, recs, hb)
	}
	proveEvery(t, s, tc)
	if n := lowNodes(s, tc); n != was {
		t.Fatalf("%d low nodes after appends with the sparse layout, the old store had %d", n, was)
	}
	s.Close()
	s = openTest(t, dir, "pebble")
	defer s.Close()
	proveEvery(t, s, tc)
}
