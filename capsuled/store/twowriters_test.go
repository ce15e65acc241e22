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

// TestAppendFromPeer: anti-entropy offers this store a peer's segment of
// another line of the same epoch, overlapping entries the store took
// meanwhile (two writers with one key; a writer's batch landed between the
// SYNC and its answer). It fails with ErrDiverged and stores nothing, no
// evidence either: which line stands is for the replicas' majority to
// decide (capsuled's reconcile), and only a genuine fork is judged by
// Append. A retry of a held batch and a branch the writer declared with a
// newer epoch are taken from a peer as from Append. Adopt refuses a batch
// of the held line itself.
func TestAppendFromPeer(t *testing.T) {
	ctx := context.Background()
	tc := newTestCapsule(t, 72)
	a, b := tc.writer(), tc.writer()
	common, commonHB := writeRecs(a, 20, 32)
	writeRecs(b, 20, 32)
	shared := a.Head()
	shared.Heartbeat = commonHB
	aRecs, aHB := writeRecs(a, 25, 32)
	aMore, aMoreHB := writeRecs(a, 25, 32)
	for i := range 25 {
		b.Append([]byte{'b', byte(i)})
	}
	bRecs, bHB := b.Flush()
	if bHB.Epoch != aHB.Epoch || bHB.Seqno != aHB.Seqno || bHB.Root == aHB.Root {
		t.Fatal("the writers do not sign two lines of one epoch")
	}
	for _, eng := range engines {
		t.Run(eng, func(t *testing.T) {
			s := openTest(t, t.TempDir(), eng)
			defer s.Close()
			if err := s.Create(ctx, tc.name, tc.meta); err != nil {
				t.Fatal(err)
			}
			mustAppend(t, s, tc.name, common, commonHB)
			mustAppend(t, s, tc.name, aRecs, aHB)
			mustAppend(t, s, tc.name, aMore, aMoreHB)
			before := verifyAll(t, s, tc)

			// B's batch 21..45 against A's 1..70: the same seqnos, another line.
			if err := s.AppendFromPeer(ctx, tc.name, bRecs, bHB); !errors.Is(err, ErrDiverged) {
				t.Fatalf("a peer's segment of another line: %v, want %v", err, ErrDiverged)
			}
			// Its heartbeat alone, at a seqno the store holds.
			if err := s.AppendFromPeer(ctx, tc.name, nil, bHB); !errors.Is(err, ErrDiverged) {
				t.Fatalf("a peer's heartbeat of another line: %v, want %v", err, ErrDiverged)
			}
			if evs, err := s.Evidence(tc.name); err != nil || len(evs) != 0 {
				t.Fatalf("a peer's diverged segment stored %d pieces of evidence (%v)", len(evs), err)
			}
			if after := verifyAll(t, s, tc); !after.Heartbeat.Equal(before.Heartbeat) {
				t.Fatal("the log changed")
			}
			// Adopting from 21 a batch of the line held there (the peer moved
			// onto this replica's line while the replicas were compared) has
			// nothing to adopt: the log is not cut back to the batch's end.
			if err := s.Adopt(ctx, tc.name, 21, aRecs, aHB); !errors.Is(err, ErrNothingToAdopt) {
				t.Fatalf("adopting the held line: %v, want %v", err, ErrNothingToAdopt)
			}
			if after := verifyAll(t, s, tc); !after.Heartbeat.Equal(before.Heartbeat) {
				t.Fatalf("adopting the held line moved the head to %d", after.Seqno)
			}
			if br, err := s.Abandoned(tc.name); err != nil || len(br) != 0 {
				t.Fatalf("adopting the held line abandoned %d branches (%v)", len(br), err)
			}
			// A held batch again: acknowledged, nothing changes.
			if err := s.AppendFromPeer(ctx, tc.name, aRecs, aHB); err != nil {
				t.Fatalf("a held batch from a peer: %v", err)
			}
			// The writer restarted from 20 (epoch 1): the branch is applied.
			nw := capsule.RestartWriter(tc.name, tc.key, shared)
			nr, nhb := writeRecs(nw, 3, 32)
			if err := s.AppendFromPeer(ctx, tc.name, nr, nhb); err != nil {
				t.Fatalf("a declared branch from a peer: %v", err)
			}
			if h := verifyAll(t, s, tc); h.Seqno != 23 || !h.Heartbeat.Equal(nhb) {
				t.Fatalf("head %d after the branch, want 23", h.Seqno)
			}
			if br, err := s.Abandoned(tc.name); err != nil || len(br) != 1 || len(br[0].Entries) != 50 {
				t.Fatalf("abandoned branch: %d, %v", len(br), err)
			}
		})
	}
}
