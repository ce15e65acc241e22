package capsuled

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/client"
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
// behind. Capsules are compared in parallel (at most SyncParallel at
// once, one comparison per capsule at a time), their peers in parallel,
// each request bounded by PeerTimeout and cut short by a NAK; a peer that
// did not answer is left alone for a while (PeerBackoff), so capsules
// whose replicas are unreachable do not hold up the others.
func (s *Server) antiEntropy(ctx context.Context) {
	s.syncAll(ctx)
	t := time.NewTimer(s.jitter())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-s.kick:
			s.startSync(ctx, c, true)
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
		s.startSync(ctx, p.name, false)
	}
}

// startSync starts comparing capsule c with its peers unless that is
// under way already. It does not wait: the comparison waits for one of
// the SyncParallel slots in a goroutine of its own. With force (an APPEND
// showed this replica behind, or a CREATE) peers backing off are asked
// too.
func (s *Server) startSync(ctx context.Context, c pdu.Name, force bool) {
	if !s.sync.begin(c) {
		return
	}
	s.wg.Add(1) // the anti-entropy goroutine, itself counted, is running
	go func() {
		defer s.wg.Done()
		defer s.sync.end(c)
		// A capsule that had an unreachable peer last time waits for the
		// few slots of its own pool: it cannot take the slots of the
		// capsules whose replicas answer.
		slots := s.sync.pool(c)
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		s.met.syncInflight.Inc()
		defer func() { <-slots; s.met.syncInflight.Dec() }()
		s.sync.setSuspect(c, !s.syncCapsule(ctx, c, force))
	}()
}

// syncCapsule asks each peer replica, in parallel, for what it has beyond
// our head and stores it. Peers backing off are skipped unless force. It
// reports whether every peer answered.
func (s *Server) syncCapsule(ctx context.Context, c pdu.Name, force bool) bool {
	p := s.places.get(c)
	if p == nil {
		return true
	}
	var wg sync.WaitGroup
	var silent atomic.Bool
	for _, peer := range p.peers(s.name) {
		if ctx.Err() != nil {
			break
		}
		if !force && !s.sync.due(peer, time.Now()) {
			s.met.syncSkipped.Inc()
			silent.Store(true)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.pullFrom(ctx, c, peer)
			if ctx.Err() != nil {
				return
			}
			ok := err == nil || !unreachable(err)
			s.sync.answered(peer, ok, time.Now(), s.cfg.SyncInterval, s.cfg.PeerBackoff)
			if !ok {
				silent.Store(true)
			}
			s.syncLog.report(s.log, c, peer, err)
		}()
	}
	wg.Wait()
	return !silent.Load()
}

// pullFrom copies peer's entries beyond our head, segment by segment.
// Every segment goes through the store's append path, which verifies the
// heartbeat signature, the hash chain and the Merkle root before storing:
// a lying peer gets nothing stored. A segment on another line of the log
// than ours stores nothing either (AppendFromPeer): reconcile asks every
// replica which line stands, and only a fork it finds genuine is judged
// (evidence stored). Our head can move between the SYNC and its answer (a
// writer's batches land meanwhile), so a segment from another writer may
// overlap entries we took since: that is no evidence of a fork by itself.
func (s *Server) pullFrom(ctx context.Context, c, peer pdu.Name) error {
	for {
		head, err := s.st.Head(c)
		if err != nil {
			return err
		}
		resp, err := s.ask(ctx, peer, &wire.Message{Op: wire.OpSync, Capsule: c[:], From: head.Seqno + 1})
		if err != nil {
			reason := "unreachable"
			if errors.Is(err, errNAK) {
				reason = "nak"
			}
			s.met.syncErrors.WithLabelValues(reason).Inc()
			return err
		}
		if err := resp.Err(); err != nil {
			s.met.syncErrors.WithLabelValues("refused").Inc()
			return err
		}
		if len(resp.Segments) == 0 {
			return nil
		}
		reconciled := false
		for i, seg := range resp.Segments {
			recs, hb, err := decodeBatch(seg.Records, seg.Heartbeat)
			if err == nil {
				err = s.st.AppendFromPeer(ctx, c, recs, hb)
			}
			if err != nil && diverged(err) {
				adopted, rerr := s.reconcile(ctx, c, peer, resp.Head)
				if adopted {
					reconciled = true
					break // re-read the head and pull on
				}
				if rerr == nil {
					return nil // ours is the majority's line: the peer adopts it
				}
				var eq *capsule.EquivocationError
				if errors.As(rerr, &eq) {
					err = rerr
				} else if !errors.Is(rerr, errAgreed) {
					err = fmt.Errorf("%w (reconciling: %w)", err, rerr)
				}
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
		if !resp.More && !reconciled {
			return nil
		}
	}
}

// errNAK: a router answered an anti-entropy request with a NAK.
var errNAK = errors.New("refused by a router")

// unreachable reports whether err means the peer did not answer at all.
func unreachable(err error) bool {
	return errors.Is(err, errNAK) || errors.Is(err, context.DeadlineExceeded)
}

// syncState is anti-entropy's bookkeeping: the parallel slots, the
// capsules being compared, each peer's back-off, and the requests whose
// NAKs end them early.
type syncState struct {
	slots   chan struct{} // capsules whose peers answered last time
	suspect chan struct{} // capsules with a peer that did not

	mu       sync.Mutex
	running  map[pdu.Name]bool
	suspects map[pdu.Name]bool
	waits    map[pdu.Name]peerWait
	asks     map[uint64]*askWait
}

type peerWait struct {
	until time.Time
	wait  time.Duration
}

type askWait struct {
	dst  pdu.Name
	sent []byte // the request message: a NAK echoes its first bytes
	nak  chan pdu.Code
}

func newSyncState(parallel int) *syncState {
	return &syncState{slots: make(chan struct{}, parallel), suspect: make(chan struct{}, max(1, parallel/4)),
		running: map[pdu.Name]bool{}, suspects: map[pdu.Name]bool{},
		waits: map[pdu.Name]peerWait{}, asks: map[uint64]*askWait{}}
}

// pool is the slots capsule c waits for.
func (st *syncState) pool(c pdu.Name) chan struct{} {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.suspects[c] {
		return st.suspect
	}
	return st.slots
}

func (st *syncState) setSuspect(c pdu.Name, v bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if v {
		st.suspects[c] = true
	} else {
		delete(st.suspects, c)
	}
}

func (st *syncState) begin(c pdu.Name) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.running[c] {
		return false
	}
	st.running[c] = true
	return true
}

func (st *syncState) end(c pdu.Name) {
	st.mu.Lock()
	delete(st.running, c)
	st.mu.Unlock()
}

// due reports whether peer may be asked now.
func (st *syncState) due(peer pdu.Name, now time.Time) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return !now.Before(st.waits[peer].until)
}

