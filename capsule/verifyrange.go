package capsule

import "fmt"

// VerifyRange checks what a reader got back for a range of entries: the
// heartbeat's signature by the writer, every entry's own fields and data
// hash, the hash chain from each entry to the next (holes included), and an
// inclusion proof of the last entry in the heartbeat's tree. It costs one
// signature verify for the whole range.
//
// The chain binds every earlier entry to the last one, and the proof binds
// the last one to the signed root, so the whole range is what the writer
// signed. maxData bounds one record's data (0 means DefaultMaxData).
func VerifyRange(info Info, hb *Heartbeat, entries []Record, proof *InclusionProof, maxData int) error {
	if len(entries) == 0 {
		return nil
	}
	if hb == nil || proof == nil {
		return fmt.Errorf("verify %s: %w: no heartbeat or proof", info.Name, ErrBadProof)
	}
	if err := hb.Verify(info.Name, info.Writer); err != nil {
		return fmt.Errorf("verify %s: %w", info.Name, err)
	}
	return VerifyRangeUnder(info, hb, entries, proof, maxData)
}

// VerifyRangeUnder is VerifyRange under a heartbeat whose signature the
// caller has already checked (hb.Verify(info.Name, info.Writer) returned
// nil for this very value, e.g. the heartbeat a reader holds): every check
// but the signature, so a reader pays one ed25519 verification per
// heartbeat, not one per page.
func VerifyRangeUnder(info Info, hb *Heartbeat, entries []Record, proof *InclusionProof, maxData int) error {
	if len(entries) == 0 {
		return nil
	}
	if hb == nil || proof == nil {
		return fmt.Errorf("verify %s: %w: no heartbeat or proof", info.Name, ErrBadProof)
	}
	if hb.Capsule != info.Name {
		return fmt.Errorf("verify %s: heartbeat for %s: %w", info.Name, hb.Capsule, ErrWrongCapsule)
	}
	last, err := VerifyChain(info.Name, entries, maxData)
	if err != nil {
		return fmt.Errorf("verify %s: %w", info.Name, err)
	}
	tail := entries[len(entries)-1].Seqno
	if proof.Index != tail-1 || proof.Size != hb.Seqno {
		return fmt.Errorf("verify %s: %w: proof for leaf %d of %d, want %d of %d",
			info.Name, ErrBadProof, proof.Index, proof.Size, tail-1, hb.Seqno)
	}
	if err := proof.Verify(last, hb.Root); err != nil {
		return fmt.Errorf("verify %s entry %d: %w", info.Name, tail, err)
	}
	return nil
}

// VerifyChain checks consecutive entries of capsule c on their own: names,
// consecutive seqnos, data hashes, prev links and non-decreasing times. It
// returns the last entry's hash.
func VerifyChain(c [32]byte, entries []Record, maxData int) (Hash, error) {
	var prev Hash
	var lastTime int64
	for i := range entries {
		e := &entries[i]
		if e.Capsule != c {
			return Hash{}, fmt.Errorf("entry %d: %w", e.Seqno, ErrWrongCapsule)
		}
		if i > 0 {
			if e.Seqno != entries[i-1].Seqno+1 {
				return Hash{}, fmt.Errorf("entry %d after %d: %w", e.Seqno, entries[i-1].Seqno, ErrGap)
			}
			if e.Prev != prev {
				return Hash{}, fmt.Errorf("entry %d: %w", e.Seqno, ErrBrokenChain)
			}
		} else if e.Seqno == 1 && !e.Prev.IsZero() {
			return Hash{}, fmt.Errorf("entry 1: %w: non-zero prev", ErrBrokenChain)
		}
		h, err := e.Verify(maxData)
		if err != nil {
			return Hash{}, err
		}
		if !e.Hole {
			if e.Time < lastTime {
				return Hash{}, fmt.Errorf("entry %d: %w", e.Seqno, ErrBadTime)
			}
			lastTime = e.Time
		}
		prev = h
	}
	return prev, nil
}
