package store

import (
	"bytes"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/pdu"
)

// engineOps counts the scans (each one pebble iterator) and the point reads
// of entries an engine serves.
type engineOps struct {
	engine
	scans, gets atomic.Int64
}

func (e *engineOps) scan(lo, hi []byte, fn func(k, v []byte) bool) error {
	e.scans.Add(1)
	return e.engine.scan(lo, hi, fn)
}

func (e *engineOps) get(k []byte) ([]byte, error) {
	if len(k) > 0 && k[0] == tEntry {
		e.gets.Add(1)
	}
	return e.engine.get(k)
}

func openReadAhead(t *testing.T, o Options) (*Store, *engineOps) {
	t.Helper()
	ops := &engineOps{}
	o.wrapEngine = func(e engine) engine { ops.engine = e; return ops }
	s, err := Open(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, ops
}

var readerA, readerB = pdu.Name{0xa}, pdu.Name{0xb}

// readOne is a one-entry READ of who, its entry checked against want and
// its inclusion proof against the heartbeat, as a server answers it.
func readOne(t *testing.T, s *Store, who pdu.Name, c pdu.Name, seq uint64, want []capsule.Record, hb *capsule.Heartbeat) {
	t.Helper()
	n := 0
	err := s.ReadRawFor(who, who, c, seq, seq, func(got uint64, wire []byte, _ bool) error {
		n++
		if got != seq || !bytes.Equal(wire, want[seq-1].Marshal()) {
			t.Fatalf("read %d: entry %d is not the one stored", seq, got)
		}
		return nil
	})
	if err != nil || n != 1 {
		t.Fatalf("read %d: %d entries, %v", seq, n, err)
	}
	p, err := s.InclusionProof(c, seq, hb.Seqno)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(want[seq-1].Hash(), hb.Root); err != nil {
		t.Fatalf("proof of %d: %v", seq, err)
	}
}

// TestReadAheadSequentialReader: a reader asking for 64 records one READ
// at a time costs a few scans (one iterator each) in all, not one per
// READ, and no proof loads an entry; every READ still returns the stored
// entry with a proof that verifies.
func TestReadAheadSequentialReader(t *testing.T) {
	s, ops := openReadAhead(t, Options{ReadAheadBytes: 16 << 10})
	tc := newTestCapsule(t, 21)
	if err := s.Create(t.Context(), tc.name, tc.meta); err != nil {
		t.Fatal(err)
	}
	recs, hb := writeRecs(tc.writer(), 64, 1000)
	mustAppend(t, s, tc.name, recs, hb)
	// A file reader reads the index at the head first, then the chunks
	// from the start: the jump back starts the stream again.
	readOne(t, s, readerA, tc.name, 64, recs, hb)
	s0, g0 := ops.scans.Load(), ops.gets.Load()
	for seq := uint64(1); seq <= 64; seq++ {
		readOne(t, s, readerA, tc.name, seq, recs, hb)
	}
	scans, gets := ops.scans.Load()-s0, ops.gets.Load()-g0
	// 16 KiB ahead of ~1 KB records: a fill of ~16, then one each time
	// half is left (~8 READs): about 9 scans; one per READ would be 64.
	if scans > 12 {
		t.Fatalf("%d scans for 64 sequential one-record READs, want at most 12", scans)
	}
	// Without the leaf hashes of the entries read ahead every other proof
	// loads its neighbour (32). With them only the first READ's (no stream
	// yet) and a READ of the last entry read ahead before a refill running
	// off a READ has hashed the next do.
	if gets > 12 {
		t.Fatalf("%d entries loaded for the proofs of 64 READs, want at most 12", gets)
	}
	st := s.Stats()
	if st.ReadAheadHits < 50 || st.ReadAheadEntries < 50 {
		t.Fatalf("read-ahead: %d hits, %d entries read ahead", st.ReadAheadHits, st.ReadAheadEntries)
	}
	if st.ReadAheadBytes < 0 || st.ReadAheadBytes > 16<<10 {
		t.Fatalf("%d bytes kept, bound 16 KiB", st.ReadAheadBytes)
	}
}

// TestReadAheadSeesAppend: an append between two READs of a stream is
// read: the READ past what was read ahead reads the store again.
func TestReadAheadSeesAppend(t *testing.T) {
	s, _ := openReadAhead(t, Options{})
	tc := newTestCapsule(t, 22)
	if err := s.Create(t.Context(), tc.name, tc.meta); err != nil {
		t.Fatal(err)
	}
	w := tc.writer()
	recs, hb := writeRecs(w, 8, 500)
	mustAppend(t, s, tc.name, recs, hb)
	for seq := uint64(1); seq <= 4; seq++ { // the stream reads ahead to 8
		readOne(t, s, readerA, tc.name, seq, recs, hb)
	}
	more, hb2 := writeRecs(w, 8, 500)
	mustAppend(t, s, tc.name, more, hb2)
	all := append(append([]capsule.Record(nil), recs...), more...)
	for seq := uint64(5); seq <= 16; seq++ {
		readOne(t, s, readerA, tc.name, seq, all, hb2)
	}
	if s.Stats().ReadAheadHits == 0 {
		t.Fatal("no READ served from read-ahead")
	}
}

// TestReadAheadRecreatedCapsule: a capsule deleted and created again under
// its name never has the deleted one's records served from a stream
// filled before the Delete.
func TestReadAheadRecreatedCapsule(t *testing.T) {
	s, _ := openReadAhead(t, Options{})
	tc := newTestCapsule(t, 23)
	if err := s.Create(t.Context(), tc.name, tc.meta); err != nil {
		t.Fatal(err)
	}
	old, hb := writeRecs(tc.writer(), 16, 300)
	mustAppend(t, s, tc.name, old, hb)
	for seq := uint64(1); seq <= 3; seq++ { // read ahead to 16
		readOne(t, s, readerA, tc.name, seq, old, hb)
	}
	if err := s.Delete(t.Context(), tc.name); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(t.Context(), tc.name, tc.meta); err != nil {
		t.Fatal(err)
	}
	recs, hb := writeRecs(tc.writer(), 16, 400) // other records, same seqnos
	mustAppend(t, s, tc.name, recs, hb)
	for seq := uint64(4); seq <= 16; seq++ {
		readOne(t, s, readerA, tc.name, seq, recs, hb)
	}
}

// TestReadAheadBranch: a branch rewriting entries a stream read ahead
// (a new Merkle generation) empties the stream: the new line's entries
// are served.
func TestReadAheadBranch(t *testing.T) {
	s, _ := openReadAhead(t, Options{})
	tc := newTestCapsule(t, 24)
	if err := s.Create(t.Context(), tc.name, tc.meta); err != nil {
		t.Fatal(err)
	}
	recs, hb := writeRecs(tc.writer(), 16, 300)
	mustAppend(t, s, tc.name, recs, hb)
	for seq := uint64(1); seq <= 3; seq++ {
		readOne(t, s, readerA, tc.name, seq, recs, hb)
	}
	// Simulate what a branch does to the stream's key: same capsule state,
	// a new generation, other entries stored at the seqnos read ahead.
	cs, err := s.state(tc.name)
	if err != nil {
		t.Fatal(err)
	}
	st := s.ahead.table[streamKey{readerA, tc.name}]
	if st == nil || len(st.recs) == 0 {
		t.Fatal("nothing read ahead")
	}
	for seq := range st.recs {
		st.recs[seq] = []byte("stale")
	}
	cs.gen.Store(nodeGens.Add(1))
	for seq := uint64(4); seq <= 16; seq++ {
		readOne(t, s, readerA, tc.name, seq, recs, hb)
	}
}

// TestReadAheadBounds: the bytes kept per requester and in all stay within
// their bounds and each bite is counted; a requester opening more streams
// than its share loses its least recently used one; an idle stream goes.
func TestReadAheadBounds(t *testing.T) {
	s, _ := openReadAhead(t, Options{ReadAheadBytes: 8 << 10, ReadAheadTotal: 12 << 10, ReadAheadStreams: 2, ReadAheadIdle: time.Hour})
	ra := s.ahead
	var names []pdu.Name
	var logs [][]capsule.Record
	var hbs []*capsule.Heartbeat
	for i := range 3 {
		tc := newTestCapsule(t, byte(30+i))
		if err := s.Create(t.Context(), tc.name, tc.meta); err != nil {
			t.Fatal(err)
		}
		recs, hb := writeRecs(tc.writer(), 64, 1000)
		mustAppend(t, s, tc.name, recs, hb)
		names, logs, hbs = append(names, tc.name), append(logs, recs), append(hbs, hb)
	}
	check := func(when string) {
		t.Helper()
		ra.mu.Lock()
		defer ra.mu.Unlock()
		if ra.bytes > 12<<10 {
			t.Fatalf("%s: %d bytes kept in all, bound 12 KiB", when, ra.bytes)
		}
		sum := map[pdu.Name]int{}
		for _, st := range ra.table {
			sum[st.share] += st.bytes
		}
		for who, u := range ra.who {
			if u.bytes > 8<<10 || u.bytes != sum[who] {
				t.Fatalf("%s: requester %x keeps %d bytes (streams: %d), bound 8 KiB", when, who[:1], u.bytes, sum[who])
			}
		}
	}
	// Reader A reads capsules 0 and 1 in turn: 8 KiB between them.
	for seq := uint64(1); seq <= 10; seq++ {
		readOne(t, s, readerA, names[0], seq, logs[0], hbs[0])
		readOne(t, s, readerA, names[1], seq, logs[1], hbs[1])
		check("reader A")
	}
	if s.Stats().ReadAheadLimitedRequester == 0 {
		t.Fatalf("two streams of one requester never met its bound: %+v", s.Stats())
	}
	// A's refills run off its READs: B reads once they ended, so that B's
	// room is what A's streams leave in all (else, on a loaded machine, B
	// read before A's refill kept its bytes, and only B's own bound bit).
	settled := func() bool {
		ra.mu.Lock()
		var sts []*stream
		for _, st := range ra.table {
			sts = append(sts, st)
		}
		ra.mu.Unlock()
		for _, st := range sts {
			st.mu.Lock()
			busy := st.fillHi != 0
			st.mu.Unlock()
			if busy {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(20 * time.Second); !settled(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("reader A's refills never ended")
		}
	}
	ra.mu.Lock()
	kept := ra.who[readerA].bytes
	ra.mu.Unlock()
	if kept <= 4<<10 {
		t.Fatalf("reader A keeps %d bytes, want more than 4 KiB (B's room then set by the bound in all)", kept)
	}
	// Reader B: the 4 KiB left in all.
	for seq := uint64(1); seq <= 10; seq++ {
		readOne(t, s, readerB, names[2], seq, logs[2], hbs[2])
		check("reader B")
	}
	if s.Stats().ReadAheadLimitedTotal == 0 {
		t.Fatal("the bound in all never bit")
	}
	// A third stream of A drops its least recently used (capsule 0).
	readOne(t, s, readerA, names[2], 1, logs[2], hbs[2])
	check("reader A's third stream")
	if ra.table[streamKey{readerA, names[0]}] != nil || s.Stats().ReadAheadEvicted != 1 {
		t.Fatalf("the least recently used stream stays (%d evicted)", s.Stats().ReadAheadEvicted)
	}
	// Idle streams go at the next lookup after the idle time.
	ra.mu.Lock()
	ra.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	ra.mu.Unlock()
	readOne(t, s, readerB, names[0], 1, logs[0], hbs[0])
	if len(ra.table) != 1 || s.Stats().ReadAheadIdled != 3 {
		t.Fatalf("%d streams left, %d dropped idle; want the new one only, 3 dropped", len(ra.table), s.Stats().ReadAheadIdled)
	}
	check("after the idle sweep")
}

// TestReadAheadOff: ReadAheadBytes negative reads as ReadRaw does.
func TestReadAheadOff(t *testing.T) {
	s, ops := openReadAhead(t, Options{ReadAheadBytes: -1})
	tc := newTestCapsule(t, 25)
	if err := s.Create(t.Context(), tc.name, tc.meta); err != nil {
		t.Fatal(err)
	}
	recs, hb := writeRecs(tc.writer(), 16, 300)
	mustAppend(t, s, tc.name, recs, hb)
	s0 := ops.scans.Load()
	for seq := uint64(1); seq <= 16; seq++ {
		readOne(t, s, readerA, tc.name, seq, recs, hb)
	}
	if n := ops.scans.Load() - s0; n != 16 || s.Stats().ReadAheadFills != 0 {
		t.Fatalf("%d scans, %d fills with read-ahead off", n, s.Stats().ReadAheadFills)
	}
}

// TestReadAheadConcurrentREADs: a reader with 8 READs in flight, served by
// as many workers in any order, and appends landing meanwhile: every READ
// returns its stored entry with a proof that verifies (run under -race).
func TestReadAheadConcurrentREADs(t *testing.T) {
	s, _ := openReadAhead(t, Options{ReadAheadBytes: 32 << 10})
	tc := newTestCapsule(t, 26)
	if err := s.Create(t.Context(), tc.name, tc.meta); err != nil {
		t.Fatal(err)
	}
	w := tc.writer()
	recs, hb := writeRecs(w, 200, 700)
	mustAppend(t, s, tc.name, recs, hb)
	more, hb2 := writeRecs(w, 100, 700)
	all := append(append([]capsule.Record(nil), recs...), more...)
	appended := make(chan struct{})
	go func() {
		defer close(appended)
		mustAppend(t, s, tc.name, more, hb2)
	}()
	errs := make(chan error, 8)
	for k := range uint64(8) {
		go func() {
			for seq := 1 + k; seq <= 200; seq += 8 {
				err := s.ReadRawFor(readerA, readerA, tc.name, seq, seq, func(got uint64, wire []byte, _ bool) error {
					if got != seq || !bytes.Equal(wire, all[seq-1].Marshal()) {
						t.Errorf("read %d: entry %d is not the one stored", seq, got)
					}
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	<-appended
	for seq := uint64(190); seq <= 300; seq++ {
		readOne(t, s, readerA, tc.name, seq, all, hb2)
	}
	if s.Stats().ReadAheadHits == 0 {
		t.Fatal("no READ answered from read-ahead")
	}
}

// TestReadAheadAccountRechecks: a fill sizes itself by the room it saw
// when it started; when another stream of the same requester (or another
// requester, for the bound in all) filled meanwhile, the records it read
// are not kept: the bound is checked again when they are added, counted.
func TestReadAheadAccountRechecks(t *testing.T) {
	ra := newReadAhead(Options{ReadAheadBytes: 8 << 10, ReadAheadStreams: 4, ReadAheadTotal: 12 << 10, ReadAheadIdle: time.Hour})
	a1, a2 := ra.stream(streamKey{readerA, pdu.Name{1}}, readerA), ra.stream(streamKey{readerA, pdu.Name{2}}, readerA)
	b := ra.stream(streamKey{readerB, pdu.Name{1}}, readerB)
	// Both of A's fills saw 8 KiB of room; the first to finish keeps 6.
	if room, _ := ra.room(a2); room != 8<<10 {
		t.Fatalf("room %d, want 8 KiB", room)
	}
	if !ra.account(a1, 6<<10) {
		t.Fatal("6 KiB of 8 refused")
	}
	if ra.account(a2, 4<<10) {
		t.Fatal("a second stream kept 4 KiB beyond the requester's 8 KiB")
	}
	if n := ra.counter.byWho.Load(); n != 1 {
		t.Fatalf("limited{requester_bytes} %d, want 1", n)
	}
	// B saw 8 KiB of room too, but only 6 KiB are left in all.
	if ra.account(b, 7<<10) {
		t.Fatal("a fill kept 7 KiB beyond the 12 KiB in all")
	}
	if n := ra.counter.byTotal.Load(); n != 1 {
		t.Fatalf("limited{total_bytes} %d, want 1", n)
	}
	if !ra.account(b, 6<<10) {
		t.Fatal("6 KiB within both bounds refused")
	}
	if ra.bytes != 12<<10 || ra.who[readerA].bytes != 6<<10 || a2.bytes != 0 {
		t.Fatalf("%d bytes in all, A %d, A's second stream %d", ra.bytes, ra.who[readerA].bytes, a2.bytes)
	}
}

// TestReadAheadCallerStops: a READ answered from read-ahead whose caller
// stops before its last entry (its page full: the READ's limit, or the
// message budget with large records) still starts the refill it reserved.
// Else the reservation stays: every later READ of the stream in that range
// waits for a fill that never runs (a server worker each, the store's
// close lock held), and Close waits for it forever.
func TestReadAheadCallerStops(t *testing.T) {
	s, _ := openReadAhead(t, Options{ReadAheadBytes: 16 << 10})
	tc := newTestCapsule(t, 27)
	if err := s.Create(t.Context(), tc.name, tc.meta); err != nil {
		t.Fatal(err)
	}
	recs, hb := writeRecs(tc.writer(), 64, 1000)
	mustAppend(t, s, tc.name, recs, hb)
	errFull := errors.New("page full")
	reserved := func() bool {
		s.ahead.mu.Lock()
		st := s.ahead.table[streamKey{readerA, tc.name}]
		s.ahead.mu.Unlock()
		if st == nil {
			return false
		}
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.fillHi != 0
	}
	// Two one-entry READs start the stream; then READs of two entries
	// limited to one (a page full after the first), answered from it.
	readOne(t, s, readerA, tc.name, 1, recs, hb)
	readOne(t, s, readerA, tc.name, 2, recs, hb)
	for seq := uint64(3); seq < 64; seq++ {
		n := 0
		err := s.ReadRawFor(readerA, readerA, tc.name, seq, seq+1, func(got uint64, wire []byte, _ bool) error {
			if n == 1 {
				return errFull
			}
			n++
			if got != seq || !bytes.Equal(wire, recs[seq-1].Marshal()) {
				t.Errorf("read %d: entry %d is not the one stored", seq, got)
			}
			return nil
		})
		if err != nil && !errors.Is(err, errFull) {
			t.Fatalf("read %d: %v", seq, err)
		}
		// What this READ reserved for a refill is released once it ran.
		for deadline := time.Now().Add(20 * time.Second); reserved(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				// Start the refill the READ left out, so that Close
				// returns and the failure is reported.
				s.ahead.mu.Lock()
				st := s.ahead.table[streamKey{readerA, tc.name}]
				s.ahead.mu.Unlock()
				cs, _ := s.state(tc.name)
				go s.refill(st, cs, cs.gen.Load())
				t.Fatalf("read %d: its refill never ran; the stream stays reserved and the READs after it wait forever", seq)
			}
		}
	}
	if s.Stats().ReadAheadHits == 0 {
		t.Fatal("no READ answered from read-ahead")
	}
}

// TestReadAheadStreamsInAll: the table holds one stream per 4 KiB of
// ReadAheadTotal; a READ that would open one more reads without
// read-ahead (the same entry), counted, and the streams held stay.
func TestReadAheadStreamsInAll(t *testing.T) {
	s, _ := openReadAhead(t, Options{ReadAheadBytes: 4 << 10, ReadAheadTotal: 8 << 10})
	var names []pdu.Name
	var logs [][]capsule.Record
	var hbs []*capsule.Heartbeat
	for i := range 3 {
		tc := newTestCapsule(t, byte(40+i))
		if err := s.Create(t.Context(), tc.name, tc.meta); err != nil {
			t.Fatal(err)
		}
		recs, hb := writeRecs(tc.writer(), 8, 200)
		mustAppend(t, s, tc.name, recs, hb)
		names, logs, hbs = append(names, tc.name), append(logs, recs), append(hbs, hb)
	}
	for i := range 2 { // two streams: the most 8 KiB allows
		readOne(t, s, readerA, names[i], 1, logs[i], hbs[i])
	}
	for seq := uint64(1); seq <= 4; seq++ {
		readOne(t, s, readerB, names[2], seq, logs[2], hbs[2])
	}
	if n := s.Stats().ReadAheadFull; n != 4 || len(s.ahead.table) != 2 || len(s.ahead.who) != 1 {
		t.Fatalf("%d READs without a stream (want 4), %d streams, %d requesters held", n, len(s.ahead.table), len(s.ahead.who))
	}
}

// TestReadAheadFallbackDuringClose: a READ that waited for a fill and then
// reads the store itself does so inside the read lock it holds, never a
// second one: with Close waiting for the lock, a nested read lock would
// wait behind Close and Close for it, for ever.
func TestReadAheadFallbackDuringClose(t *testing.T) {
	s, err := Open(t.TempDir(), Options{}) // no Close at cleanup: a deadlocked store would hang it
	if err != nil {
		t.Fatal(err)
	}
	tc := newTestCapsule(t, 27)
	if err := s.Create(t.Context(), tc.name, tc.meta); err != nil {
		t.Fatal(err)
	}
	recs, hb := writeRecs(tc.writer(), 8, 200)
	mustAppend(t, s, tc.name, recs, hb)
	readOne(t, s, readerA, tc.name, 1, recs, hb) // the stream, at 1
	st := s.ahead.table[streamKey{readerA, tc.name}]
	st.mu.Lock()
	st.fillLo, st.fillHi = 1, 8 // a fill in progress over [1, 8]
	st.mu.Unlock()
	read := make(chan error, 1)
	go func() { // waits for the fill, then misses behind its stream: ReadRaw's path
		read <- s.ReadRawFor(readerA, readerA, tc.name, 1, 1, func(uint64, []byte, bool) error { return nil })
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		// the READ holds the read lock and waits on the stream
		if !s.closeMu.TryLock() {
			break
		}
		s.closeMu.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("the READ never took the read lock")
		}
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	time.Sleep(50 * time.Millisecond) // Close waiting for the lock (if not yet, the test proves less, never fails wrongly)
	st.mu.Lock()
	st.fillLo, st.fillHi = 0, 0
	st.done.Broadcast()
	st.mu.Unlock()
	for _, ch := range []chan error{read, closed} {
		select {
		case err := <-ch:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the READ and Close wait for each other")
		}
	}
}

// TestReadAheadSmallRecords: a stream of small records keeps at most
// readAheadEntries of them (no READ walks a large map), and every READ
// returns its entry.
func TestReadAheadSmallRecords(t *testing.T) {
	s, _ := openReadAhead(t, Options{})
	tc := newTestCapsule(t, 28)
	if err := s.Create(t.Context(), tc.name, tc.meta); err != nil {
		t.Fatal(err)
	}
	recs, hb := writeRecs(tc.writer(), 3000, 40)
	mustAppend(t, s, tc.name, recs, hb)
	most := 0
	for seq := uint64(1); seq <= 3000; seq++ {
		readOne(t, s, readerA, tc.name, seq, recs, hb)
		if st := s.ahead.table[streamKey{readerA, tc.name}]; st != nil {
			st.mu.Lock()
			most = max(most, len(st.recs))
			st.mu.Unlock()
		}
	}
	if most > readAheadEntries || s.Stats().ReadAheadHits < 2900 {
		t.Fatalf("a stream kept up to %d entries (bound %d); %d READs answered from read-ahead", most, readAheadEntries, s.Stats().ReadAheadHits)
	}
}

// TestReadAheadIdleSwept: the records a reader left read ahead go back
// once it has been idle for ReadAheadIdle even when no READ comes after
// (an idle server holds no read-ahead), and Close stops the sweeper.
func TestReadAheadIdleSwept(t *testing.T) {
	s, _ := openReadAhead(t, Options{ReadAheadBytes: 16 << 10, ReadAheadIdle: 200 * time.Millisecond})
	tc := newTestCapsule(t, 23)
	if err := s.Create(t.Context(), tc.name, tc.meta); err != nil {
		t.Fatal(err)
	}
	recs, hb := writeRecs(tc.writer(), 32, 1000)
	mustAppend(t, s, tc.name, recs, hb)
	for seq := uint64(1); seq <= 4; seq++ {
		readOne(t, s, readerA, tc.name, seq, recs, hb)
	}
	s.bg.Wait() // the fill running off the READs
	if st := s.Stats(); st.ReadAheadBytes == 0 {
		t.Fatalf("nothing read ahead after 4 sequential READs: %+v", st)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().ReadAheadBytes != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := s.Stats(); st.ReadAheadBytes != 0 || st.ReadAheadIdled != 1 {
		t.Fatalf("after the reader stopped: %d bytes still read ahead, %d streams dropped idle; want 0 and 1",
			st.ReadAheadBytes, st.ReadAheadIdled)
	}
}
