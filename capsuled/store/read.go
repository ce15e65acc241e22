package store

import (
	"errors"
	"fmt"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/pdu"
)

// Readers see only what an fsync has covered: the durable head.

// Head returns the capsule's durable head (seqno, head hash, tree
// frontier, newest heartbeat).
func (s *Store) Head(c pdu.Name) (capsule.Head, error) {
	cs, err := s.state(c)
	if err != nil {
		return capsule.Head{}, err
	}
	h := *cs.durable.Load()
	h.Tree = h.Tree.Clone() // the caller may append to it
	return h, nil
}

// Heartbeat returns the newest durable heartbeat.
func (s *Store) Heartbeat(c pdu.Name) (*capsule.Heartbeat, error) {
	h, err := s.Head(c)
	if err != nil {
		return nil, err
	}
	if h.Heartbeat == nil {
		return nil, fmt.Errorf("heartbeat of %s: %w", c, ErrNotFound)
	}
	return h.Heartbeat, nil
}

// HeartbeatAt returns the heartbeat held for exactly seqno entries.
func (s *Store) HeartbeatAt(c pdu.Name, seqno uint64) (*capsule.Heartbeat, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	cs, err := s.state(c)
	if err != nil {
		return nil, err
	}
	if seqno > cs.durable.Load().Seqno {
		return nil, fmt.Errorf("heartbeat %d of %s: %w", seqno, c, ErrNotFound)
	}
	v, err := s.eng.get(key(tHeartbeat, c, seqno))
	if errors.Is(err, errNotFound) {
		return nil, fmt.Errorf("heartbeat %d of %s: %w", seqno, c, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("heartbeat %d of %s: %w", seqno, c, err)
	}
	return capsule.UnmarshalHeartbeat(v)
}

// HeartbeatsRaw calls fn, in seqno order, for each heartbeat held at a
// seqno in [from, to] (to capped at the durable head), with its wire form,
// valid only during the call, until fn returns false. One scan, where
// HeartbeatAt is one lookup per seqno.
func (s *Store) HeartbeatsRaw(c pdu.Name, from, to uint64, fn func(seqno uint64, raw []byte) bool) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	cs, err := s.state(c)
	if err != nil {
		return err
	}
	to = min(to, cs.durable.Load().Seqno)
	if from == 0 || from > to {
		return nil
	}
	n := uint64(0)
	err = s.eng.scan(key(tHeartbeat, c, from), key(tHeartbeat, c, to+1), func(k, v []byte) bool {
		n++
		return fn(u64(k[33:]), v)
	})
	s.heartbeatsRead.Add(n)
	if err != nil {
		return fmt.Errorf("heartbeats of %s [%d, %d]: %w", c, from, to, err)
	}
	return nil
}

// checkRange checks 1 <= from <= to <= durable head.
func (s *Store) checkRange(c pdu.Name, from, to uint64) error {
	cs, err := s.state(c)
	if err != nil {
		return err
	}
	if head := cs.durable.Load().Seqno; from == 0 || from > to || to > head {
		return fmt.Errorf("read %s [%d, %d]: %w (head %d)", c, from, to, ErrOutOfRange, head)
	}
	return nil
}

// ReadRaw calls fn with the wire form of each entry in [from, to] in order
// (what a server sends as is); wire is valid only during the call.
//
// A read of at most leafRun entries also keeps their leaf hashes in the
// node cache: the inclusion proof of a one-record READ needs the hash of
// the entry beside it, which the READ for that entry (a file reader asks
// for each chunk record in turn) has just read — without the cache the
// proof loads that whole record again, often from disk.
func (s *Store) ReadRaw(c pdu.Name, from, to uint64, fn func(seqno uint64, wire []byte) error) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return s.readRawLeaves(c, from, to, fn)
}

// readRawLeaves is ReadRaw inside enter (never nested: a second read
// lock waits behind a pending Close, which waits for the first).
func (s *Store) readRawLeaves(c pdu.Name, from, to uint64, fn func(seqno uint64, wire []byte) error) error {
	if to < from || to-from >= leafRun {
		return s.readRaw(c, from, to, fn)
	}
	cs, err := s.state(c)
	if err != nil {
		return err
	}
	gen := cs.gen.Load() // before the read: a branch after it keys the entries read to the old tree
	return s.readRaw(c, from, to, func(seq uint64, wire []byte) error {
		if e, err := capsule.UnmarshalRecord(wire); err == nil {
			s.nodes.Add(nodeCacheKey{c, gen, 0, seq - 1}, capsule.LeafHash(e.Hash()))
		}
		return fn(seq, wire)
	})
}

// leafRun is the longest read whose entries' leaf hashes ReadRaw keeps.
const leafRun = 4

func (s *Store) readRaw(c pdu.Name, from, to uint64, fn func(seqno uint64, wire []byte) error) error {
	if err := s.checkRange(c, from, to); err != nil {
		return err
	}
	var ferr error
	next := from
	defer func() { s.entriesRead.Add(next - from) }()
	err := s.eng.scan(key(tEntry, c, from), key(tEntry, c, to+1), func(k, v []byte) bool {
		seq := u64(k[33:])
		if seq != next {
			ferr = errEntryMissing(c, next)
			return false
		}
		next++
		ferr = fn(seq, v)
		// Stop at to: going on would make the engine load the block
		// after it (a whole record's worth from disk, for a one-record
		// READ) only to find the range over.
		return ferr == nil && seq < to
	})
	if err = errors.Join(err, ferr); err != nil {
		return err
	}
	if next != to+1 {
		return errEntryMissing(c, next)
	}
	return nil
}

