package store

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/pdu"
)

func TestMain(m *testing.M) {
	if crashChild() {
		return
	}
	code := m.Run()
	for _, f := range readStores { // benchmark fixtures shared across runs
		os.RemoveAll(f.dir)
	}
	if bigStore != nil {
		os.RemoveAll(bigStore.dir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func TestAppendReadProve(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			s := openTest(t, dir, eng)
			tc := newTestCapsule(t, 1)
			if err := s.Create(ctx, tc.name, tc.meta); err != nil {
				t.Fatal(err)
			}
			w := tc.writer()
			var hbs []*capsule.Heartbeat
			for i := 0; i < 20; i++ {
				if i%5 == 2 {
					w.Hole()
				}
				recs, hb := writeRecs(w, i+1, 100)
				mustAppend(t, s, tc.name, recs, hb)
				hbs = append(hbs, hb)
			}
			h := verifyAll(t, s, tc)
			if h.Seqno != w.Seqno() || h.Heartbeat.Root != w.Head().Tree.Root() {
				t.Fatalf("head %d, writer at %d", h.Seqno, w.Seqno())
			}
			// Every pair of heartbeats is consistent, every entry provable in each.
			for i, a := range hbs {
				for _, b := range hbs[i:] {
					p, err := s.ConsistencyProof(tc.name, a.Seqno, b.Seqno)
					if err != nil {
						t.Fatal(err)
					}
					if err := p.Verify(a.Root, b.Root); err != nil {
						t.Fatalf("consistency %d->%d: %v", a.Seqno, b.Seqno, err)
					}
				}
				for seq := uint64(1); seq <= a.Seqno; seq += 7 {
					e, _ := s.Read(tc.name, seq, seq)
					p, err := s.InclusionProof(tc.name, seq, a.Seqno)
					if err != nil || p.Verify(e[0].Hash(), a.Root) != nil {
						t.Fatalf("inclusion %d in %d: %v", seq, a.Seqno, err)
					}
				}
				got, err := s.HeartbeatAt(tc.name, a.Seqno)
				if err != nil || !got.Equal(a) {
					t.Fatalf("heartbeat at %d: %v", a.Seqno, err)
				}
			}
			// By hash and by time.
			e, _ := s.Read(tc.name, 42, 42)
			byHash, err := s.ReadByHash(tc.name, e[0].Hash())
			if err != nil || byHash.Seqno != 42 {
				t.Fatalf("by hash: %v", err)
			}
			for _, seq := range []uint64{1, 3, 42, h.Seqno} {
				r, _ := s.Read(tc.name, seq, seq)
				if r[0].Hole {
					continue
				}
				got, err := s.ReadByTime(tc.name, r[0].Time)
				if err != nil || got != seq {
					t.Fatalf("by time of %d: %d, %v", seq, got, err)
				}
			}
			if got, err := s.ReadByTime(tc.name, 0); err != nil || got != 1 {
				t.Fatalf("by time before the start: %d, %v", got, err)
			}
			// Just after a record followed by a hole: the next data record.
			for seq := uint64(1); seq < h.Seqno; seq++ {
				r, _ := s.Read(tc.name, seq, seq+2)
				if !r[0].Hole && r[1].Hole && !r[2].Hole {
					got, err := s.ReadByTime(tc.name, r[0].Time+1)
					if err != nil || got != seq+2 {
						t.Fatalf("by time after %d (hole at %d): %d, %v", seq, seq+1, got, err)
					}
					break
				}
			}
			if _, err := s.ReadByTime(tc.name, 1<<62); !errors.Is(err, ErrNotFound) {
				t.Fatalf("by time after the end: %v", err)
			}
			if _, err := s.Read(tc.name, h.Seqno, h.Seqno+1); !errors.Is(err, ErrOutOfRange) {
				t.Fatalf("read beyond head: %v", err)
			}
			// Reopen: same head, and appends continue.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openTest(t, dir, eng)
			defer s.Close()
			if h2 := verifyAll(t, s, tc); h2.Seqno != h.Seqno || !h2.Heartbeat.Equal(h.Heartbeat) || h2.Hash != h.Hash || h2.Time != h.Time {
				t.Fatal("head differs after reopen")
			}
			recs, hb := writeRecs(w, 3, 10)
			mustAppend(t, s, tc.name, recs, hb)
			verifyAll(t, s, tc)
			_, meta, _ := s.Info(tc.name)
			if !bytes.Equal(meta, tc.meta) {
				t.Fatal("metadata not kept")
			}
		})
	}
}

