package store

import (
	"context"
	"errors"
	"testing"

	"github.com/gdpnet/gdpnet/capsule"
)

// TestTwoWritersOneKeyForeignBase: two writers with one key share entries
// 1..69 and then write different entries 70 on. The loser's batch that
// starts at 71 chains to its own 70, not to the winner's this store holds.
// It is another writer's batch (ErrWriterConflict, 412), never a bad
// request, whether it arrives right after the winner's 70 (no overlap) or
// after the store moved past 71 (overlap), also when it starts with a
// declared hole. A loser's batch whose chain breaks inside itself stays
// malformed. Nothing is stored either way.
func TestTwoWritersOneKeyForeignBase(t *testing.T) {
	ctx := context.Background()
	tc := newTestCapsule(t, 71)
	a, b := tc.writer(), tc.writer()
	recs, hb := writeRecs(a, 69, 32)
	if r2, hb2 := writeRecs(b, 69, 32); hb2.Root != hb.Root || len(r2) != len(recs) {
		t.Fatal("the writers do not share entries 1..69")
	}
	a.Append([]byte("winner 70"))
	aRecs70, aHB70 := a.Flush()
	a.Append([]byte("winner 71"))
	a.Append([]byte("winner 72"))
	aRecs72, aHB72 := a.Flush()

	b.Append([]byte("loser 70"))
	b.Flush() // reaches other replicas only
	b.Append([]byte("loser 71"))
	b.Append([]byte("loser 72"))
	bRecs, bHB := b.Flush()
	b.Hole()
	b.Append([]byte("loser 74"))
	bHoleRecs, bHoleHB := b.Flush() // starts with hole 73: chains through it to loser 72

	for _, eng := range engines {
		t.Run(eng, func(t *testing.T) {
			s := openTest(t, t.TempDir(), eng)
			defer s.Close()
			if err := s.Create(ctx, tc.name, tc.meta); err != nil {
				t.Fatal(err)
			}
			mustAppend(t, s, tc.name, recs, hb)
			if err := s.AppendExtending(ctx, tc.name, aRecs70, aHB70); err != nil {
				t.Fatal(err)
			}
			want := func(what string, recs []capsule.Record, hb *capsule.Heartbeat, conflict bool) {
				t.Helper()
				before, _ := s.Head(tc.name)
				err := s.AppendExtending(ctx, tc.name, recs, hb)
				if conflict && !errors.Is(err, ErrWriterConflict) {
					t.Errorf("%s: err %v, want %v", what, err, ErrWriterConflict)
				}
				if !conflict && (err == nil || errors.Is(err, ErrWriterConflict)) {
					t.Errorf("%s: err %v, want a bad request", what, err)
				}
				if after, _ := s.Head(tc.name); after.Seqno != before.Seqno || after.Hash != before.Hash {
					t.Errorf("%s: head moved from %d to %d", what, before.Seqno, after.Seqno)
				}
			}
			// The winner holds 70: the loser's 71..72 right after it.
			want("right after the head", bRecs, bHB, true)
			if err := s.AppendExtending(ctx, tc.name, aRecs72, aHB72); err != nil {
				t.Fatal(err)
			}
			// The winner moved past 71: the same batch, now overlapping.
			want("overlapping", bRecs, bHB, true)
			// A batch starting with a hole after the winner's 72.
			want("hole first", bHoleRecs, bHoleHB, true)
			// The loser's 71..72 with 72 not chaining to 71: no log of its own.
			broken := append([]capsule.Record(nil), bRecs...)
			broken[1] = capsule.NewRecord(tc.name, broken[1].Seqno, broken[1].Time, capsule.Hash{1}, broken[1].Data)
			want("broken inside", broken, bHB, false)
		})
	}
}
