package store

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/pdu"
)

// Append stores a batch of records of capsule c with the heartbeat that
// covers them, atomically (the whole batch and heartbeat, or nothing) and
// durably: it returns nil only after the fsync that covers the batch.
//
// Everything is verified first: the heartbeat signature with the capsule's
// writer key, each record's data hash and size, the hash chain from the
// stored head, that every skipped seqno is a hole the heartbeat declares,
// and that the result has the heartbeat's Merkle root. The signature check,
// the costly part, runs on the caller's goroutine, so concurrent appenders
// verify in parallel; the chain and root checks run under the capsule's
// lock, in call order.
//
// A retry of a batch already held, also of an older one after later batches
// landed, is acknowledged again. A heartbeat of an older epoch, or older than
// the head's at the same seqno, fails with capsule.ErrStale. A batch that rewrites held
// entries is either an abandoned branch the writer declared with a new epoch
// (the old entries are kept aside, see Abandoned) or equivocation, which
// fails with a *capsule.EquivocationError whose evidence is stored.
func (s *Store) Append(ctx context.Context, c pdu.Name, recs []capsule.Record, hb *capsule.Heartbeat) error {
	return s.append(ctx, c, recs, hb, judging)
}

// AppendExtending is Append for a writer's own batches: a batch must extend
// the held log (or repeat what is held). One that would rewrite held
// entries, whether as equivocation or as a new-epoch branch, or that comes
// from an older epoch than the head's, fails with ErrWriterConflict and
// changes nothing (no evidence is stored): it is a second writer with the
// same key, and the first one to extend the log keeps it. Replicas
// exchanging a writer's batches (anti-entropy) use AppendFromPeer, and
// Append once the replicas have found a fork genuine.
func (s *Store) AppendExtending(ctx context.Context, c pdu.Name, recs []capsule.Record, hb *capsule.Heartbeat) error {
	return s.append(ctx, c, recs, hb, fromWriter)
}

// AppendFromPeer is Append for a segment another replica sent
// (anti-entropy): retries are acknowledged and a branch the writer
// declared with a newer epoch is applied as by Append, but a segment of the
// same epoch that rewrites held entries fails with ErrDiverged and changes
// nothing, no evidence stored. Which line stands is not this replica's to
// judge from one peer's segment: two writers with one key leave the
// loser's batches on a minority, which adopts the majority's line, and
// only when no line has a majority is the fork genuine (then Append
// stores the evidence).
func (s *Store) AppendFromPeer(ctx context.Context, c pdu.Name, recs []capsule.Record, hb *capsule.Heartbeat) error {
	return s.append(ctx, c, recs, hb, fromPeer)
}

// appendMode is who offers a batch, which decides what a batch that
// rewrites held entries means.
type appendMode uint8

const (
	judging    appendMode = iota // Append: a declared branch, or equivocation (evidence stored)
	fromWriter                   // AppendExtending: another writer's batch (ErrWriterConflict)
	fromPeer                     // AppendFromPeer: a declared branch, or another line (ErrDiverged)
)

func (s *Store) append(ctx context.Context, c pdu.Name, recs []capsule.Record, hb *capsule.Heartbeat, mode appendMode) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	cs, err := s.state(c)
	if err != nil {
		return fmt.Errorf("append: %w", err)
	}
	w, err := s.queue(ctx, cs, recs, hb, mode)
	if err != nil {
		return err
	}
	return s.settle(ctx, c, w)
}

// Segment is one batch of a capsule's records with the heartbeat that
// covers them, as a peer replica sends it (AppendSegments).
type Segment struct {
	Records   []capsule.Record
	Heartbeat *capsule.Heartbeat
}

// AppendSegments stores segs of capsule c, segments another replica sent,
// in order, each exactly as AppendFromPeer would (verified the same way,
// the same ErrDiverged for one that rewrites held entries), but queues each one's writes as soon as it is checked and waits
// for durability once at the end, so the segments share group commits
// (fsyncs) instead of paying one each. It returns how many segments are
// stored, durably when err is nil; when err is not nil it is the error of
// segment n, and the n segments before it are durable.
func (s *Store) AppendSegments(ctx context.Context, c pdu.Name, segs []Segment) (int, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	cs, err := s.state(c)
	if err != nil {
		return 0, fmt.Errorf("append: %w", err)
	}
	var last *pendingWrite
	for i, seg := range segs {
		w, err := s.queue(ctx, cs, seg.Records, seg.Heartbeat, fromPeer)
		if err != nil {
			if serr := s.settle(ctx, c, last); serr != nil {
				return 0, serr
			}
			return i, err
		}
		if w != nil {
			last = w
		}
	}
	return len(segs), s.settle(ctx, c, last)
}