// Bad input gets a clear error and changes nothing.
func TestAppendRejects(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), "pebble")
	defer s.Close()
	tc := newTestCapsule(t, 2)
	if err := s.Create(ctx, tc.name, tc.meta); err != nil {
		t.Fatal(err)
	}
	w := tc.writer()
	recs0, hb0 := writeRecs(w, 5, 64)
	mustAppend(t, s, tc.name, recs0, hb0)
	recs, hb1 := writeRecs(w, 5, 64)
	mustAppend(t, s, tc.name, recs, hb1)
	before := verifyAll(t, s, tc)
	other := newTestCapsule(t, 3)

	// next builds a batch continuing from the head without touching w.
	next := func(n, size int) ([]capsule.Record, *capsule.Heartbeat) {
		cw := capsule.RestartWriter(tc.name, tc.key, before)
		return writeRecs(cw, n, size)
	}
	tests := []struct {
		name string
		c    pdu.Name
		make func() ([]capsule.Record, *capsule.Heartbeat)
		want error
	}{
		{"tampered record data", tc.name, func() ([]capsule.Record, *capsule.Heartbeat) {
			r, hb := next(3, 64)
			r[1].Data = append([]byte(nil), r[1].Data...)
			r[1].Data[0] ^= 1
			return r, hb
		}, capsule.ErrBadDataHash},
		{"tampered record header", tc.name, func() ([]capsule.Record, *capsule.Heartbeat) {
			r, hb := next(3, 64)
			r[2].Time += 5
			return r, hb
		}, capsule.ErrRootMismatch},
		{"wrong writer key", tc.name, func() ([]capsule.Record, *capsule.Heartbeat) {
			r, hb := next(3, 64)
			hb.Sign(other.key)
			return r, hb
		}, capsule.ErrBadSignature},
		{"older batch re-sent with a different record", tc.name, func() ([]capsule.Record, *capsule.Heartbeat) {
			r := append([]capsule.Record(nil), recs0...)
			last := r[len(r)-1]
			r[len(r)-1] = capsule.NewRecord(tc.name, last.Seqno, last.Time, last.Prev, []byte("not what was written"))
			return r, hb0
		}, capsule.ErrRootMismatch},
		{"same seqno, different root", tc.name, func() ([]capsule.Record, *capsule.Heartbeat) {
			hb := *hb1
			hb.Root[0] ^= 1
			hb.Time++
			hb.Sign(tc.key)
			return nil, &hb
		}, capsule.ErrEquivocation},
		{"gap without hole", tc.name, func() ([]capsule.Record, *capsule.Heartbeat) {
			r, hb := next(4, 64)
			return append(r[:1:1], r[2:]...), hb
		}, capsule.ErrGap},
		{"oversized record", tc.name, func() ([]capsule.Record, *capsule.Heartbeat) {
			return next(1, capsule.DefaultMaxData+1)
		}, capsule.ErrTooLarge},
		{"no heartbeat", tc.name, func() ([]capsule.Record, *capsule.Heartbeat) {
			r, _ := next(1, 8)
			return r, nil
		}, capsule.ErrMalformed},
		{"unknown capsule", other.name, func() ([]capsule.Record, *capsule.Heartbeat) {
			return writeRecs(other.writer(), 1, 8)
		}, ErrUnknownCapsule},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, hb := tt.make()
			err := s.Append(ctx, tt.c, recs, hb)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			after := verifyAll(t, s, tc)
			if after.Seqno != before.Seqno || !after.Heartbeat.Equal(before.Heartbeat) {
				t.Fatal("the store changed")
			}
		})
	}
	// The signed heartbeat for a different log of 10 entries left evidence.
	evs, err := s.Evidence(tc.name)
	if err != nil || len(evs) != 1 || evs[0].Size != 10 {
		t.Fatalf("evidence: %d, %v", len(evs), err)
	}
	if err := evs[0].Verify(tc.info); err != nil {
		t.Fatalf("evidence does not verify: %v", err)
	}
	// An older batch re-sent after later ones landed (its ack was lost or
	// late), and its heartbeat alone: held as sent, so acknowledged again,
	// changing nothing.
	if err := s.Append(ctx, tc.name, recs0, hb0); err != nil {
		t.Fatalf("re-sent older batch: %v", err)
	}
	if err := s.Append(ctx, tc.name, nil, hb0); err != nil {
		t.Fatalf("re-sent older heartbeat: %v", err)
	}
	if after := verifyAll(t, s, tc); after.Seqno != before.Seqno || !after.Heartbeat.Equal(before.Heartbeat) {
		t.Fatal("a re-sent older batch changed the store")
	}
	// A retry of an acknowledged batch is acknowledged again, changing nothing.
	if err := s.Append(ctx, tc.name, nil, hb1); err != nil {
		t.Fatalf("retry of the newest heartbeat: %v", err)
	}
	// Bad metadata never creates a capsule.
	if err := s.Create(ctx, other.name, tc.meta); err == nil {
		t.Fatal("metadata for another name accepted")
	}
	if _, err := s.Head(other.name); !errors.Is(err, ErrUnknownCapsule) {
		t.Fatalf("capsule created from bad metadata: %v", err)
	}
}

