package capsuled

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

// handleSync answers SYNC: whole writer batches from From on, each ending
// at the heartbeat this server stored for it, as many as fit one message.
// Hole entries are left out (their heartbeat declares them), so a peer can
// store each segment with an ordinary append, verified as such.
func (s *Server) handleSync(r request) *wire.Message {
	m := r.msg
	c := m.CapsuleName()
	head, err := s.st.Head(c)
	if err != nil {
		return fail(m, err)
	}
	resp := m.Reply(wire.StatusOK)
	resp.Head = head.Seqno
	if m.From == 0 || m.From > head.Seqno {
		return resp
	}
	budget := wire.MaxMessage - 512 // no proofs in a SYNC answer
	var seg wire.Segment
	segBytes := 0
	next := m.From
	err = s.st.ReadRaw(c, m.From, head.Seqno, func(seq uint64, raw []byte) error {
		e, err := capsule.UnmarshalRecord(raw)
		if err != nil {
			return err
		}
		if !e.Hole {
			seg.Records = append(seg.Records, append([]byte(nil), raw...))
			segBytes += len(raw) + 5
		}
		hb, err := s.st.HeartbeatAt(c, seq)
		if err != nil {
			if len(seg.Records) > wire.MaxRecords || segBytes > budget {
				return errStop // a batch larger than one message: cannot happen for appended batches
			}
			return nil
		}
		seg.Heartbeat = hb.Marshal()
		segBytes += len(seg.Heartbeat) + 16
		if (segBytes > budget && len(resp.Segments) > 0) || len(resp.Segments) >= wire.MaxSegments {
			return errStop
		}
		budget -= segBytes
		resp.Segments = append(resp.Segments, seg)
		next = seq + 1
		seg, segBytes = wire.Segment{}, 0
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return fail(m, err)
	}
	resp.From, resp.To = m.From, next-1
	resp.More = next <= head.Seqno
	return resp
}

// antiEntropy compares every capsule with its peers on start-up, every
// SyncInterval (with jitter), and whenever an APPEND showed this replica
// behind.
func (s *Server) antiEntropy(ctx context.Context) {
	s.syncAll(ctx)
	t := time.NewTimer(s.jitter())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-s.kick:
			s.syncCapsule(ctx, c)
		case <-t.C:
			s.syncAll(ctx)
			t.Reset(s.jitter())
		}
	}
}

func (s *Server) jitter() time.Duration {
	d := s.cfg.SyncInterval
	return d/2 + time.Duration(rand.Int64N(int64(d)))
}

func (s *Server) syncAll(ctx context.Context) {
	for _, p := range s.places.all() {
		if ctx.Err() != nil {
			return
		}
		s.syncCapsule(ctx, p.name)
	}
}

// syncCapsule asks each peer replica for its head and pulls what it has
// beyond ours.
func (s *Server) syncCapsule(ctx context.Context, c pdu.Name) {
	p := s.places.get(c)
	if p == nil {
		return
	}
	for _, peer := range p.peers(s.name) {
		if ctx.Err() != nil {
			return
		}
		if err := s.pullFrom(ctx, c, peer); err != nil && ctx.Err() == nil {
			s.log.Debug("anti-entropy", logging.Capsule(c), logging.Peer(peer), zap.Error(err))
		}
	}
}

// pullFrom copies peer's entries beyond our head, segment by segment.
// Every segment goes through the store's append path, which verifies the
// heartbeat signature, the hash chain and the Merkle root before storing:
// a lying peer gets nothing stored.
func (s *Server) pullFrom(ctx context.Context, c, peer pdu.Name) error {
	for {
		head, err := s.st.Head(c)
		if err != nil {
			return err
		}
		resp, err := s.ask(ctx, peer, &wire.Message{Op: wire.OpSync, Capsule: c[:], From: head.Seqno + 1})
		if err != nil {
			s.met.syncErrors.WithLabelValues("unreachable").Inc()
			return err
		}
		if err := resp.Err(); err != nil {
			s.met.syncErrors.WithLabelValues("refused").Inc()
			return err
		}
		if len(resp.Segments) == 0 {
			return nil
		}
		for i, seg := range resp.Segments {
			recs, hb, err := decodeBatch(seg.Records, seg.Heartbeat)
			if err == nil {
				err = s.st.Append(ctx, c, recs, hb)
			}
			if err != nil {
				var eq *capsule.EquivocationError
				if errors.As(err, &eq) {
					s.met.equivocations.Inc()
					s.log.Warn("forked writer detected during anti-entropy", logging.Capsule(c), logging.Peer(peer), logging.Seqno(eq.Evidence.Size))
				}
				s.met.syncErrors.WithLabelValues("verify").Inc()
				return fmt.Errorf("segment %d from %s: %w", i, peer, err)
			}
			s.met.synced.Add(float64(len(recs)))
			s.watch.changed(c)
		}
		if !resp.More {
			return nil
		}
	}
}
