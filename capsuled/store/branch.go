package store

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

// resolveOverlap handles a batch or heartbeat that reaches at or below the
// head: a retry, also of an older batch whose entries are held as it says
// (acknowledged), a heartbeat of an older epoch (capsule.ErrStale), an abandoned
// branch the writer declared with a new epoch (rewritten, old entries kept
// aside), or equivocation (refused, evidence stored).
//
// From a writer's APPEND (fromWriter), anything but a retry, a replay or an
// extension fails with ErrWriterConflict instead, and nothing is stored;
// from a peer's segment (fromPeer), what would be equivocation fails with
// ErrDiverged, and nothing is stored.
func (s *Store) resolveOverlap(ctx context.Context, cs *capsuleState, b *capsule.Batch, mode appendMode) (*pendingWrite, error) {
	c, hb := cs.info.Name, b.Heartbeat
	// Compare against the disk: let queued writes land first.
	if cs.last != nil {
		if err := cs.last.wait(ctx); err != nil {
			return nil, fmt.Errorf("append to %s: %w", c, err)
		}
	}
	head := &cs.head
	strict := mode == fromWriter
	conflict := func(at uint64) error {
		return fmt.Errorf("append to %s: %w: the batch (epoch %d) rewrites seqno %d of the held log (head %d, epoch %d)",
			c, ErrWriterConflict, hb.Epoch, at, head.Seqno, head.Heartbeat.Epoch)
	}
	diverged := func(at uint64) error {
		return fmt.Errorf("append to %s: %w: the segment (epoch %d) rewrites seqno %d of the held log (head %d, epoch %d)",
			c, ErrDiverged, hb.Epoch, at, head.Seqno, head.Heartbeat.Epoch)
	}
	if strict && head.Heartbeat != nil && hb.Epoch < head.Heartbeat.Epoch {
		return nil, fmt.Errorf("append to %s: %w: heartbeat of epoch %d, the head is epoch %d (a writer restarted since)",
			c, ErrWriterConflict, hb.Epoch, head.Heartbeat.Epoch)
	}
	if head.Heartbeat != nil && hb.Epoch < head.Heartbeat.Epoch {
		return nil, fmt.Errorf("append to %s: heartbeat %d: %w: epoch %d < held epoch %d", c, hb.Seqno, capsule.ErrStale, hb.Epoch, head.Heartbeat.Epoch)
	}
	// The batch's first seqno: its first record or declared hole.
	start := hb.Seqno + 1
	if len(b.Records) > 0 {
		start = b.Records[0].Seqno
	}
	if len(hb.Holes) > 0 && hb.Holes[0] < start {
		start = hb.Holes[0]
	}
	// Find the first seqno where the batch and the store disagree.
	prev, err := s.entryHash(c, start-1)
	if err != nil && start-1 <= head.Seqno {
		return nil, fmt.Errorf("append to %s: %w", c, err)
	}
	prev0 := prev // the held entry before the batch's first
	var diff uint64
	ri, hi := 0, 0
	for seq := start; seq <= min(head.Seqno, hb.Seqno); seq++ {
		var in capsule.Hash
		switch {
		case ri < len(b.Records) && b.Records[ri].Seqno == seq:
			in = b.Hashes[ri]
			ri++
		case hi < len(hb.Holes) && hb.Holes[hi] == seq:
			in = capsule.NewHole(c, seq, prev).Hash()
			hi++
		default:
			return nil, fmt.Errorf("append to %s: seqno %d: %w", c, seq, capsule.ErrGap)
		}
		held, err := s.entryHash(c, seq)
		if err != nil {
			return nil, fmt.Errorf("append to %s: %w", c, err)
		}
		if held != in {
			diff = seq
			break
		}
		prev = in
	}

	if diff == 0 && hb.Seqno > head.Seqno {
		// A retry that also extends: drop what is held, apply the rest.
		tail := &capsule.Batch{Records: b.Records[ri:], Hashes: b.Hashes[ri:], Heartbeat: hb, Resumed: true}
		return s.extend(cs, head, tail, nil)
	}
	if diff == 0 {
		root, err := capsule.RootAt(s.nodeSource(cs), hb.Seqno)
		if err != nil {
			return nil, fmt.Errorf("append to %s: %w", c, err)
		}
		switch {
		case root == hb.Root && hb.Seqno == head.Seqno:
			// A fresher heartbeat over the same log.
			return s.extend(cs, head, &capsule.Batch{Heartbeat: hb, Resumed: true}, nil)
		case root == hb.Root:
			// An older batch re-sent (its acknowledgement was lost or
			// late, and later batches landed meanwhile): every entry it
			// names is held as it says, and the tree at its seqno has its
			// root. Held durably (the queued writes landed above), so
			// acknowledged again; nothing changes.
			return nil, nil
		case strict:
			return nil, conflict(hb.Seqno)
		case capsule.IsBranch(head.Heartbeat, hb, hb.Seqno):
			return nil, fmt.Errorf("append to %s: branch heartbeat %d (epoch %d): %w: send its entries from the fork point", c, hb.Seqno, hb.Epoch, capsule.ErrGap)
		}
		// A signed heartbeat for a different log of hb.Seqno entries.
		if mode == fromPeer {
			return nil, diverged(hb.Seqno)
		}
		ev, err := capsule.NewEvidence(head.Heartbeat, hb, hb.Seqno, s.nodeSource(cs), nil)
		if err != nil {
			return nil, fmt.Errorf("append to %s: %w", c, err)
		}
		return nil, s.equivocation(ctx, cs, ev)
	}

	// The logs differ from seqno diff on. Check the batch as a log of its
	// own from the common prefix (a batch that is not one is malformed),
	// then judge; a writer's batch stops there.
	fork, err := s.headAt(cs, diff-1)
	if err != nil {
		return nil, fmt.Errorf("append to %s: %w", c, err)
	}
	k := slices.IndexFunc(b.Records, func(r capsule.Record) bool { return r.Seqno >= diff })
	if k < 0 {
		k = len(b.Records)
	}
	tail := &capsule.Batch{Records: b.Records[k:], Hashes: b.Hashes[k:], Heartbeat: hb, Resumed: true}
	probe, err := fork.Apply(tail, nil)
	if err != nil {
		if strict && diff == start && foreignBase(c, b, start, prev0) {
			// The batch differs from its first entry on because it extends
			// another line's entry start-1 (it holds together on its own):
			// another writer's, like one that chains to the held log.
			return nil, conflict(diff)
		}
		return nil, fmt.Errorf("append to %s: %w", c, err)
	}
	if strict {
		// A valid log of its own that is not ours: another writer's.
		return nil, conflict(diff)
	}
	if !capsule.IsBranch(head.Heartbeat, hb, diff) {
		if mode == fromPeer {
			return nil, diverged(diff)
		}
		ev, err := capsule.NewEvidence(head.Heartbeat, hb, diff, s.nodeSource(cs),
			&capsule.Overlay{Base: s.nodeSource(cs), Prefix: diff - 1, Leaves: probe.Hashes})
		if err != nil {
			return nil, fmt.Errorf("append to %s: %w", c, err)
		}
		return nil, s.equivocation(ctx, cs, ev)
	}
	pre, err := s.abandon(cs, diff)
	if err != nil {
		return nil, fmt.Errorf("append to %s: %w", c, err)
	}
	s.log.Info("abandoned branch", logging.Capsule(c), logging.Seqno(diff),
		logging.Reason(fmt.Sprintf("epoch %d based at %d replaces entries %d..%d of epoch %d",
			hb.Epoch, hb.Base, diff, head.Seqno, head.Heartbeat.Epoch)))
	return s.extend(cs, fork, tail, pre)
}