func TestRetryAndExtend(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), "bbolt")
	defer s.Close()
	tc := newTestCapsule(t, 4)
	s.Create(ctx, tc.name, tc.meta)
	w := tc.writer()
	r1, hb1 := writeRecs(w, 4, 32)
	mustAppend(t, s, tc.name, r1, hb1)
	mustAppend(t, s, tc.name, r1, hb1) // the same batch again: acked, no change
	r2, hb2 := writeRecs(w, 4, 32)
	// The writer lost the ack of batch 1 and resends it with batch 2.
	mustAppend(t, s, tc.name, append(append([]capsule.Record(nil), r1...), r2...), hb2)
	if h := verifyAll(t, s, tc); h.Seqno != 8 {
		t.Fatalf("head %d, want 8", h.Seqno)
	}
	// A fresher heartbeat over the same log replaces the held one.
	_, hb3 := w.Flush()
	mustAppend(t, s, tc.name, nil, hb3)
	if got, _ := s.Heartbeat(tc.name); !got.Equal(hb3) {
		t.Fatal("fresher heartbeat not held")
	}
	if err := s.Append(ctx, tc.name, nil, hb2); !errors.Is(err, capsule.ErrStale) {
		t.Fatalf("older heartbeat at the same seqno: %v", err)
	}
}

func TestEquivocation(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng, func(t *testing.T) {
			ctx := context.Background()
			s := openTest(t, t.TempDir(), eng)
			defer s.Close()
			tc := newTestCapsule(t, 5)
			s.Create(ctx, tc.name, tc.meta)
			w := tc.writer()
			recs, hb := writeRecs(w, 10, 16)
			mustAppend(t, s, tc.name, recs, hb)
			fork := capsule.RestartWriter(tc.name, tc.key, w.Head())
			recs, hb = writeRecs(w, 5, 16)
			mustAppend(t, s, tc.name, recs, hb)
			before := verifyAll(t, s, tc)

			// The same writer, same epoch, signs a different seqno 11 onwards.
			fr, fhb := writeRecs(fork, 7, 17)
			fhb.Epoch, fhb.Base = hb.Epoch, hb.Base
			fhb.Sign(tc.key)
			err := s.Append(ctx, tc.name, fr, fhb)
			var eq *capsule.EquivocationError
			if !errors.As(err, &eq) || !errors.Is(err, capsule.ErrEquivocation) {
				t.Fatalf("got %v, want equivocation", err)
			}
			if eq.Evidence.Size != 11 {
				t.Fatalf("evidence at %d, want the first differing seqno 11", eq.Evidence.Size)
			}
			if after := verifyAll(t, s, tc); !after.Heartbeat.Equal(before.Heartbeat) {
				t.Fatal("the log changed")
			}
			evs, err := s.Evidence(tc.name)
			if err != nil || len(evs) != 1 {
				t.Fatalf("stored evidence: %d, %v", len(evs), err)
			}
			if err := evs[0].Verify(tc.info); err != nil {
				t.Fatalf("stored evidence does not verify: %v", err)
			}
		})
	}
}

