package store

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/pdu"
)

// Read-ahead for sequential readers (docs/FILES.md §5, Session 10).
//
// A file reader asks for a file's chunk records one short READ at a time,
// several in flight. Read one by one, each READ opens a pebble iterator,
// seeks and loads one record's block — from disk when cold, and with no
// disk read-ahead: pebble opens sstables FADV_RANDOM and grows its own
// read-ahead only within one iterator, which a one-record READ never
// reaches. A stream — one requester reading one capsule — that moves
// forward instead reads the records ahead of it in one scan (pebble's
// read-ahead works across the scan) and keeps them, with their leaf hashes
// in the node cache (so no proof loads the record beside it), for the READs
// that follow. What a READ returns is unchanged: a stream's records are
// those the store held for the capsule incarnation (its state) and Merkle
// generation it was filled under, at seqnos the durable head covered; a
// READ checks its range against the durable head as before, and a stream
// filled under another state or generation (a capsule deleted and created
// again, a branch) is emptied before use. A restart starts with none.
//
// Bounded: the bytes kept per requester (ReadAheadBytes, over all its
// streams; a requester is the share its READs count in, Session 16: a
// proven identity over every name it reads from, or every requester that
// proved nothing together, see ReadRawFor), the streams per requester
// (ReadAheadStreams; the least
// recently used one goes), the bytes kept in all (ReadAheadTotal), the
// streams in all (one per 4 KiB of ReadAheadTotal: a READ of a new stream
// beyond it reads as ReadRaw does); a stream idle for ReadAheadIdle is
// dropped. Each bite is counted (Stats).

// readAhead is the store's table of streams.
type readAhead struct {
	perWho  int // bytes per requester
	streams int // streams per requester
	total   int // bytes in all
	all     int // streams in all
	idle    time.Duration

	mu      sync.Mutex
	table   map[streamKey]*stream
	who     map[pdu.Name]*requesterUse // by share
	bytes   int
	swept   time.Time
	now     func() time.Time
	counter readAheadCounters
}

type readAheadCounters struct {
	hits, fills, filled            atomic.Uint64
	byWho, byTotal, evicted, idled atomic.Uint64
	full                           atomic.Uint64
}

type streamKey struct{ who, c pdu.Name }

type requesterUse struct {
	streams []*stream // at most ReadAheadStreams
	bytes   int
}

// stream is one source name's sequential read of one capsule.
type stream struct {
	key streamKey
	// share is whose bytes and streams it counts in (ReadRawFor's share
	// when it was made: a name proven or dropped from the requester cache
	// meanwhile keeps its stream in the share it was made in until it is
	// dropped).
	share pdu.Name
	mu    sync.Mutex
	done  *sync.Cond // on mu: a fill ended
	// cs and gen: the capsule incarnation and Merkle generation the
	// records were read under.
	cs   *capsuleState
	gen  uint64
	recs map[uint64][]byte // read ahead, not yet served
	top  uint64            // highest seqno read into recs
	last uint64            // from of the previous READ (0: none yet)
	// fillLo..fillHi: the range a fill in progress is reading (fillHi 0: none).
	fillLo, fillHi uint64

	// bytes and dead are guarded by readAhead.mu.
	bytes int
	dead  bool
	used  time.Time
}

func newReadAhead(o Options) *readAhead {
	if o.ReadAheadBytes < 0 {
		return nil
	}
	return &readAhead{perWho: o.ReadAheadBytes, streams: o.ReadAheadStreams, total: o.ReadAheadTotal,
		all: max(o.ReadAheadTotal/readAheadStreamShare, 1), idle: o.ReadAheadIdle, table: map[streamKey]*stream{}, who: map[pdu.Name]*requesterUse{}, now: time.Now}
}

// readAheadStreamShare: one stream in all per this many bytes of
// ReadAheadTotal (16,384 streams at the default 64 MiB).
const readAheadStreamShare = 4 << 10

