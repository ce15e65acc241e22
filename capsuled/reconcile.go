package capsuled

import (
	"context"
	"errors"
	"fmt"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/store"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

// diverged reports whether a peer's segment failed because the two
// replicas hold different lines of the log (rather than a bad peer or a
// lost message).
func diverged(err error) bool {
	return errors.Is(err, capsule.ErrBrokenChain) || errors.Is(err, capsule.ErrRootMismatch) ||
		errors.Is(err, capsule.ErrEquivocation) || errors.Is(err, store.ErrWriterConflict) || errors.Is(err, capsule.ErrStale) ||
		errors.Is(err, store.ErrDiverged)
}

// errAgreed: the peer's line and ours agree up to the shorter head.
var errAgreed = errors.New("the replicas agree up to the shorter head")

// reconcile settles a divergence with peer, whose head is peerHead: it
// finds the first seqno d where the two logs differ and asks every replica
// of the placement which entry it holds at d. When a majority holds the
// peer's line, this replica moves its own entries from d aside (an
// abandoned branch) and adopts the peer's line: a writer's acknowledged
// records (W of N, W a majority) win over what a second writer with the
// same key left on a minority. When a majority holds ours, the peer will
// adopt ours. When neither line has a majority, the fork is genuine and is
// judged as before: evidence stored (one epoch) or a declared branch.
//
// It reports whether this replica adopted the peer's line; nil error and
// false mean this replica's line is the majority's. A genuine fork's
// judgement comes back as the error (an *capsule.EquivocationError).
func (s *Server) reconcile(ctx context.Context, c, peer pdu.Name, peerHead uint64) (bool, error) {
	p := s.places.get(c)
	if p == nil {
		return false, errAgreed
	}
	head, err := s.st.Head(c)
	if err != nil {
		return false, err
	}
	top := min(head.Seqno, peerHead)
	if top == 0 {
		return false, errAgreed
	}
	equal := func(k uint64) (bool, error) {
		h, err := s.entryAt(ctx, peer, c, k)
		if err != nil {
			return false, err
		}
		mine, err := s.st.EntryHash(c, k)
		return err == nil && h == mine, err
	}
	if same, err := equal(top); err != nil {
		return false, err
	} else if same {
		return false, errAgreed
	}
	lo, hi := uint64(1), top // entries below lo agree; hi differs
	for lo < hi {
		mid := lo + (hi-lo)/2
		same, err := equal(mid)
		if err != nil {
			return false, err
		}
		if same {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	d := lo
	theirs, err := s.entryAt(ctx, peer, c, d)
	if err != nil {
		return false, err
	}
	mine, err := s.st.EntryHash(c, d)
	if err != nil {
		return false, err
	}
	forTheirs, forMine, unknown := 1, 1, 0 // the peer, this replica
	for _, r := range p.peers(s.name) {
		if r == peer {
			continue
		}
		h, err := s.entryAt(ctx, r, c, d)
		switch {
		case err != nil:
			unknown++ // unreachable, or behind: it has not taken a side yet
		case h == theirs:
			forTheirs++
		case h == mine:
			forMine++
		}
	}
	n := len(p.replicas)
	if forMine*2 > n {
		return false, nil // the peer adopts ours
	}
	if forTheirs*2 <= n && unknown > 0 {
		return false, fmt.Errorf("replicas disagree from seqno %d and %d of %d have not taken a side yet", d, unknown, n)
	}
	resp, err := s.ask(ctx, peer, &wire.Message{Op: wire.OpSync, Capsule: c[:], From: d})
	if err == nil {
		err = resp.Err()
	}
	if err != nil {
		return false, err
	}
	if len(resp.Segments) == 0 {
		return false, fmt.Errorf("peer %s sent nothing from seqno %d", peer, d)
	}
	recs, hb, err := decodeBatch(resp.Segments[0].Records, resp.Segments[0].Heartbeat)
	if err != nil {
		return false, err
	}
	if forTheirs*2 > n {
		// The peer compares with its own peers meanwhile and may have
		// moved onto our line since it answered: then Adopt finds nothing
		// to adopt (store.ErrNothingToAdopt) and the next round sees.
		if err := s.st.Adopt(ctx, c, d, recs, hb); err != nil {
			return false, fmt.Errorf("adopting %s's line from seqno %d: %w", peer, d, err)
		}
		s.met.syncErrors.WithLabelValues("adopted").Inc()
		s.log.Warn("replicas diverged (two writers with one key?): adopted the line most replicas hold",
			logging.Capsule(c), logging.Peer(peer), logging.Seqno(d))
		s.watch.changed(c)
		return true, nil
	}
	// No majority either way: a genuine fork. The ordinary append judges
	// it (evidence for one epoch, a branch for a newer one).
	err = s.st.Append(ctx, c, recs, hb)
	var eq *capsule.EquivocationError
	if errors.As(err, &eq) {
		s.met.equivocations.Inc()
		s.logLim.Warn(s.log, c.String()+" "+peer.String(), "forked writer detected during anti-entropy", logging.Capsule(c), logging.Peer(peer), logging.Seqno(eq.Evidence.Size))
	}
	return false, err
}

// entryAt asks replica r for the hash of capsule c's entry k.
func (s *Server) entryAt(ctx context.Context, r, c pdu.Name, k uint64) (capsule.Hash, error) {
	resp, err := s.ask(ctx, r, &wire.Message{Op: wire.OpRead, Capsule: c[:], From: k, To: k, Limit: 1})
	if err == nil {
		err = resp.Err()
	}
	if err != nil {
		return capsule.Hash{}, err
	}
	if len(resp.Records) == 0 {
		return capsule.Hash{}, fmt.Errorf("%s holds no entry %d", r, k)
	}
	e, err := capsule.UnmarshalRecord(resp.Records[0])
	if err != nil {
		return capsule.Hash{}, err
	}
	if e.Seqno != k {
		return capsule.Hash{}, fmt.Errorf("%s answered entry %d for %d", r, e.Seqno, k)
	}
	return e.Hash(), nil
}
