package store

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

var evidenceSeq atomic.Uint64

// equivocation stores the evidence durably, reports it and returns the error.
func (s *Store) equivocation(ctx context.Context, cs *capsuleState, ev *capsule.Evidence) error {
	c := cs.info.Name
	if cs.deleted { // cs.mu held: no key of a deleted capsule after its range deletion
		return fmt.Errorf("append to %s: %w (deleted meanwhile)", c, ErrUnknownCapsule)
	}
	s.log.Warn("writer equivocation", logging.Capsule(c), logging.Seqno(ev.Size),
		logging.Reason(fmt.Sprintf("heartbeats %d and %d disagree", ev.A.Seqno, ev.B.Seqno)))
	var wb writeBatch
	wb.set(key(tEvidence, c, uint64(time.Now().UnixNano())+evidenceSeq.Add(1)), ev.Marshal())
	w, err := s.commit.enqueue(&wb, nil)
	if err == nil {
		err = w.wait(ctx)
	}
	if err != nil {
		return fmt.Errorf("append to %s: storing evidence: %w (%w)", c, err, capsule.ErrEquivocation)
	}
	return fmt.Errorf("append to %s: %w", c, &capsule.EquivocationError{Evidence: ev})
}

// Evidence returns the equivocation evidence stored for capsule c.
func (s *Store) Evidence(c pdu.Name) ([]*capsule.Evidence, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	if _, err := s.state(c); err != nil {
		return nil, err
	}
	var out []*capsule.Evidence
	var ierr error
	err := s.eng.scan(key(tEvidence, c), prefixEnd(key(tEvidence, c)), func(k, v []byte) bool {
		ev, err := capsule.UnmarshalEvidence(v)
		if err != nil {
			ierr = err
			return false
		}
		out = append(out, ev)
		return true
	})
	return out, errors.Join(err, ierr)
}

// Branch is an abandoned branch: the heartbeat that covered it and the
// entries a later epoch replaced.
type Branch struct {
	Heartbeat *capsule.Heartbeat
	Entries   []capsule.Record
}

// Abandoned returns capsule c's abandoned branches, oldest epoch first.
// They are kept for audit and never merged into the log readers follow.
func (s *Store) Abandoned(c pdu.Name) ([]Branch, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	if _, err := s.state(c); err != nil {
		return nil, err
	}
	var out []Branch
	var ierr error
	err := s.eng.scan(key(tAbandonHB, c), prefixEnd(key(tAbandonHB, c)), func(k, v []byte) bool {
		hb, err := capsule.UnmarshalHeartbeat(v)
		if err != nil {
			ierr = err
			return false
		}
		out = append(out, Branch{Heartbeat: hb})
		return true
	})
	if err = errors.Join(err, ierr); err != nil {
		return nil, err
	}
	for i := range out {
		ep := out[i].Heartbeat.Epoch
		err := s.eng.scan(key(tAbandoned, c, ep), prefixEnd(key(tAbandoned, c, ep)), func(k, v []byte) bool {
			e, err := capsule.UnmarshalRecord(append([]byte(nil), v...))
			if err != nil {
				ierr = err
				return false
			}
			out[i].Entries = append(out[i].Entries, e)
			return true
		})
		if err = errors.Join(err, ierr); err != nil {
			return nil, err
		}
	}
	return out, nil
}
