package capsule

import (
	"fmt"
	"slices"
)

// Batch is an append request after the checks that need no stored state:
// the heartbeat signature, every record's own fields and data hash, and
// seqno order. Checking is the expensive part (one Ed25519 verify and two
// SHA-256 per record), so a server runs CheckBatch on many batches in
// parallel and only Head.Apply under the capsule's lock.
type Batch struct {
	Records   []Record // data records, ascending seqno (gaps are declared holes)
	Hashes    []Hash   // Hashes[i] is Records[i]'s entry hash
	Heartbeat *Heartbeat

	// Resumed is set by a server that already matched the batch's entries
	// at or below its head against the ones it stores and dropped those
	// records: Apply then skips the heartbeat's holes at or below the head
	// instead of refusing them.
	Resumed bool
}

// CheckBatch checks recs and hb for capsule info. maxData bounds one
// record's data (0 means DefaultMaxData).
func CheckBatch(info Info, recs []Record, hb *Heartbeat, maxData int) (*Batch, error) {
	if hb == nil {
		return nil, fmt.Errorf("append to %s: %w: no heartbeat", info.Name, ErrMalformed)
	}
	if err := hb.Verify(info.Name, info.Writer); err != nil {
		return nil, fmt.Errorf("append to %s: %w", info.Name, err)
	}
	b := &Batch{Records: recs, Hashes: make([]Hash, len(recs)), Heartbeat: hb}
	for i := range recs {
		r := &recs[i]
		if r.Capsule != info.Name {
			return nil, fmt.Errorf("append to %s: record %d names %s: %w", info.Name, r.Seqno, r.Capsule, ErrWrongCapsule)
		}
		if r.Hole {
			return nil, fmt.Errorf("append to %s: record %d: %w: holes are declared in the heartbeat, not sent", info.Name, r.Seqno, ErrMalformed)
		}
		if i > 0 && r.Seqno <= recs[i-1].Seqno {
			return nil, fmt.Errorf("append to %s: %w: seqno %d after %d", info.Name, ErrMalformed, r.Seqno, recs[i-1].Seqno)
		}
		if r.Seqno > hb.Seqno {
			return nil, fmt.Errorf("append to %s: %w: record %d beyond heartbeat %d", info.Name, ErrMalformed, r.Seqno, hb.Seqno)
		}
		if _, holed := slices.BinarySearch(hb.Holes, r.Seqno); holed {
			return nil, fmt.Errorf("append to %s: %w: record %d is declared a hole", info.Name, ErrMalformed, r.Seqno)
		}
		h, err := r.Verify(maxData)
		if err != nil {
			return nil, fmt.Errorf("append to %s: %w", info.Name, err)
		}
		b.Hashes[i] = h
	}
	return b, nil
}

// Head is a capsule's verified state: the newest heartbeat and the tree's
// frontier. The zero Head (with a zero Tree) is the empty log.
type Head struct {
	Seqno     uint64
	Hash      Hash  // entry hash at Seqno; zero when empty
	Time      int64 // time of the newest data record
	Tree      *Tree
	Heartbeat *Heartbeat // nil when empty
}

// Applied is the result of extending a Head with a Batch.
type Applied struct {
	Head    Head
	Entries []Record // the new entries in seqno order, declared holes included
	Hashes  []Hash
}

// Apply extends h with b when b starts right after h: every seqno in
// (h.Seqno, hb.Seqno] is a record of b or a hole hb declares, each record's
// Prev is its predecessor's hash, times do not go backwards and the new tree
// has hb's root. It returns the new head without modifying h; emit receives
// each interior Merkle node the extension completes (nil to ignore).
//
// Batches that overlap what h already holds (retries, branches, replays)
// are the caller's to sort out against its stored entries first.
func (h *Head) Apply(b *Batch, emit Emit) (*Applied, error) {
	hb := b.Heartbeat
	if h.Heartbeat != nil {
		if hb.Epoch < h.Heartbeat.Epoch {
			return nil, fmt.Errorf("heartbeat %d: %w: epoch %d < held epoch %d", hb.Seqno, ErrStale, hb.Epoch, h.Heartbeat.Epoch)
		}
		if hb.Time < h.Heartbeat.Time {
			return nil, fmt.Errorf("heartbeat %d: %w: time goes backwards", hb.Seqno, ErrStale)
		}
	}
	if hb.Seqno < h.Seqno {
		return nil, fmt.Errorf("heartbeat %d: %w: log already at %d", hb.Seqno, ErrStale, h.Seqno)
	}
	if len(b.Records) > 0 && b.Records[0].Seqno <= h.Seqno {
		return nil, fmt.Errorf("record %d: %w: log already at %d", b.Records[0].Seqno, ErrStale, h.Seqno)
	}
	holes := hb.Holes
	for len(holes) > 0 && holes[0] <= h.Seqno {
		if !b.Resumed {
			return nil, fmt.Errorf("hole %d: %w: seqno already filled (log at %d)", holes[0], ErrMalformed, h.Seqno)
		}
		holes = holes[1:]
	}
	tree := &Tree{}
	if h.Tree != nil {
		tree = h.Tree.Clone()
	}
	n := int(hb.Seqno - h.Seqno)
	out := &Applied{Entries: make([]Record, 0, n), Hashes: make([]Hash, 0, n)}
	prev, last := h.Hash, h.Time
	ri, hi := 0, 0
	for s := h.Seqno + 1; s <= hb.Seqno; s++ {
		var e Record
		var eh Hash
		switch {
		case ri < len(b.Records) && b.Records[ri].Seqno == s:
			e, eh = b.Records[ri], b.Hashes[ri]
			ri++
			if e.Prev != prev {
				return nil, fmt.Errorf("record %d: %w", s, ErrBrokenChain)
			}
			if e.Time < last {
				return nil, fmt.Errorf("record %d: %w", s, ErrBadTime)
			}
			last = e.Time
		case hi < len(holes) && holes[hi] == s:
			hi++
			e = NewHole(hb.Capsule, s, prev)
			eh = e.Hash()
		default:
			return nil, fmt.Errorf("seqno %d: %w", s, ErrGap)
		}
		tree.Append(eh, emit)
		out.Entries = append(out.Entries, e)
		out.Hashes = append(out.Hashes, eh)
		prev = eh
	}
	if tree.Root() != hb.Root {
		return nil, fmt.Errorf("heartbeat %d: %w", hb.Seqno, ErrRootMismatch)
	}
	out.Head = Head{Seqno: hb.Seqno, Hash: prev, Time: last, Tree: tree, Heartbeat: hb}
	return out, nil
}