func errEntryMissing(c pdu.Name, seq uint64) error {
	return fmt.Errorf("read %s: entry %d missing from the store", c, seq)
}

// Read returns the entries (records and holes) in [from, to].
func (s *Store) Read(c pdu.Name, from, to uint64) ([]capsule.Record, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	if err := s.checkRange(c, from, to); err != nil {
		return nil, err
	}
	if n := to - from + 1; n > MaxRead {
		return nil, fmt.Errorf("read %s: %w: %d entries in one read (max %d)", c, ErrOutOfRange, n, MaxRead)
	}
	out := make([]capsule.Record, 0, to-from+1)
	var arena []byte // the records' bytes, copied out of the engine in chunks
	err := s.readRaw(c, from, to, func(seq uint64, wire []byte) error {
		if cap(arena)-len(arena) < len(wire) {
			arena = make([]byte, 0, max(64<<10, len(wire)))
		}
		arena = append(arena, wire...)
		r, err := capsule.UnmarshalRecord(arena[len(arena)-len(wire) : len(arena) : len(arena)])
		if err != nil {
			return fmt.Errorf("read %s entry %d: %w", c, seq, err)
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// MaxRead bounds the entries one Read returns.
const MaxRead = 1 << 16

// entry reads one stored entry (durable or not).
func (s *Store) entry(c pdu.Name, seqno uint64) (capsule.Record, error) {
	s.entriesRead.Add(1)
	v, err := s.eng.get(key(tEntry, c, seqno))
	if errors.Is(err, errNotFound) {
		return capsule.Record{}, fmt.Errorf("entry %d of %s: %w", seqno, c, ErrNotFound)
	}
	if err != nil {
		return capsule.Record{}, fmt.Errorf("entry %d of %s: %w", seqno, c, err)
	}
	return capsule.UnmarshalRecord(v)
}

// entryHash is the hash of stored entry seqno (zero for seqno 0).
func (s *Store) entryHash(c pdu.Name, seqno uint64) (capsule.Hash, error) {
	if seqno == 0 {
		return capsule.Hash{}, nil
	}
	e, err := s.entry(c, seqno)
	if err != nil {
		return capsule.Hash{}, err
	}
	return e.Hash(), nil
}

// ReadByHash returns the entry whose hash is h.
func (s *Store) ReadByHash(c pdu.Name, h capsule.Hash) (capsule.Record, error) {
	if err := s.enter(); err != nil {
		return capsule.Record{}, err
	}
	defer s.leave()
	cs, err := s.state(c)
	if err != nil {
		return capsule.Record{}, err
	}
	v, err := s.eng.get(hashKey(c, h))
	if errors.Is(err, errNotFound) {
		return capsule.Record{}, fmt.Errorf("entry %s of %s: %w", h, c, ErrNotFound)
	}
	if err != nil || len(v) != 8 {
		return capsule.Record{}, fmt.Errorf("entry %s of %s: bad index: %v", h, c, err)
	}
	seq := u64(v)
	if seq > cs.durable.Load().Seqno {
		return capsule.Record{}, fmt.Errorf("entry %s of %s: %w", h, c, ErrNotFound)
	}
	e, err := s.entry(c, seq)
	if err != nil {
		return capsule.Record{}, err
	}
	if e.Hash() != h {
		return capsule.Record{}, fmt.Errorf("entry %s of %s: %w", h, c, ErrNotFound)
	}
	return e, nil
}

// ReadByTime returns the seqno of the first data record whose time is at
// or after t (unix nanoseconds). Record times never go backwards, so this
// is a binary search: O(log n) reads.
func (s *Store) ReadByTime(c pdu.Name, t int64) (uint64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	cs, err := s.state(c)
	if err != nil {
		return 0, err
	}
	head := cs.durable.Load().Seqno
	// next finds the first data record at or after seq (ok false if none).
	next := func(seq uint64) (uint64, int64, bool, error) {
		for ; seq <= head; seq++ {
			e, err := s.entry(c, seq)
			if err != nil {
				return 0, 0, false, err
			}
			if !e.Hole {
				return seq, e.Time, true, nil
			}
		}
		return 0, 0, false, nil
	}
	// P(s) = "the first data record at or after s has time >= t, or there
	// is none" is monotone in s: find the smallest s where it holds.
	lo, hi := uint64(1), head+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		_, tm, ok, err := next(mid)
		if err != nil {
			return 0, fmt.Errorf("read %s by time: %w", c, err)
		}
		if !ok || tm >= t {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	seq, _, ok, err := next(lo)
	if err != nil {
		return 0, fmt.Errorf("read %s by time: %w", c, err)
	}
	if !ok {
		return 0, fmt.Errorf("read %s by time: %w: nothing at or after %d", c, ErrNotFound, t)
	}
	return seq, nil
}