// headAt rebuilds the head of the stored log's first n entries.
func (s *Store) headAt(cs *capsuleState, n uint64) (*capsule.Head, error) {
	c := cs.info.Name
	t, err := capsule.LoadTree(s.nodeSource(cs), n)
	if err != nil {
		return nil, err
	}
	h, err := s.entryHash(c, n)
	if err != nil {
		return nil, err
	}
	tm, err := s.lastTime(c, n)
	if err != nil {
		return nil, err
	}
	return &capsule.Head{Seqno: n, Hash: h, Time: tm, Tree: t}, nil
}

// abandon prepares the writes that move entries [from, head] aside as an
// abandoned branch of the held epoch, and drop the index entries, Merkle
// nodes and heartbeats that covered them.
func (s *Store) abandon(cs *capsuleState, from uint64) (*writeBatch, error) {
	c, head := cs.info.Name, &cs.head
	epoch := head.Heartbeat.Epoch
	wb := &writeBatch{}
	var ierr error
	err := s.eng.scan(key(tEntry, c, from), key(tEntry, c, head.Seqno+1), func(k, v []byte) bool {
		e, err := capsule.UnmarshalRecord(v)
		if err != nil {
			ierr = err
			return false
		}
		wb.set(key(tAbandoned, c, epoch, e.Seqno), append([]byte(nil), v...))
		wb.del(hashKey(c, e.Hash()))
		return true
	})
	if err = errors.Join(err, ierr); err != nil {
		return nil, err
	}
	wb.set(key(tAbandonHB, c, epoch), head.Heartbeat.Marshal())
	wb.delRange(key(tEntry, c, from), prefixEnd(key(tEntry, c)))
	wb.delRange(key(tHeartbeat, c, from), prefixEnd(key(tHeartbeat, c)))
	// Node (l, i) covers leaves [i<<l, (i+1)<<l) and stays valid only if it
	// ends at or before the first f = from-1 leaves. Every valid node has an
	// in-order position below 2f-1, so everything from there on goes; the
	// only invalid nodes left of it are the ancestors of leaf f that straddle
	// it, one per level where f is not aligned.
	f := from - 1
	wb.delRange(nodePosKey(c, 2*f), prefixEnd(key(tNode, c)))
	for l := 1; l <= bits.Len64(head.Seqno); l++ {
		if f&(1<<uint(l)-1) != 0 {
			wb.del(nodeKey(c, uint8(l), f>>uint(l)))
		}
	}
	return wb, nil
}