// A writer that lost its state restarts from the head one replica had (10)
// while this replica holds more (15): the newer epoch wins, the old entries
// are kept as an abandoned branch, and readers follow the new line.
func TestAbandonedBranch(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			s := openTest(t, dir, eng)
			tc := newTestCapsule(t, 6)
			s.Create(ctx, tc.name, tc.meta)
			w := tc.writer()
			recs, hb := writeRecs(w, 10, 16)
			mustAppend(t, s, tc.name, recs, hb)
			recovered := w.Head()
			recovered.Heartbeat = hb
			recs, hb = writeRecs(w, 5, 16) // sent, never acknowledged to the writer
			mustAppend(t, s, tc.name, recs, hb)
			proveAll := func(hb *capsule.Heartbeat) {
				t.Helper()
				for seq := uint64(1); seq <= hb.Seqno; seq++ {
					e, _ := s.Read(tc.name, seq, seq)
					p, err := s.InclusionProof(tc.name, seq, hb.Seqno)
					if err != nil || p.Verify(e[0].Hash(), hb.Root) != nil {
						t.Fatalf("inclusion of %d in %d: %v", seq, hb.Seqno, err)
					}
				}
			}
			proveAll(hb) // fills the node cache with the old line's nodes

			nw := capsule.RestartWriter(tc.name, tc.key, recovered)
			nw.Now = w.Now
			nw.Hole()
			nr, nhb := writeRecs(nw, 2, 99)
			if nhb.Epoch != 1 || nhb.Base != 10 {
				t.Fatalf("restart heartbeat epoch %d base %d", nhb.Epoch, nhb.Base)
			}
			mustAppend(t, s, tc.name, nr, nhb)
			h := verifyAll(t, s, tc)
			if h.Seqno != 13 || !h.Heartbeat.Equal(nhb) {
				t.Fatalf("head %d after the branch, want 13", h.Seqno)
			}
			proveAll(nhb) // no node of the old line may be served
			checkNodes(t, s, tc)
			br, err := s.Abandoned(tc.name)
			if err != nil || len(br) != 1 || len(br[0].Entries) != 5 || br[0].Entries[0].Seqno != 11 || br[0].Heartbeat.Seqno != 15 {
				t.Fatalf("abandoned branch: %+v, %v", br, err)
			}
			if _, err := s.ReadByHash(tc.name, recs[0].Hash()); !errors.Is(err, ErrNotFound) {
				t.Fatalf("abandoned entry still indexed: %v", err)
			}
			// The old epoch cannot come back.
			if err := s.Append(ctx, tc.name, recs, hb); !errors.Is(err, capsule.ErrStale) {
				t.Fatalf("old epoch replayed: %v", err)
			}
			s.Close()
			s = openTest(t, dir, eng)
			defer s.Close()
			verifyAll(t, s, tc)
			nr, nhb = writeRecs(nw, 40, 8)
			mustAppend(t, s, tc.name, nr, nhb)
			verifyAll(t, s, tc)
			checkNodes(t, s, tc)
			for m := uint64(1); m <= 53; m += 5 {
				p, err := s.ConsistencyProof(tc.name, m, 53)
				if err != nil {
					t.Fatal(err)
				}
				old, _ := capsule.RootAt(s.nodeSource(s.capsules[tc.name]), m)
				if err := p.Verify(old, nhb.Root); err != nil {
					t.Fatalf("consistency %d->53 after the branch: %v", m, err)
				}
			}
		})
	}
}

// Many appenders on many capsules at once: every append is acknowledged,
// fsyncs are shared, and the logs verify.
// slowEngine makes every commit take at least delay, standing in for a slow
// disk: while one group's fsync runs, the other writers' appends queue.
type slowEngine struct {
	engine
	delay time.Duration
}

func (e slowEngine) commit(b *writeBatch) error {
	time.Sleep(e.delay)
	return e.engine.commit(b)
}

// hookEngine runs before ahead of every commit.
type hookEngine struct {
	engine
	before func()
}

func (e hookEngine) commit(b *writeBatch) error {
	e.before()
	return e.engine.commit(b)
}

