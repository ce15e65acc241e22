package store

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/vfs"

	"github.com/gdpnet/gdpnet/capsule"
)

// TestPowerLoss proves durability against power loss, which the SIGKILL
// crash test cannot (a killed process leaves its writes in the OS page
// cache; an engine that never fsyncs passes it). The pebble engine runs on
// a strict in-memory file system that keeps only what was fsynced: the
// test "cuts the power" while writers append (from then on syncs are
// ignored), drops everything not synced (ResetToSyncedState), reopens
// and checks that every capsule whose create was acknowledged is there
// with its metadata, and every acknowledged append is there, whole and
// verifiable. Three cuts in a row, each reopening what the last one left.
//
// bbolt writes through the operating system's files directly (no file
// system abstraction to substitute), so this test covers pebble, the
// default engine; bbolt is covered by the SIGKILL test only (doc.go).
func TestPowerLoss(t *testing.T) {
	fs := vfs.NewStrictMem()
	const dir = "/power/store"
	open := func() *Store {
		t.Helper()
		s, err := Open(dir, Options{fs: fs})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ctx := context.Background()
	const writers = 4
	acked := make([]uint64, writers) // per capsule: the highest acknowledged seqno before a cut
	created := make([]bool, writers)
	for round := 1; round <= 3; round++ {
		s := open()
		var cutting atomic.Bool
		var roundAcks [writers]atomic.Int64 // appends acknowledged this round, per capsule
		var wg sync.WaitGroup
		for i := 0; i < writers; i++ {
			tc := newTestCapsule(t, byte(90+i))
			wg.Add(1)
			go func() {
				defer wg.Done()
				if !created[i] {
					if err := s.Create(ctx, tc.name, tc.meta); err != nil {
						t.Error(err)
						return
					}
					if cutting.Load() {
						return
					}
					created[i] = true
				}
				h, err := s.Head(tc.name)
				if err != nil {
					t.Error(err)
					return
				}
				w := tc.writer()
				if h.Seqno > 0 {
					w = capsule.RestartWriter(tc.name, tc.key, h)
					w.Now = tc.writer().Now
				}
				for b := 0; !cutting.Load(); b++ {
					recs, hb := writeRecs(w, 1+b%3, 200)
					if err := s.Append(ctx, tc.name, recs, hb); err != nil {
						t.Error(err)
						return
					}
					// Acknowledged before the cut began: its fsync happened
					// before syncs were ignored, so it must survive.
					if !cutting.Load() {
						acked[i] = hb.Seqno
						roundAcks[i].Add(1)
					}
				}
			}()
		}
		// Cut while every writer is mid-stream: once each has had a few
		// appends acknowledged this round (a fixed sleep left a slow
		// writer with none on a loaded machine), plus a pause that moves
		// the cut's point from round to round.
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
			slowest := roundAcks[0].Load()
			for i := 1; i < writers; i++ {
				slowest = min(slowest, roundAcks[i].Load())
			}
			if slowest >= 3 || t.Failed() {
				break
			}
			if time.Now().After(deadline) {
				cutting.Store(true)
				wg.Wait()
				t.Fatalf("round %d: a writer had %d appends acknowledged in 30 s (too slow to test)", round, slowest)
			}
		}
		time.Sleep(time.Duration(20*round) * time.Millisecond)
		// Power cut: flag first, then ignore syncs (see the ack rule above).
		cutting.Store(true)
		fs.SetIgnoreSyncs(true)
		wg.Wait()
		_ = s.Close() // its syncs are ignored: the power is off
		fs.ResetToSyncedState()
		fs.SetIgnoreSyncs(false)
		if t.Failed() {
			return
		}

		s = open()
		for i := 0; i < writers; i++ {
			tc := newTestCapsule(t, byte(90+i))
			if !created[i] {
				continue
			}
			_, meta, err := s.Info(tc.name)
			if err != nil {
				t.Fatalf("round %d: acknowledged capsule %d lost in the power cut: %v", round, i, err)
			}
			if !bytes.Equal(meta, tc.meta) {
				t.Fatalf("round %d: capsule %d metadata changed in the power cut", round, i)
			}
			h := verifyAll(t, s, tc)
			if h.Seqno < acked[i] {
				t.Fatalf("round %d: capsule %d holds %d records after the power cut; %d were acknowledged", round, i, h.Seqno, acked[i])
			}
			if acked[i] == 0 {
				t.Fatalf("round %d: capsule %d: no append acknowledged before the cut (too slow to test)", round, i)
			}
			t.Logf("round %d: capsule %d acknowledged %d, holds %d", round, i, acked[i], h.Seqno)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