// EntryHash is the hash of capsule c's stored entry seqno.
func (s *Store) EntryHash(c pdu.Name, seqno uint64) (capsule.Hash, error) {
	if err := s.enter(); err != nil {
		return capsule.Hash{}, err
	}
	defer s.leave()
	return s.entryHash(c, seqno)
}

// Adopt replaces capsule c's entries from seqno from on with a batch from
// another line of the log that agrees with the held one up to from-1: the
// held entries from there on are moved aside as an abandoned branch (see
// Abandoned), then the batch is applied, atomically and durably. The batch
// is verified like any append (writer signature, chain from entry from-1,
// Merkle root). Anti-entropy uses it when most replicas hold the other
// line: the line a writer got acknowledged by W replicas wins over the one
// a second writer left on a minority. A batch that holds the same entry
// at from as this store (nothing diverges there) fails with
// ErrNothingToAdopt and changes nothing.
func (s *Store) Adopt(ctx context.Context, c pdu.Name, from uint64, recs []capsule.Record, hb *capsule.Heartbeat) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	cs, err := s.state(c)
	if err != nil {
		return fmt.Errorf("adopt: %w", err)
	}
	b, err := capsule.CheckBatch(cs.info, recs, hb, s.opts.MaxData)
	if err != nil {
		return err
	}
	cs.mu.Lock()
	defer func() {
		cs.moved.Broadcast()
		cs.mu.Unlock()
	}()
	if cs.last != nil {
		if err := cs.last.wait(ctx); err != nil {
			return fmt.Errorf("adopt in %s: %w", c, err)
		}
	}
	head := &cs.head
	if from == 0 || from > head.Seqno || head.Heartbeat == nil {
		return fmt.Errorf("adopt in %s: %w: from %d, head %d", c, ErrOutOfRange, from, head.Seqno)
	}
	k := slices.IndexFunc(b.Records, func(r capsule.Record) bool { return r.Seqno >= from })
	if k < 0 {
		k = len(b.Records)
	}
	fork, err := s.headAt(cs, from-1)
	if err != nil {
		return fmt.Errorf("adopt in %s: %w", c, err)
	}
	tail := &capsule.Batch{Records: b.Records[k:], Hashes: b.Hashes[k:], Heartbeat: hb, Resumed: true}
	probe, err := fork.Apply(tail, nil)
	if err != nil {
		return fmt.Errorf("adopt in %s: %w", c, err)
	}
	// The batch must be another line from seqno from on: one that holds
	// the held entry there (the peer moved onto this replica's line while
	// it was compared) has nothing to adopt, and taking it would only cut
	// the held log back to the batch's end.
	if held, err := s.entryHash(c, from); err != nil {
		return fmt.Errorf("adopt in %s: %w", c, err)
	} else if len(probe.Hashes) == 0 || probe.Hashes[0] == held {
		return fmt.Errorf("adopt in %s: %w: the batch holds entry %d as this replica does", c, ErrNothingToAdopt, from)
	}
	pre, err := s.abandon(cs, from)
	if err != nil {
		return fmt.Errorf("adopt in %s: %w", c, err)
	}
	s.log.Info("adopted the majority's line", logging.Capsule(c), logging.Seqno(from),
		logging.Reason(fmt.Sprintf("entries %d..%d of epoch %d moved aside", from, head.Seqno, head.Heartbeat.Epoch)))
	w, err := s.extend(cs, fork, tail, pre)
	if err != nil {
		return err
	}
	if err := w.wait(ctx); err != nil {
		return fmt.Errorf("adopt in %s: %w", c, err)
	}
	return nil
}