// settle waits until w is durable, and with it everything queued before it:
// the committer commits in queue order and a failed commit fails every
// later write. A nil w is nothing to wait for.
func (s *Store) settle(ctx context.Context, c pdu.Name, w *pendingWrite) error {
	if w == nil {
		return nil
	}
	if err := w.wait(ctx); err != nil {
		return fmt.Errorf("append to %s: %w", c, err)
	}
	return nil
}

// queue checks a batch, applies it to the capsule's head and queues its
// writes, returning the write to wait for (nil when nothing new).
func (s *Store) queue(ctx context.Context, cs *capsuleState, recs []capsule.Record, hb *capsule.Heartbeat, mode appendMode) (*pendingWrite, error) {
	if err := s.commit.room(); err != nil {
		return nil, err // refused before it changes anything
	}
	cs.mu.Lock()
	cs.checking++
	cs.mu.Unlock()
	b, err := capsule.CheckBatch(cs.info, recs, hb, s.opts.MaxData)
	cs.mu.Lock()
	cs.checking--
	var w *pendingWrite
	if err == nil {
		// A writer may pipeline appends that arrive or finish their checks
		// out of order: a batch that starts beyond the head waits while
		// batches of this capsule are being checked, and for up to the
		// reorder window, since one of them may fill the gap. A real gap
		// fails after that.
		if startsBeyond(b, cs.head.Seqno) {
			s.waitForPredecessor(ctx, cs, b)
		}
		w, err = s.applyLocked(ctx, cs, b, mode)
	}
	cs.moved.Broadcast()
	cs.mu.Unlock()
	return w, err
}

// applyLocked decides what b means against the capsule's head and queues
// its writes. It returns the write to wait for (nil when nothing new).
func (s *Store) applyLocked(ctx context.Context, cs *capsuleState, b *capsule.Batch, mode appendMode) (*pendingWrite, error) {
	head, hb := &cs.head, b.Heartbeat
	if head.Heartbeat != nil && hb.Seqno == head.Seqno && len(b.Records) == 0 && hb.Equal(head.Heartbeat) {
		return cs.last, nil // a retry of the newest heartbeat: ack once it is durable
	}
	overlap := (len(b.Records) > 0 && b.Records[0].Seqno <= head.Seqno) ||
		hb.Seqno < head.Seqno || (hb.Seqno == head.Seqno && hb.Root != head.Tree.Root()) ||
		(len(hb.Holes) > 0 && hb.Holes[0] <= head.Seqno)
	if overlap {
		return s.resolveOverlap(ctx, cs, b, mode)
	}
	if mode == fromWriter && head.Heartbeat != nil {
		// A writer's batch that starts right after the head but does not
		// chain to it, or comes from an older epoch, is another writer's.
		if hb.Epoch < head.Heartbeat.Epoch {
			return nil, fmt.Errorf("append to %s: %w: heartbeat of epoch %d, the head is epoch %d (a writer restarted since)",
				cs.info.Name, ErrWriterConflict, hb.Epoch, head.Heartbeat.Epoch)
		}
		if !startsBeyond(b, head.Seqno) && foreignBase(cs.info.Name, b, head.Seqno+1, head.Hash) {
			return nil, fmt.Errorf("append to %s: %w: the batch at %d does not chain to the held entry %d",
				cs.info.Name, ErrWriterConflict, head.Seqno+1, head.Seqno)
		}
	}
	return s.extend(cs, head, b, nil)
}

