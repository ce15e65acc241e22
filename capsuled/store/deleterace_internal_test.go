package store

import (
	"errors"
	"slices"
	"testing"

	"github.com/gdpnet/gdpnet/pdu"
)

// storedKeys counts the keys the engine holds for capsule c (any table).
func storedKeys(s *Store, c pdu.Name) int {
	n := 0
	for _, t := range []byte{tMeta, tEntry, tHash, tNode, tHeartbeat, tAbandoned, tAbandonHB, tEvidence, tBytes} {
		p := key(t, c)
		s.eng.scan(p, prefixEnd(p), func(k, v []byte) bool { n++; return true })
	}
	return n
}

// TestAppendAfterDeleteWritesNothing: an append that got the capsule's
// state before a Delete and its turn after it (both run at once: a writer
// appending as the owner deletes) fails with ErrUnknownCapsule and writes
// nothing. Written after Delete's range deletion, its keys would outlive
// the capsule, and a capsule created again under the name would find the
// deleted one's entries once the store reopened.
func TestAppendAfterDeleteWritesNothing(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng, func(t *testing.T) {
			dir := t.TempDir()
			s := openTest(t, dir, eng)
			tc := newTestCapsule(t, 21)
			if err := s.Create(t.Context(), tc.name, tc.meta); err != nil {
				t.Fatal(err)
			}
			w := tc.writer()
			recs, hb := writeRecs(w, 4, 100)
			mustAppend(t, s, tc.name, recs, hb)
			cs, err := s.state(tc.name) // the racing append's state
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(t.Context(), tc.name); err != nil {
				t.Fatal(err)
			}
			recs, hb = writeRecs(w, 4, 100)
			if _, err := s.queue(t.Context(), cs, recs, hb, fromWriter); !errors.Is(err, ErrUnknownCapsule) {
				t.Fatalf("an append's turn after the Delete: %v, want ErrUnknownCapsule", err)
			}
			if n := storedKeys(s, tc.name); n != 0 {
				t.Fatalf("%d keys of the deleted capsule stored", n)
			}
			if err := s.Create(t.Context(), tc.name, tc.meta); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openTest(t, dir, eng)
			defer s.Close()
			if h := verifyAll(t, s, tc); h.Seqno != 0 {
				t.Fatalf("the capsule created again holds %d entries after a reopen, want none", h.Seqno)
			}
		})
	}
}

// TestCreateDuringDeleteAgreesOnDisk: a Create of the name while a Delete
// runs ends one way in memory and on disk: the capsule is either held
// (its metadata durable, found after a reopen) or gone from both. The
// Delete's range deletion is queued in the step that takes the capsule
// off the map, so a Create that found the name free queues its metadata
// after it, never before it (to be deleted with the old capsule).
func TestCreateDuringDeleteAgreesOnDisk(t *testing.T) {
	t.Cleanup(func() { deleteHook = nil })
	dir := t.TempDir()
	s := openTest(t, dir, "pebble")
	tc := newTestCapsule(t, 22)
	if err := s.Create(t.Context(), tc.name, tc.meta); err != nil {
		t.Fatal(err)
	}
	var createErr error
	deleteHook = func(pdu.Name) {
		deleteHook = nil
		createErr = s.Create(t.Context(), tc.name, tc.meta)
	}
	if err := s.Delete(t.Context(), tc.name); err != nil && !errors.Is(err, ErrUnknownCapsule) {
		t.Fatal(err)
	}
	if createErr != nil {
		t.Fatalf("the Create during the Delete: %v", createErr)
	}
	held := slices.Contains(s.Capsules(), tc.name)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, "pebble")
	defer s.Close()
	if onDisk := slices.Contains(s.Capsules(), tc.name); onDisk != held {
		t.Fatalf("after the Create during the Delete: held in memory %v, on disk %v", held, onDisk)
	}
}
