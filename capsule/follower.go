package capsule

import (
	"errors"
	"fmt"
)

// ErrBranch: a heartbeat of a newer epoch that does not extend the one a
// Follower holds: the writer restarted from an older head (DESIGN.md §7).
// The caller decides whether to follow the new line (Follower.Reset).
var ErrBranch = errors.New("writer restarted on another branch")

// ErrNoConsistency: a heartbeat beyond the held one came without a
// consistency proof from the held one (none, or one between other sizes).
// It is a bad proof; a subscriber re-synchronises on it.
var ErrNoConsistency = fmt.Errorf("%w: no consistency proof from the held heartbeat", ErrBadProof)

// Follower is a reader's view of one capsule: the newest heartbeat it has
// verified. It moves forward only to heartbeats signed by the writer that
// extend what it holds (checked with a consistency proof), so a server
// cannot roll a reader back or show it a rewritten history unnoticed.
type Follower struct {
	info Info
	hb   *Heartbeat
}

// NewFollower follows capsule info from the empty log.
func NewFollower(info Info) *Follower { return &Follower{info: info} }

// Heartbeat is the newest verified heartbeat (nil before the first).
func (f *Follower) Heartbeat() *Heartbeat { return f.hb }

// Advance verifies hb and makes it the newest if it extends the held one:
// p must prove the held tree a prefix of hb's (nil when nothing is held or
// the seqnos are equal). It returns ErrStale for an older heartbeat,
// ErrBadProof for a bad proof, ErrBranch for a declared restart, and an
// *EquivocationError when the held and new heartbeats themselves prove the
// writer signed two logs.
func (f *Follower) Advance(hb *Heartbeat, p *ConsistencyProof) error {
	if err := hb.Verify(f.info.Name, f.info.Writer); err != nil {
		return err
	}
	old := f.hb
	switch {
	case old == nil:
		f.hb = hb
		return nil
	case hb.Epoch < old.Epoch || hb.Seqno < old.Seqno || (hb.Seqno == old.Seqno && hb.Time < old.Time):
		return fmt.Errorf("heartbeat %d (epoch %d): %w: holding %d (epoch %d)", hb.Seqno, hb.Epoch, ErrStale, old.Seqno, old.Epoch)
	case hb.Seqno == old.Seqno && hb.Root != old.Root:
		return sameSize(old, hb)
	case hb.Seqno == old.Seqno:
		f.hb = hb // fresher, same log
		return nil
	}
	if p == nil || p.Old != old.Seqno || p.New != hb.Seqno {
		return fmt.Errorf("heartbeat %d: %w: want one from %d", hb.Seqno, ErrNoConsistency, old.Seqno)
	}
	if err := p.Verify(old.Root, hb.Root); err != nil {
		if hb.Epoch > old.Epoch && hb.Base < old.Seqno {
			return fmt.Errorf("heartbeat %d: %w (epoch %d based at %d): %v", hb.Seqno, ErrBranch, hb.Epoch, hb.Base, err)
		}
		return fmt.Errorf("heartbeat %d: %w", hb.Seqno, err)
	}
	f.hb = hb
	return nil
}

// sameSize judges two heartbeats for the same number of entries: with
// different roots they are equivocation (the writer signed two logs of that
// size), unless the newer declares a restart (ErrBranch).
func sameSize(old, hb *Heartbeat) error {
	if old == nil || hb.Seqno != old.Seqno || hb.Root == old.Root {
		return nil
	}
	if IsBranch(old, hb, hb.Seqno) {
		return fmt.Errorf("heartbeat %d: %w (epoch %d based at %d)", hb.Seqno, ErrBranch, hb.Epoch, hb.Base)
	}
	return &EquivocationError{Evidence: &Evidence{A: old, B: hb, Size: hb.Seqno,
		RootA: old.Root, RootB: hb.Root, PathA: []Hash{}, PathB: []Hash{}}}
}

// Adopt takes hb, learned elsewhere (another reader, another replica), as
// the newest heartbeat when it is newer than the one held, without a
// consistency proof: later heartbeats must then extend it. It verifies the
// signature and, like Advance, reports an *EquivocationError (or ErrBranch)
// when hb and the held heartbeat are two logs of the same size; an older hb
// changes nothing.
func (f *Follower) Adopt(hb *Heartbeat) error {
	if err := hb.Verify(f.info.Name, f.info.Writer); err != nil {
		return err
	}
	old := f.hb
	if err := sameSize(old, hb); err != nil {
		return err
	}
	if old == nil || hb.Seqno > old.Seqno || (hb.Seqno == old.Seqno && hb.Time > old.Time) {
		f.hb = hb
	}
	return nil
}

// Reset follows hb from now on, whatever was held (after ErrBranch, once
// the caller accepts the writer's restart). hb must still verify.
func (f *Follower) Reset(hb *Heartbeat) error {
	if err := hb.Verify(f.info.Name, f.info.Writer); err != nil {
		return err
	}
	f.hb = hb
	return nil
}