// extend applies b on top of base (the head, or a fork point) and queues
// the writes; pre holds writes that must precede them (a branch's
// rewrites). The capsule's head becomes the result.
func (s *Store) extend(cs *capsuleState, base *capsule.Head, b *capsule.Batch, pre *writeBatch) (*pendingWrite, error) {
	c := cs.info.Name
	if cs.deleted {
		return nil, fmt.Errorf("append to %s: %w (deleted meanwhile)", c, ErrUnknownCapsule)
	}
	var nodes []nodeRec
	a, err := base.Apply(b, func(level uint8, index uint64, h capsule.Hash) {
		nodes = append(nodes, nodeRec{level, index, h})
	})
	if err != nil {
		return nil, fmt.Errorf("append to %s: %w", c, err)
	}
	wb := pre
	if wb == nil {
		wb = &writeBatch{}
	}
	size := 0
	for i := range a.Entries {
		size += a.Entries[i].EncodedLen() + 8
	}
	// The writes go in key order, table by table (heartbeat, nodes,
	// entries, hashes): pebble inserts a batch into its memtable's skiplist
	// one key after the other, and a key just after the previous one is
	// found from where that one went, while a key elsewhere costs a search
	// from the top of the list (cache misses on every level). Interleaving
	// an entry with its random hash key made every insert a full search:
	// ~30 % of a replica's CPU at 64 MiB memtables.
	wb.set(key(tHeartbeat, c, b.Heartbeat.Seqno), b.Heartbeat.Marshal())
	slices.SortFunc(nodes, func(x, y nodeRec) int { return cmp.Compare(x.pos(), y.pos()) })
	for _, n := range nodes {
		h := n.h
		wb.set(nodePosKey(c, n.pos()), h[:])
	}
	buf := make([]byte, 0, size)
	hashes := make([]hashRec, len(a.Entries))
	for i := range a.Entries {
		e := &a.Entries[i]
		start := len(buf)
		buf = e.Append(buf)
		wb.set(key(tEntry, c, e.Seqno), buf[start:len(buf):len(buf)])
		start = len(buf)
		buf = binary.BigEndian.AppendUint64(buf, e.Seqno)
		hashes[i] = hashRec{a.Hashes[i], buf[start:len(buf):len(buf)]}
	}
	slices.SortFunc(hashes, func(x, y hashRec) int { return bytes.Compare(x.h[:], y.h[:]) })
	for _, h := range hashes {
		wb.set(hashKey(c, h.h), h.seqno)
	}
	// The byte count grows by the new entries; a branch's entries moved
	// aside stay stored, so nothing is taken off.
	stored := cs.bytes.Load() + uint64(size-8*len(a.Entries))
	wb.set(key(tBytes, c), binary.BigEndian.AppendUint64(nil, stored))
	newHead := a.Head
	w, err := s.commit.enqueue(wb, func() {
		if pre != nil {
			// A branch rewrote Merkle nodes: from now on readers key the
			// node cache by a new generation, so no node of the abandoned
			// line is served from it.
			cs.gen.Store(nodeGens.Add(1))
		}
		d := newHead
		cs.durable.Store(&d)
	})
	if err != nil {
		return nil, fmt.Errorf("append to %s: %w", c, err)
	}
	cs.head, cs.last = newHead, w
	cs.bytes.Store(stored)
	return w, nil
}

// waitForPredecessor waits (cs.mu held) until b no longer starts beyond
// the head, or nothing is being checked and the reorder window has passed,
// or ctx ends.
func (s *Store) waitForPredecessor(ctx context.Context, cs *capsuleState, b *capsule.Batch) {
	expired := false
	t := time.AfterFunc(s.opts.ReorderWindow, func() {
		cs.mu.Lock()
		expired = true
		cs.moved.Broadcast()
		cs.mu.Unlock()
	})
	stop := context.AfterFunc(ctx, func() {
		cs.mu.Lock()
		cs.moved.Broadcast()
		cs.mu.Unlock()
	})
	for startsBeyond(b, cs.head.Seqno) && (cs.checking > 0 || !expired) && ctx.Err() == nil {
		cs.moved.Wait()
	}
	t.Stop()
	stop()
}

// startsBeyond reports whether b's first seqno leaves a gap after head.
func startsBeyond(b *capsule.Batch, head uint64) bool {
	first := b.Heartbeat.Seqno + 1
	if len(b.Records) > 0 {
		first = b.Records[0].Seqno
	}
	if h := b.Heartbeat.Holes; len(h) > 0 && h[0] < first {
		first = h[0]
	}
	return first > head+1
}

type nodeRec struct {
	level uint8
	index uint64
	h     capsule.Hash
}

// pos is the node's position in key order (nodeKey).
func (n nodeRec) pos() uint64 { return nodePos(n.level, n.index) }

type hashRec struct {
	h     capsule.Hash
	seqno []byte // big-endian, the value of the hash key
}

// foreignBase reports whether b, a writer's batch whose first entry is
// start, is a log of its own that extends a predecessor other than prev
// (the held entry start-1): its first record does not chain to prev through
// the batch's leading holes, while every later record chains to the entry
// before it in the batch. Such a batch is another writer's (same key, other
// line), not a malformed one. A batch whose chain breaks inside itself, or
// that chains to prev, or has no record, is not: whatever fails in it is
// its own fault. Its root cannot be checked here, since it covers the other
// line's entries before start.
func foreignBase(c pdu.Name, b *capsule.Batch, start uint64, prev capsule.Hash) bool {
	hb := b.Heartbeat
	if len(b.Records) == 0 || b.Records[0].Seqno < start {
		return false
	}
	holes := hb.Holes
	for len(holes) > 0 && holes[0] < start {
		holes = holes[1:]
	}
	ri, hi := 0, 0
	p := prev // the held chain until the first record, then the batch's own
	for s := start; s <= hb.Seqno; s++ {
		switch {
		case ri < len(b.Records) && b.Records[ri].Seqno == s:
			if r := &b.Records[ri]; ri == 0 && r.Prev == p {
				return false // chains to what is held
			} else if ri > 0 && r.Prev != p {
				return false // broken inside the batch
			}
			p = b.Hashes[ri]
			ri++
		case hi < len(holes) && holes[hi] == s:
			p = capsule.NewHole(c, s, p).Hash()
			hi++
		default:
			return false // a gap: the batch's own fault
		}
	}
	return true
}
