package store

import (
	"context"
	"errors"
	"testing"

	"github.com/gdpnet/gdpnet/capsule"
)

// TestBytesCounted (Session 13): Bytes is the sum of the capsule's stored
// entries (those of an abandoned branch too), kept across a reopen, summed
// from the entries once for a store written before the count existed, and
// gone with the capsule.
func TestBytesCounted(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			s := openTest(t, dir, eng)
			tc := newTestCapsule(t, 9)
			if err := s.Create(ctx, tc.name, tc.meta); err != nil {
				t.Fatal(err)
			}
			// scanned is the count from the entries themselves.
			scanned := func(s *Store) uint64 {
				var n uint64
				for _, tb := range []byte{tEntry, tAbandoned} {
					s.eng.scan(key(tb, tc.name), prefixEnd(key(tb, tc.name)), func(_, v []byte) bool { n += uint64(len(v)); return true })
				}
				return n
			}
			check := func(s *Store, what string, atLeast uint64) {
				t.Helper()
				got, err := s.Bytes(tc.name)
				if err != nil || got != scanned(s) || got < atLeast {
					t.Fatalf("%s: Bytes %d (%v), the entries hold %d, want at least %d", what, got, err, scanned(s), atLeast)
				}
			}
			check(s, "empty", 0)
			w := tc.writer()
			recs, hb := writeRecs(w, 10, 1000)
			mustAppend(t, s, tc.name, recs, hb)
			recovered := w.Head()
			recovered.Heartbeat = hb
			mustAppend(t, s, tc.name, recs, hb) // a retry stores nothing new
			check(s, "10 records", 10_000)
			recs, hb = writeRecs(w, 5, 1000)
			mustAppend(t, s, tc.name, recs, hb)
			check(s, "15 records", 15_000)
			// A branch: five entries moved aside (still stored), a hole and
			// two records on the new line.
			nw := capsule.RestartWriter(tc.name, tc.key, recovered)
			nw.Now = w.Now
			nw.Hole()
			nr, nhb := writeRecs(nw, 2, 3000)
			mustAppend(t, s, tc.name, nr, nhb)
			check(s, "after a branch", 21_000)
			s.Close()

			s = openTest(t, dir, eng)
			check(s, "reopened", 21_000)
			want, _ := s.Bytes(tc.name)
			if v, err := s.eng.get(key(tBytes, tc.name)); err != nil || u64(v) != want {
				t.Fatalf("stored count %x (%v), want %d", v, err, want)
			}
			// A store from before the count: the key removed.
			if err := s.eng.commit(&writeBatch{ops: []op{{kind: opDelete, key: key(tBytes, tc.name)}}}); err != nil {
				t.Fatal(err)
			}
			s.Close()
			s = openTest(t, dir, eng)
			defer s.Close()
			if got, _ := s.Bytes(tc.name); got != want {
				t.Fatalf("summed at open: %d, want %d", got, want)
			}
			recs, hb = writeRecs(nw, 1, 500)
			mustAppend(t, s, tc.name, recs, hb)
			check(s, "appended after the sum", want+500)
			if err := s.Delete(ctx, tc.name); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Bytes(tc.name); !errors.Is(err, ErrUnknownCapsule) {
				t.Fatalf("Bytes of a deleted capsule: %v", err)
			}
			if _, err := s.eng.get(key(tBytes, tc.name)); !errors.Is(err, errNotFound) {
				t.Fatalf("byte count left after Delete: %v", err)
			}
		})
	}
}