// stream returns the stream of k, made if new in share: a share at its
// ReadAheadStreams loses its least recently used one. Nil when the table
// holds as many streams as it may (counted).
func (ra *readAhead) stream(k streamKey, share pdu.Name) *stream {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	now := ra.now()
	if now.Sub(ra.swept) > ra.idle/4 {
		ra.sweepLocked(now)
	}
	if st := ra.table[k]; st != nil {
		st.used = now
		return st
	}
	u := ra.who[share]
	if u == nil {
		u = &requesterUse{}
		ra.who[share] = u
	}
	if len(u.streams) >= ra.streams {
		lru := u.streams[0]
		for _, st := range u.streams {
			if st.used.Before(lru.used) {
				lru = st
			}
		}
		ra.dropLocked(lru)
		ra.counter.evicted.Add(1)
		if v := ra.who[share]; v != nil {
			u = v
		} else {
			ra.who[share] = u
		}
	}
	if len(ra.table) >= ra.all {
		if len(u.streams) == 0 {
			delete(ra.who, share)
		}
		ra.counter.full.Add(1)
		return nil
	}
	st := &stream{key: k, share: share, recs: map[uint64][]byte{}, used: now}
	st.done = sync.NewCond(&st.mu)
	ra.table[k] = st
	u.streams = append(u.streams, st)
	return st
}

// sweepLocked drops the streams not read for ReadAheadIdle (ra.mu held).
func (ra *readAhead) sweepLocked(now time.Time) {
	ra.swept = now
	for _, st := range ra.table {
		if now.Sub(st.used) > ra.idle {
			ra.dropLocked(st)
			ra.counter.idled.Add(1)
		}
	}
}

// sweeper drops idle streams every ReadAheadIdle/4 until stop closes, so
// the bytes of readers that stopped go back even when no READ comes.
func (ra *readAhead) sweeper(stop <-chan struct{}) {
	t := time.NewTicker(max(ra.idle/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			ra.mu.Lock()
			ra.sweepLocked(ra.now())
			ra.mu.Unlock()
		}
	}
}

// dropLocked takes st out of the table and releases its bytes (ra.mu
// held). Its holder, if any, finds it dead and keeps nothing more.
func (ra *readAhead) dropLocked(st *stream) {
	if st.dead {
		return
	}
	st.dead = true
	delete(ra.table, st.key)
	u := ra.who[st.share]
	for i, o := range u.streams {
		if o == st {
			u.streams = append(u.streams[:i], u.streams[i+1:]...)
			break
		}
	}
	u.bytes -= st.bytes
	ra.bytes -= st.bytes
	st.bytes = 0
	if len(u.streams) == 0 {
		delete(ra.who, st.share)
	}
}

// room is how many bytes st may still add, and the counter of the bound
// that sets it.
func (ra *readAhead) room(st *stream) (int, *atomic.Uint64) {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	return ra.roomLocked(st)
}

func (ra *readAhead) roomLocked(st *stream) (int, *atomic.Uint64) {
	if st.dead {
		return 0, nil
	}
	u := ra.who[st.share]
	byWho, byTotal := ra.perWho-u.bytes, ra.total-ra.bytes
	if byTotal < byWho {
		return max(byTotal, 0), &ra.counter.byTotal
	}
	return max(byWho, 0), &ra.counter.byWho
}

// account adds n bytes (negative: released) to st's use; false when st was
// dropped or n is more than its room now (another stream of the requester
// filled meanwhile): its records are not kept.
func (ra *readAhead) account(st *stream, n int) bool {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if st.dead {
		return false
	}
	if room, bound := ra.roomLocked(st); n > room {
		bound.Add(1)
		return false
	}
	st.bytes += n
	ra.who[st.share].bytes += n
	ra.bytes += n
	return true
}

// held is the bytes st keeps.
func (ra *readAhead) held(st *stream) int {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	return st.bytes
}