// heard clears the back-off of a node that just sent us something: it is
// reachable again.
func (st *syncState) heard(n pdu.Name) {
	st.mu.Lock()
	if _, ok := st.waits[n]; ok {
		delete(st.waits, n)
	}
	st.mu.Unlock()
}

// answered records the outcome of asking peer: an answer (of any status)
// clears its back-off; none doubles it, from interval up to most.
func (st *syncState) answered(peer pdu.Name, ok bool, now time.Time, interval, most time.Duration) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if ok {
		delete(st.waits, peer)
		return
	}
	w := st.waits[peer]
	w.wait = min(max(2*w.wait, interval), most)
	w.until = now.Add(w.wait)
	st.waits[peer] = w
}

func (st *syncState) expectNAK(id uint64, dst pdu.Name, sent []byte) <-chan pdu.Code {
	a := &askWait{dst: dst, sent: sent, nak: make(chan pdu.Code, 1)}
	st.mu.Lock()
	st.asks[id] = a
	st.mu.Unlock()
	return a.nak
}

func (st *syncState) forgetNAK(id uint64) {
	st.mu.Lock()
	delete(st.asks, id)
	st.mu.Unlock()
}

// nak hands a NAK to the request it refuses. The NAK echoes the start of
// the refused PDU: its header must name self as source and the request's
// peer as destination, and the echoed payload must be the start of the
// request (which holds its random id), so no one who did not see the
// request can cut it short. It reports whether a request took it.
func (st *syncState) nak(self pdu.Name, m client.Message) bool {
	echo := m.Payload
	if len(echo) < pdu.HeaderLen || echo[0] != pdu.Version {
		return false
	}
	hl := int(echo[1]) * 4
	if hl < pdu.HeaderLen || len(echo) < hl+16 || pdu.Name(echo[44:76]) != self {
		return false
	}
	dst, body := pdu.Name(echo[12:44]), echo[hl:]
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, a := range st.asks {
		if a.dst == dst && bytes.HasPrefix(a.sent, body) {
			select {
			case a.nak <- m.Code:
			default:
			}
			return true
		}
	}
	return false
}

// syncFailures remembers which (capsule, peer) pairs anti-entropy cannot
// sync, so a failure is logged at WARN once when it starts, the recovery
// at INFO once, and the rounds in between only at DEBUG (a replica down
// for an hour is two lines, not thousands; gdp_capsuled_sync_errors_total
// counts every round).
type syncFailures struct {
	mu     sync.Mutex
	failed map[[2]pdu.Name]bool
}

func (f *syncFailures) report(log *zap.Logger, c, peer pdu.Name, err error) {
	f.mu.Lock()
	if f.failed == nil {
		f.failed = map[[2]pdu.Name]bool{}
	}
	k := [2]pdu.Name{c, peer}
	was := f.failed[k]
	if err != nil {
		f.failed[k] = true
	} else {
		delete(f.failed, k)
	}
	f.mu.Unlock()
	switch {
	case err != nil && !was:
		log.Warn("anti-entropy with a replica failing; retrying", logging.Capsule(c), logging.Peer(peer), zap.Error(err))
	case err != nil:
		log.Debug("anti-entropy", logging.Capsule(c), logging.Peer(peer), zap.Error(err))
	case was:
		log.Info("anti-entropy with the replica works again", logging.Capsule(c), logging.Peer(peer))
	}
}
