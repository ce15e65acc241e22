package capsule

import (
	"errors"
	"testing"
)

func TestFollower(t *testing.T) {
	w := newTestWriter()
	var mt MemTree
	step := func(n int) *Heartbeat {
		writeN(w, n)
		recs, hb := w.Flush()
		for _, r := range recs {
			mt.Append(r.Hash())
		}
		return hb
	}
	proof := func(m, n uint64) *ConsistencyProof {
		p, err := ConsistencyPath(&mt, m, n)
		if err != nil {
			t.Fatal(err)
		}
		return &ConsistencyProof{Old: m, New: n, Path: p}
	}
	f := NewFollower(testInfo)
	h5 := step(5)
	if err := f.Advance(h5, nil); err != nil {
		t.Fatal(err)
	}
	h9 := step(4)
	if err := f.Advance(h9, nil); !errors.Is(err, ErrBadProof) {
		t.Fatalf("no proof: %v", err)
	}
	bad := proof(5, 9)
	bad.Path[0][0] ^= 1
	if err := f.Advance(h9, bad); !errors.Is(err, ErrBadProof) {
		t.Fatalf("bad proof: %v", err)
	}
	if err := f.Advance(h9, proof(5, 9)); err != nil || f.Heartbeat() != h9 {
		t.Fatalf("extension: %v", err)
	}
	if err := f.Advance(h5, nil); !errors.Is(err, ErrStale) {
		t.Fatalf("rollback: %v", err)
	}
	// The writer signs another log of 9 entries: the two heartbeats are evidence.
	other := *h9
	other.Root[0] ^= 1
	other.Time++
	other.Sign(testKey)
	err := f.Advance(&other, nil)
	var eq *EquivocationError
	if !errors.As(err, &eq) || eq.Evidence.Verify(testInfo) != nil {
		t.Fatalf("same seqno, other root: %v", err)
	}
	// A declared restart from seqno 5 is a branch, not equivocation.
	branch := &Heartbeat{Capsule: testName, Seqno: 9, Root: other.Root, Time: other.Time + 1, Epoch: 1, Base: 5}
	branch.Sign(testKey)
	if err := f.Advance(branch, nil); !errors.Is(err, ErrBranch) {
		t.Fatalf("restart: %v", err)
	}
	if err := f.Reset(branch); err != nil || f.Heartbeat() != branch {
		t.Fatalf("reset: %v", err)
	}
}
