package capsuled

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/store"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

// decodeBatch decodes an APPEND's (or a SYNC segment's) records and
// heartbeat. Records are copied out of the message buffer.
func decodeBatch(recs [][]byte, hbb []byte) ([]capsule.Record, *capsule.Heartbeat, error) {
	if len(hbb) == 0 {
		return nil, nil, fmt.Errorf("%w: no heartbeat", wire.ErrMalformed)
	}
	hb, err := capsule.UnmarshalHeartbeat(hbb)
	if err != nil {
		return nil, nil, err
	}
	out := make([]capsule.Record, len(recs))
	for i, b := range recs {
		if out[i], err = capsule.UnmarshalRecord(b); err != nil {
			return nil, nil, fmt.Errorf("record %d of the batch: %w", i, err)
		}
	}
	return out, hb, nil
}

// first is the first seqno a batch touches.
func first(recs []capsule.Record, hb *capsule.Heartbeat) uint64 {
	f := hb.Seqno
	if len(recs) > 0 && recs[0].Seqno < f {
		f = recs[0].Seqno
	}
	if len(hb.Holes) > 0 && hb.Holes[0] < f {
		f = hb.Holes[0]
	}
	return f
}

// appendWaitsPerPeer bounds the APPENDs of one requester that wait off the
// workers for the batches before them: a writer keeps a few batches in
// flight (client.WriterOptions.MaxInFlight, 4 by default).
const appendWaitsPerPeer = 8

// startsBeyondHead tells, from the heartbeat and the first record alone,
// whether m is an APPEND whose batch starts beyond the capsule's head (its
// predecessors not stored yet). Anything that does not decode is false:
// handleAppend refuses it.
func (s *Server) startsBeyondHead(m *wire.Message) bool {
	hb, err := capsule.UnmarshalHeartbeat(m.Heartbeat)
	if err != nil {
		return false
	}
	var recs []capsule.Record
	if len(m.Records) > 0 {
		r, err := capsule.UnmarshalRecord(m.Records[0])
		if err != nil {
			return false
		}
		recs = []capsule.Record{r}
	}
	head, err := s.st.Head(m.CapsuleName())
	return err == nil && first(recs, hb) > head.Seqno+1
}

// handleAppend stores a writer's batch. The answer goes out only after the
// fsync that covers it; it carries the durable head. A batch that starts
// beyond the head (this replica missed batches) is answered StatusGap and
// starts a catch-up from the peers.
func (s *Server) handleAppend(ctx context.Context, r request) *wire.Message {
	m := r.msg
	c := m.CapsuleName()
	recs, hb, err := decodeBatch(m.Records, m.Heartbeat)
	if err != nil {
		return fail(m, fmt.Errorf("append to %s: %w", c, err))
	}
	head, err := s.st.Head(c)
	if err != nil {
		return fail(m, err)
	}
	p := s.places.get(c)
	// Only a batch that brings records past the head adds bytes: a
	// writer's re-send of a batch stored here (its answer was lost) and a
	// heartbeat alone are answered as usual, or the writer would count a
	// durable batch as not stored here.
	if p != nil && len(recs) > 0 && recs[len(recs)-1].Seqno > head.Seqno {
		if used, share := s.storageUsed(p); share != "" {
			s.met.storageRefused.WithLabelValues("append", share).Inc()
			return fail(m, s.storageRefusal(r, p, used, share))
		}
	}
	// Try at once: the batch before this one may be applied but not yet
	// durable, and then both share one fsync. A gap before the batch means
	// its predecessors are still on their way (a writer keeps several in
	// flight) or were lost: wait for them a little, then call this replica
	// behind and catch up from the peers.
	f := first(recs, hb)
	err = s.st.AppendExtending(ctx, c, recs, hb)
	if errors.Is(err, capsule.ErrGap) && f > head.Seqno+1 && hb.Capsule == c {
		if head = s.awaitHead(ctx, c, f-1, head); head.Seqno+1 >= f {
			err = s.st.AppendExtending(ctx, c, recs, hb)
		} else if p := s.places.get(c); p != nil && len(p.peers(s.name)) > 0 {
			s.kickSync(c)
			resp := m.Reply(wire.StatusGap)
			resp.Head = head.Seqno
			resp.Error = fmt.Sprintf("batch starts at %d, this replica holds %d: catching up", f, head.Seqno)
			return resp
		}
	}
	if err != nil {
		resp := fail(m, err)
		var eq *capsule.EquivocationError
		if errors.As(err, &eq) {
			s.met.equivocations.Inc()
			resp.Evidence = eq.Evidence.Marshal()
			s.logLim.Warn(s.log, c.String(), "forked writer detected", logging.Capsule(c), logging.Src(r.from), logging.Seqno(eq.Evidence.Size))
		} else if errors.Is(err, store.ErrWriterConflict) {
			s.met.writerConflicts.Inc()
			resp.Head = head.Seqno
			if h, herr := s.st.Head(c); herr == nil {
				resp.Head = h.Seqno
			}
			s.logLim.Info(s.log, c.String()+" "+r.from.String(), "append refused: another writer is active", logging.Capsule(c), logging.Src(r.from),
				logging.Seqno(f), logging.Reason(err.Error()))
		} else {
			s.log.Debug("append refused", logging.Capsule(c), logging.Src(r.from), zap.Error(err))
		}
		if resp.Status == wire.StatusNotFound {
			resp.Error = fmt.Sprintf("unknown capsule %s", c)
		}
		return resp
	}
	s.met.appended.Add(float64(len(recs)))
	// Counted against the creator's share as it stands: the records past
	// the head before this batch.
	var n uint64
	for i, b := range m.Records {
		if recs[i].Seqno > head.Seqno {
			n += uint64(len(b))
		}
	}
	s.storageAdded(p, n)
	s.sync.fed(c, time.Now())
	s.watch.changed(c)
	resp := m.Reply(wire.StatusOK)
	if h, err := s.st.Head(c); err == nil {
		resp.Head = h.Seqno
	}
	// The signed receipt: this server holds the batch durably. With the
	// owner's AdCert for this server and the server's metadata, a writer
	// can check it without trusting anyone's word.
	if p := s.places.get(c); p != nil && hb.Capsule == c {
		resp.Receipt = capsule.NewReceipt(hb, s.name, s.id.Key).Marshal()
		resp.AdCert, resp.Server = p.adcert.Marshal(), s.id.Meta.Marshal()
	}
	return resp
}

// awaitHead waits up to ReorderWait for capsule c's durable head to reach
// seqno (the batches before this one are on their way), and returns the
// head then.
func (s *Server) awaitHead(ctx context.Context, c pdu.Name, seqno uint64, head capsule.Head) capsule.Head {
	t := time.NewTimer(s.cfg.ReorderWait)
	defer t.Stop()
	for head.Seqno < seqno {
		changed := s.watch.wait(c)
		h, err := s.st.Head(c)
		if err != nil {
			return head
		}
		if head = h; head.Seqno >= seqno {
			break
		}
		select {
		case <-changed:
		case <-t.C:
			return head
		case <-ctx.Done():
			return head
		}
	}
	return head
}

// kickSync asks the anti-entropy loop to look at capsule c now.
func (s *Server) kickSync(c pdu.Name) {
	select {
	case s.kick <- c:
	default:
	}
}