func TestConcurrentAppends(t *testing.T) {
	ctx := context.Background()
	// A commit that takes 2 ms however fast the disk is: with 8 writers
	// appending back to back, a group commit must cover several writes per
	// fsync, whatever the machine (a fast SSD or tmpfs could otherwise let
	// every write have its own).
	s, err := Open(t.TempDir(), Options{wrapEngine: func(e engine) engine {
		return slowEngine{engine: e, delay: 2 * time.Millisecond}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const writers, batches = 8, 30
	var tcs []testCapsule
	for i := 0; i < writers; i++ {
		tc := newTestCapsule(t, byte(10+i))
		if err := s.Create(ctx, tc.name, tc.meta); err != nil {
			t.Fatal(err)
		}
		tcs = append(tcs, tc)
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	// A reader verifies what it sees while the writers run: it must only
	// ever see durable, complete, verifiable state.
	done := make(chan struct{})
	var rwg sync.WaitGroup
	rwg.Add(1)
	go func() {
		defer rwg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			h, err := s.Head(tcs[0].name)
			if err != nil || h.Seqno == 0 {
				continue
			}
			recs, err := s.Read(tcs[0].name, 1, h.Seqno)
			if err == nil {
				var p *capsule.InclusionProof
				if p, err = s.InclusionProof(tcs[0].name, h.Seqno, h.Seqno); err == nil {
					err = capsule.VerifyRange(tcs[0].info, h.Heartbeat, recs, p, 0)
				}
			}
			if err != nil {
				errs <- fmt.Errorf("concurrent reader: %w", err)
				return
			}
		}
	}()
	for _, tc := range tcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := tc.writer()
			for b := 0; b < batches; b++ {
				recs, hb := writeRecs(w, 1+b%4, 256)
				if err := s.Append(ctx, tc.name, recs, hb); err != nil {
					errs <- fmt.Errorf("%s: %w", tc.name, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	rwg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, tc := range tcs {
		verifyAll(t, s, tc)
	}
	// Eight writers, each with one append in flight: while a commit runs,
	// up to seven others queue and must share the next fsync. Without
	// sharing every write has its own group (g == w); with it g is a
	// fraction of w. Half is a wide margin for a loaded machine.
	g, w := s.commit.groups.Load(), s.commit.writes.Load()
	t.Logf("%d groups for %d writes", g, w)
	if w < writers*batches { // the creates count too
		t.Fatalf("%d writes counted, want at least %d", w, writers*batches)
	}
	if g*2 > w {
		t.Fatalf("group commit does not share fsyncs: %d groups for %d writes", g, w)
	}
}

func TestOptions(t *testing.T) {
	if _, err := Open(t.TempDir(), Options{Engine: "leveldb"}); err == nil {
		t.Fatal("unknown engine accepted")
	}
	s, err := Open(t.TempDir(), Options{MaxData: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tc := newTestCapsule(t, 7)
	s.Create(context.Background(), tc.name, tc.meta)
	recs, hb := writeRecs(tc.writer(), 1, 11)
	if err := s.Append(context.Background(), tc.name, recs, hb); !errors.Is(err, capsule.ErrTooLarge) {
		t.Fatalf("configured size bound: %v", err)
	}
	_ = ed25519.PublicKeySize
}

func TestClosed(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), "pebble")
	tc := newTestCapsule(t, 8)
	s.Create(ctx, tc.name, tc.meta)
	recs, hb := writeRecs(tc.writer(), 3, 8)
	mustAppend(t, s, tc.name, recs, hb)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	recs, hb = writeRecs(tc.writer(), 1, 8)
	for name, err := range map[string]error{
		"append": s.Append(ctx, tc.name, recs, hb),
		"create": s.Create(ctx, tc.name, tc.meta),
		"read":   func() error { _, err := s.Read(tc.name, 1, 1); return err }(),
		"proof":  func() error { _, err := s.InclusionProof(tc.name, 1, 3); return err }(),
		"byhash": func() error { _, err := s.ReadByHash(tc.name, capsule.Hash{}); return err }(),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after close: %v", name, err)
		}
	}
}

// A writer may pipeline appends: batches checked in parallel on many
// goroutines land in seqno order, and a real gap still fails.
func TestPipelinedAppends(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir(), Options{ReorderWindow: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tc := newTestCapsule(t, 9)
	s.Create(ctx, tc.name, tc.meta)
	w := tc.writer()
	var batches []benchBatch
	for i := 0; i < 64; i++ {
		recs, hb := writeRecs(w, 1+i%3, 32)
		batches = append(batches, benchBatch{recs, hb})
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(batches))
	for _, bb := range batches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Append(ctx, tc.name, bb.recs, bb.hb); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if h := verifyAll(t, s, tc); h.Seqno != w.Seqno() {
		t.Fatalf("head %d, writer at %d", h.Seqno, w.Seqno())
	}
	writeRecs(w, 2, 8) // never sent
	recs, hb := writeRecs(w, 1, 8)
	start := time.Now()
	if err := s.Append(ctx, tc.name, recs, hb); !errors.Is(err, capsule.ErrGap) {
		t.Fatalf("gap with nothing in flight: %v", err)
	}
	if el := time.Since(start); el < 2*time.Second {
		t.Fatalf("gap refused after %v, before the reorder window", el)
	}
	// A context that ends cuts the wait short.
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	if err := s.Append(cctx, tc.name, recs, hb); err == nil || time.Since(start) > time.Second {
		t.Fatalf("canceled wait: %v after %v", err, time.Since(start))
	}
}

// A branch shorter than the line it replaces must drop the nodes that
// straddle the fork point, which the new line never rewrites.
func TestBranchDropsStraddlingNodes(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), "bbolt")
	defer s.Close()
	tc := newTestCapsule(t, 11)
	s.Create(ctx, tc.name, tc.meta)
	w := tc.writer()
	recs, hb := writeRecs(w, 10, 8)
	mustAppend(t, s, tc.name, recs, hb)
	recovered := w.Head()
	recovered.Heartbeat = hb
	recs, hb = writeRecs(w, 6, 8)
	mustAppend(t, s, tc.name, recs, hb)
	checkNodes(t, s, tc)
	nw := capsule.RestartWriter(tc.name, tc.key, recovered)
	nw.Now = w.Now
	recs, hb = writeRecs(nw, 1, 9)
	mustAppend(t, s, tc.name, recs, hb)
	if h := verifyAll(t, s, tc); h.Seqno != 11 {
		t.Fatalf("head %d, want 11", h.Seqno)
	}
	checkNodes(t, s, tc)
}

// AppendSegments stores a peer's segments as Append would, one after the
// other, but with one wait for durability: with a commit that takes 20 ms,
// eight segments take two group commits (the first alone, the other seven
// queued behind it), not eight. A segment that does not verify stops it:
// the ones before it are durable, nothing of it or after it is stored.
func TestAppendSegmentsShareFsyncs(t *testing.T) {
	ctx := context.Background()
	// The first commit of the call (of the segments queued by the time
	// the committer woke) is held until every segment is applied to the
	// head and queued, or 10 s: then however slowly the machine checks
	// segments (-race on a busy machine took longer per segment than a
	// fixed 20 ms commit), the segments queued during that commit must
	// share the next one.
	var s *Store
	var cs *capsuleState
	var held atomic.Bool
	held.Store(true) // nothing held until the segments go in
	s, err := Open(t.TempDir(), Options{wrapEngine: func(e engine) engine {
		return hookEngine{engine: e, before: func() {
			if !held.CompareAndSwap(false, true) {
				return
			}
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
				cs.mu.Lock()
				queued := cs.head.Seqno
				cs.mu.Unlock()
				if queued == 8*16 {
					return
				}
			}
		}}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tc := newTestCapsule(t, 40)
	if err := s.Create(ctx, tc.name, tc.meta); err != nil {
		t.Fatal(err)
	}
	w := tc.writer()
	var segs []Segment
	for range 8 {
		recs, hb := writeRecs(w, 16, 64)
		segs = append(segs, Segment{Records: recs, Heartbeat: hb})
	}
	if cs, err = s.state(tc.name); err != nil {
		t.Fatal(err)
	}
	held.Store(false) // Create committed: hold the next commit
	before := s.Stats().Fsyncs
	n, err := s.AppendSegments(ctx, tc.name, segs)
	if err != nil || n != len(segs) {
		t.Fatalf("AppendSegments: %d stored, %v", n, err)
	}
	if got := s.Stats().Fsyncs - before; got > 2 {
		t.Fatalf("8 segments took %d group commits, want at most 2", got)
	}
	if h := verifyAll(t, s, tc); h.Seqno != 8*16 {
		t.Fatalf("head %d after 8 segments of 16", h.Seqno)
	}

	// Three more, the second with a record whose data was changed.
	segs = segs[:0]
	for range 3 {
		recs, hb := writeRecs(w, 16, 64)
		segs = append(segs, Segment{Records: recs, Heartbeat: hb})
	}
	segs[1].Records[3].Data = append([]byte{0xff}, segs[1].Records[3].Data[1:]...)
	n, err = s.AppendSegments(ctx, tc.name, segs)
	if err == nil || n != 1 {
		t.Fatalf("a tampered second segment: %d stored, err %v; want 1 and an error", n, err)
	}
	if h := verifyAll(t, s, tc); h.Seqno != 9*16 {
		t.Fatalf("head %d, want %d (the segment before the tampered one)", h.Seqno, 9*16)
	}
}