// forget empties st.recs of every seqno below keep (st.mu held).
func (ra *readAhead) forget(st *stream, keep uint64) {
	n := 0
	for seq, w := range st.recs {
		if seq < keep {
			n += len(w)
			delete(st.recs, seq)
		}
	}
	if n > 0 {
		ra.account(st, -n)
	}
}

// ReadRawFor is ReadRaw for requester who (its source name: one stream per
// name and capsule) counted in share (the bounds per requester: its proven
// identity, or the pool of every requester that proved nothing): a short
// read (at most leafRun entries) of a stream that moves forward is served
// from the records read ahead for it, or reads ahead of itself. Every
// other read is ReadRaw's.
// The entries, errors and node cache effects are ReadRaw's. fn's owned
// says wire is the caller's to keep (a record read ahead: no copy needed);
// otherwise it is valid only during the call.
func (s *Store) ReadRawFor(who, share, c pdu.Name, from, to uint64, fn func(seqno uint64, wire []byte, owned bool) error) error {
	ra := s.ahead
	borrowed := func(seq uint64, wire []byte) error { return fn(seq, wire, false) }
	if ra == nil || to < from || to-from >= leafRun {
		return s.ReadRaw(c, from, to, borrowed)
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	cs, err := s.state(c)
	if err != nil {
		return err
	}
	if err := s.checkRange(c, from, to); err != nil {
		return err
	}
	gen := cs.gen.Load() // before any read: a branch after it empties the stream at its next use
	st := ra.stream(streamKey{who, c}, share)
	if st == nil { // as many streams as the table may hold
		return s.readRawLeaves(c, from, to, borrowed)
	}
	st.mu.Lock()
	for {
		// Records read under another capsule state (deleted and created
		// again) or Merkle generation (a branch) are never served.
		if st.cs != cs || st.gen != gen {
			ra.forget(st, ^uint64(0))
			st.cs, st.gen, st.top, st.last = cs, gen, 0, 0
		}
		if st.fillHi == 0 || from < st.fillLo || to > st.fillHi {
			break
		}
		st.done.Wait() // a fill in progress reads this range
	}
	hit := true
	for seq := from; seq <= to; seq++ {
		if _, ok := st.recs[seq]; !ok {
			hit = false
			break
		}
	}
	forward := st.last != 0 && from > st.last && from-st.last <= readAheadJump
	if from > st.last || !hit { // on; or a miss behind: the reader is here now
		st.last = from
	}
	if hit {
		wires := make([][]byte, 0, to-from+1)
		for seq := from; seq <= to; seq++ {
			wires = append(wires, st.recs[seq])
		}
		n := 0
		for seq := from; seq <= to; seq++ {
			n += len(st.recs[seq])
			delete(st.recs, seq)
		}
		ra.account(st, -n)
		if to > readAheadJump { // left behind by the reader
			ra.forget(st, to-readAheadJump)
		}
		ra.counter.hits.Add(1)
		// Keep half the window ahead: read on once less is left.
		// (Small records: at most readAheadEntries kept, so that no READ
		// walks a large map.)
		refill := st.fillHi == 0 && st.top < cs.durable.Load().Seqno && ra.held(st) < ra.perWho/2 && len(st.recs) < readAheadEntries/2
		if refill {
			// Reserved now: READs for what it reads wait for it
			// rather than read the store themselves.
			st.fillLo, st.fillHi = max(st.top, to)+1, cs.durable.Load().Seqno
			s.bg.Add(1) // under enter: Close waits for it before closing the engine
		}
		st.mu.Unlock()
		if refill {
			// Off this READ (its answer does not wait for the disk), and
			// whatever fn says: a caller that stops early (its page full)
			// must not leave the range reserved, nor Close waiting.
			defer func() { go s.refill(st, cs, gen) }()
		}
		for i, w := range wires {
			if err := fn(from+uint64(i), w, true); err != nil {
				return err
			}
		}
		return nil
	}
	if !forward || st.fillHi != 0 {
		st.mu.Unlock()
		return s.readRawLeaves(c, from, to, borrowed)
	}
	ra.forget(st, from)
	err = s.fill(st, cs, gen, from, from, to, borrowed)
	st.mu.Unlock()
	return err
}

// refill reads on ahead of st from the range reserved for it (a fill with
// nothing for a READ), unless st moved on meanwhile.
func (s *Store) refill(st *stream, cs *capsuleState, gen uint64) {
	defer s.bg.Done()
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.cs != cs || st.gen != gen {
		st.fillLo, st.fillHi = 0, 0
		st.done.Broadcast()
		return
	}
	_ = s.fill(st, cs, gen, st.fillLo, 0, 0, nil)
}

// readAheadJump: a READ starting at most this many entries after the
// previous one's start continues its stream (a reader with several READs
// in flight sends them in order, they may be served out of it).
const readAheadJump = 64

// readAheadEntries bounds the entries a stream keeps.
const readAheadEntries = 1024

// fill (st.mu held, released during the scan) reads entries from lo on in
// one scan, as far as the durable head and st's room allow, and keeps them
// in st; entries [from, to] (to 0: none) go to fn instead. A read for fn
// fails as ReadRaw's would.
func (s *Store) fill(st *stream, cs *capsuleState, gen, lo, from, to uint64, fn func(uint64, []byte) error) error {
	ra := s.ahead
	c := cs.info.Name
	head := cs.durable.Load().Seqno
	room, bound := ra.room(st)
	keep := readAheadEntries - len(st.recs) // entries it may keep (st.mu held)
	if lo > head || (room <= 0 && to == 0) || (keep <= 0 && to == 0) {
		if lo <= head && bound != nil {
			bound.Add(1)
		}
		st.fillLo, st.fillHi = 0, 0 // a reservation (refill) ends
		st.done.Broadcast()
		return nil
	}
	if keep <= 0 {
		room = 0 // only the READ's own entries
	}
	st.fillLo, st.fillHi = lo, head
	st.mu.Unlock()
	type kept struct {
		seq  uint64
		wire []byte
	}
	var got []kept
	var ferr error
	full := false // the scan stopped at room
	used, next := 0, lo
	defer func() { s.entriesRead.Add(next - lo) }()
	err := s.eng.scan(key(tEntry, c, lo), key(tEntry, c, head+1), func(k, v []byte) bool {
		seq := u64(k[33:])
		if seq != next {
			return false // a missing entry: the read for fn says so below
		}
		next++
		if e, err := capsule.UnmarshalRecord(v); err == nil {
			s.nodes.Add(nodeCacheKey{c, gen, 0, seq - 1}, capsule.LeafHash(e.Hash()))
		}
		if to != 0 && seq <= to {
			if ferr = fn(seq, v); ferr != nil {
				return false
			}
			// Stop at to when nothing is to be kept: going on would
			// load the next entry's block (readRaw).
			full = seq == to && len(v) > room
			return !full
		}
		if used+len(v) > room {
			full = true
			return false
		}
		used += len(v)
		got = append(got, kept{seq, append([]byte(nil), v...)})
		// Stop before an entry like this one would not fit, and at
		// readAheadEntries (small records: bounded hashing per fill).
		full = used+len(v) > room
		return !full && len(got) < keep
	})
	st.mu.Lock()
	st.fillLo, st.fillHi = 0, 0
	st.done.Broadcast()
	ra.counter.fills.Add(1)
	if full && next <= head && bound != nil {
		bound.Add(1) // the fill stopped short of the head at the bound
	}
	if to != 0 && err == nil && ferr == nil && next <= to {
		ferr = errEntryMissing(c, next)
	}
	if err != nil || ferr != nil {
		if err != nil {
			return err
		}
		return ferr
	}
	if st.cs != cs || st.gen != gen || len(got) == 0 || !ra.account(st, used) {
		return nil
	}
	for _, g := range got {
		st.recs[g.seq] = g.wire
		st.top = max(st.top, g.seq)
	}
	ra.counter.filled.Add(uint64(len(got)))
	return nil
}
