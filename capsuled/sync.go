package capsuled

import (
	"bytes"
	"context"
	"crypto/hmac"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/store"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

// handleSync answers SYNC: whole writer batches from From on, each ending
// at the heartbeat this server stored for it, as many as fit one message.
// Hole entries are left out (their heartbeat declares them), so a peer can
// store each segment with an ordinary append, verified as such.
//
// A SYNC with To is a range SYNC (PROTOCOL.md §8.5, a catch-up window):
// its answer starts right after the first heartbeat held at or after
// From-1 (at From when From-1 is one, or 0) and ends at the first heartbeat
// held at or after To, so that the ranges [From, To] an asker cuts at any
// seqnos it likes are answered back to back, without gaps or overlaps,
// whatever this replica's batches are. One peer has at most
// SyncAnswersPerPeer SYNCs answered at once; more are refused 503. A peer
// is a proven identity over all the names it asks from, and every asker
// that proved nothing is one peer (Session 16: before, each source name
// was; a member holding many names took a worker per name and
// SyncAnswersPerPeer: all of them). Replicas of this version send their
// proof; a replica of before Session 15 is unproven and shares the pool,
// its SYNCs refused 503 asked again at its next round.
func (s *Server) handleSync(r request) *wire.Message {
	m := r.msg
	share := r.asker.shareOf(r.from)
	if !s.syncAnswers.admit(share, s.cfg.SyncAnswersPerPeer) {
		s.met.syncRefused.WithLabelValues(r.asker.shareLabel()).Inc()
		resp := m.Reply(wire.StatusUnavailable)
		resp.Error = fmt.Sprintf("sync_answers_per_peer: %d SYNCs of this peer being answered", s.cfg.SyncAnswersPerPeer)
		return resp
	}
	defer s.syncAnswers.release(share)
	c := m.CapsuleName()
	head, err := s.st.Head(c)
	if err != nil {
		return fail(m, err)
	}
	resp := m.Reply(wire.StatusOK)
	resp.Head = head.Seqno
	if head.Heartbeat != nil {
		// The writer-signed proof of the head: the asker believes the
		// head (its replication-lag figures) only with it (§8.5).
		resp.Heartbeat = head.Heartbeat.Marshal()
	}
	if len(m.Hash) == wire.NonceLen && head.Seqno > 0 && !s.isReplicaPeer(c, r.from) {
		// A challenge from a requester that is not one of the capsule's
		// other replicas (as this server's placement names them): no tag,
		// and none of the challenged entries read, so anyone's ~100-byte
		// SYNC cannot buy up to 65 entry reads and their hashing. A replica
		// newly added to the placement gets its tags once this server has
		// the new placement (meanwhile its checks of this server fail, and
		// are counted on its side).
		s.met.possessionRefused.Inc()
	} else if len(m.Hash) == wire.NonceLen && head.Seqno > 0 {
		// The proof that this replica holds the head it claims (§8.3):
		// the head entry and the samples the asker stated (key 24; none:
		// an asker before sampled tags, one entry), at most
		// MaxPossessionSamples (a request for more is answered with that
		// many, stated, and counted: never more work than that), read
		// within this peer's SyncAnswersPerPeer share. A read that fails
		// leaves the tag out; the asker counts that.
		samples := m.Limit
		if samples > wire.MaxPossessionSamples {
			samples = wire.MaxPossessionSamples
			s.met.samplesClamped.Inc()
		}
		if tag, err := s.possessionTag(c, s.name, m.Hash, head.Seqno, samples); err == nil {
			resp.Possession, resp.Limit = tag, samples
		}
	}
	ranged := m.To > 0
	from, end := m.From, head.Seqno // the first entry and the last heartbeat of the answer
	if ranged {
		if m.From == 0 || m.To < m.From {
			resp = m.Reply(wire.StatusBadRequest)
			resp.Error = "range sync: from must be at least 1 and at most to"
			return resp
		}
		if from, err = s.heartbeatCut(c, m.From-1, head.Seqno); err != nil {
			return fail(m, err)
		}
		from++
		if end, err = s.heartbeatCut(c, m.To, head.Seqno); err != nil {
			return fail(m, err)
		}
		resp.From, resp.To = from, from-1 // an empty range until segments fill it
	}
	if from == 0 || from > head.Seqno || from > end {
		return resp
	}
	budget := wire.MaxMessage - 512 - len(resp.Heartbeat) // no proofs in a SYNC answer
	// The heartbeats that end segments, from one scan of their table: at
	// most MaxSegments, and past the first only within MaxRecords seqnos
	// of from (an answer holds no more records than that).
	type heldHB struct {
		seqno uint64
		raw   []byte
	}
	var hbs []heldHB
	err = s.st.HeartbeatsRaw(c, from, end, func(seq uint64, raw []byte) bool {
		if len(hbs) > 0 && (len(hbs) >= wire.MaxSegments || seq >= from+wire.MaxRecords) {
			return false
		}
		hbs = append(hbs, heldHB{seq, append([]byte(nil), raw...)})
		return true
	})
	if err != nil {
		return fail(m, err)
	}
	var seg wire.Segment
	segBytes := 0
	next := from
	if len(hbs) > 0 {
		err = s.st.ReadRaw(c, from, hbs[len(hbs)-1].seqno, func(seq uint64, raw []byte) error {
			e, err := capsule.UnmarshalRecord(raw)
			if err != nil {
				return err
			}
			if !e.Hole {
				seg.Records = append(seg.Records, append([]byte(nil), raw...))
				segBytes += len(raw) + 5
			}
			if seq != hbs[0].seqno {
				if len(seg.Records) > wire.MaxRecords || segBytes > budget {
					return errStop // a batch larger than one message: cannot happen for appended batches
				}
				return nil
			}
			seg.Heartbeat = hbs[0].raw
			hbs = hbs[1:]
			segBytes += len(seg.Heartbeat) + 16
			if (segBytes > budget && len(resp.Segments) > 0) || len(resp.Segments) >= wire.MaxSegments {
				return errStop
			}
			budget -= segBytes
			resp.Segments = append(resp.Segments, seg)
			next = seq + 1
			seg, segBytes = wire.Segment{}, 0
			if len(hbs) == 0 {
				return errStop
			}
			return nil
		})
	}
	if err != nil && !errors.Is(err, errStop) {
		return fail(m, err)
	}
	resp.From, resp.To = from, next-1
	resp.More = next <= end
	return resp
}

// heartbeatCut is the seqno of the first heartbeat of capsule c held at or
// after at (at itself when at is 0), or head when there is none: where a
// range SYNC's answer is cut.
func (s *Server) heartbeatCut(c pdu.Name, at, head uint64) (uint64, error) {
	if at == 0 || at >= head {
		return min(at, head), nil
	}
	cut := head
	err := s.st.HeartbeatsRaw(c, at, head, func(seq uint64, _ []byte) bool {
		cut = seq
		return false
	})
	return cut, err
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

// syncAll starts comparing every capsule with its peers, except those a
// writer is feeding: a capsule that took a writer's batch in the last
// SyncInterval has its missing entries reported by the writer's next batch
// (it starts beyond the head: StatusGap, and a forced sync), while pulling
// from a peer now would only fetch, verify and store a second time the
// batches the writer has in flight (with a busy writer, the replicas
// pulled half its records from each other). It is compared again once the
// writer has been quiet for a SyncInterval.
func (s *Server) syncAll(ctx context.Context) {
	now := time.Now()
	for _, p := range s.places.all() {
		if ctx.Err() != nil {
			return
		}
		if s.sync.beingFed(p.name, now, s.cfg.SyncInterval) {
			s.met.syncFed.Inc()
			continue
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
	if _, share := s.storageUsed(p); share != "" {
		// Its creator (or its domain) holds its share of the disk: pull
		// nothing (the APPENDs are refused too); this replica stays
		// behind, as its lag shows.
		s.met.storageRefused.WithLabelValues("sync", share).Inc()
		return true
	}
	var wg sync.WaitGroup
	var silent atomic.Bool
	bulk := &bulkPull{}
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
			err := s.pullFrom(ctx, c, peer, bulk)
			if ctx.Err() != nil {
				return
			}
			s.repl.failed(c, peer, err)
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

// pullFrom copies peer's entries beyond our head. Every segment goes
// through the store's append path, which verifies the heartbeat
// signature, the hash chain and the Merkle root before storing: a lying
// peer gets nothing stored. A segment on another line of the log than ours
// stores nothing either (AppendFromPeer, AppendSegments): reconcile asks
// every replica which line stands, and only a fork it finds genuine is
// judged (evidence stored). Our head can move between the SYNC and its
// answer (a writer's batches land meanwhile), so a segment from another
// writer may overlap entries we took since: that is no evidence of a fork
// by itself.
//
// A replica catching up waits for the network and for its disk at the same
// time, not in turn: the segments of one answer are stored together
// (verified one by one, one fsync for all), and the next request goes out
// while they are being stored. bulk lets one peer at a time stream a long
// catch-up; the others wait (while it makes progress) and then ask from
// the new head, so each record crosses the network and is verified once,
// and every peer is still asked until it has nothing more.
func (s *Server) pullFrom(ctx context.Context, c, peer pdu.Name, bulk *bulkPull) error {
	defer bulk.release(peer)
	var storing <-chan pullResult // the previous answer's segments, being stored
	next := uint64(0)             // the next seqno to ask for; 0: from the head
	// target is the peer's head in its first answer: the pull stops there
	// rather than chase a head that moves while a writer appends. The
	// writer's batches reach this replica too; a pull that went on would
	// fetch, verify and store them a second time (a batch that finds a gap
	// here forces a sync again).
	target := uint64(0)
	// windowed: the rest of a long catch-up is asked for in ranges, up to
	// SyncWindow at once (pullWindow); off after a peer answered a range
	// out of line (one that does not know range SYNCs answers from From).
	windowed := s.cfg.SyncWindow > 1
	for {
		if next == 0 {
			head, err := s.st.Head(c)
			if err != nil {
				return err
			}
			next = head.Seqno + 1
		}
		resp, err := s.askSync(ctx, c, peer, next, 0)
		if storing != nil {
			r := <-storing
			storing = nil
			if r.done || r.err != nil {
				return r.err
			}
			if r.reconciled {
				next = 0 // the head moved to the peer's line: ask again from it
				continue
			}
		}
		if err != nil {
			return err
		}
		if len(resp.Segments) == 0 {
			return nil
		}
		if target == 0 {
			target = resp.Head
		}
		segs, derr := decodeSegments(resp.Segments)
		last := uint64(0)
		if len(segs) > 0 {
			last = segs[len(segs)-1].Heartbeat.Seqno
		}
		storing = s.storeAnswer(ctx, c, peer, resp.Head, segs, derr)
		more := resp.More && derr == nil && last < target
		switch {
		case !more:
		case last < next:
			next = 0 // nothing beyond what was asked for: ask again from the head
		default:
			next = last + 1
		}
		if more {
			if wait := bulk.claim(peer); wait != nil {
				// Another peer is streaming this capsule: store what came,
				// then wait while it makes progress, and go on from the head.
				r := <-storing
				storing = nil
				if r.done || r.err != nil {
					return r.err
				}
				s.awaitBulk(ctx, c, wait)
				next = 0
				continue
			}
			if windowed && next == last+1 && last == resp.To {
				// next follows a heartbeat of the peer's: the rest is cut
				// into ranges as long as this answer was.
				r := s.pullWindow(ctx, c, peer, storing, next, last-resp.From+1, target)
				storing = nil
				switch {
				case errors.Is(r.err, errMisaligned):
					windowed = false
				case r.done || r.err != nil:
					return r.err
				}
				next = 0 // done (or reconciled): a plain SYNC from the head ends the pull
				continue
			}
		}
		if !more {
			r := <-storing
			if r.done || r.err != nil || !r.reconciled {
				return r.err
			}
			storing, next = nil, 0
		}
	}
}

// errMisaligned: a range SYNC's answer did not start where the answer
// before it ended, or did not end where it said.
var errMisaligned = errors.New("sync answer out of line")

// rangeAnswers are the answers to one range of a window, in order; err
// ends the range after them.
type rangeAnswers struct {
	i    int
	msgs []*wire.Message
	err  error
}

// pullWindow asks peer for capsule c's entries from next through target in
// ranges of span seqnos, up to SyncWindow ranges at once (range SYNCs,
// PROTOCOL.md §8.5), and stores the answers in range order as they
// complete, every answer that arrived in order with one AppendSegments
// (verified as any append, one group commit), while later ranges are on
// their way. storing is the answer before next, being stored. An answer
// that does not start where the one before it ended, or whose segments do
// not end where it says, is refused (nothing of it stored) and counted
// (sync_errors_total{reason="misaligned"}): the pull ends with
// errMisaligned. The first failure ends the window; everything stored
// before it is durable.
func (s *Server) pullWindow(ctx context.Context, c, peer pdu.Name, storing <-chan pullResult, next, span, target uint64) pullResult {
	askCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	window := s.cfg.SyncWindow
	span = max(span, 1)
	answers := make(chan rangeAnswers, window)
	held := map[int]rangeAnswers{}
	issued, inflight, stored := 0, 0, 0
	expect := next // where the next answer to store must start
	var out pullResult
	stop := false
	for {
		for !stop && inflight < window && next <= target {
			i, lo, hi := issued, next, min(next+span-1, target)
			issued, inflight, next = issued+1, inflight+1, hi+1
			go func() {
				msgs, err := s.askRange(askCtx, c, peer, lo, hi)
				answers <- rangeAnswers{i, msgs, err}
			}()
		}
		if storing == nil && !stop {
			var segs []store.Segment
			var derr error
			peerHead := uint64(0)
		gather:
			for a, ok := held[stored]; ok; a, ok = held[stored] {
				delete(held, stored)
				stored++
				for _, m := range a.msgs {
					ds, err := decodeSegments(m.Segments)
					if err == nil {
						err = checkRangeAnswer(m, ds, expect)
						if err != nil {
							s.met.syncErrors.WithLabelValues("misaligned").Inc()
							out.err = fmt.Errorf("range sync from %s: %w", peer, err)
							stop = true
							break gather
						}
					}
					segs = append(segs, ds...)
					peerHead = max(peerHead, m.Head)
					expect = m.To + 1
					if err != nil {
						derr, stop = err, true // stored up to it, then the pull fails
						break gather
					}
				}
				if a.err != nil {
					out.err, stop = a.err, true
					break
				}
			}
			if len(segs) > 0 || derr != nil {
				storing = s.storeAnswer(ctx, c, peer, peerHead, segs, derr)
			}
		}
		if stop {
			cancel()
		}
		if inflight == 0 && storing == nil && (stop || stored == issued) {
			return out
		}
		select {
		case a := <-answers:
			inflight--
			held[a.i] = a
		case r := <-storing:
			storing = nil
			if r.err != nil || r.done || r.reconciled {
				if out.err == nil {
					out = r
				}
				stop = true
			}
		}
	}
}

// checkRangeAnswer checks that m, a range SYNC's answer whose segments
// decoded to segs, starts at expect, that each segment starts right after
// the one before, and that the last ends at To: so the next answer's start
// is checked against where this one really ended.
func checkRangeAnswer(m *wire.Message, segs []store.Segment, expect uint64) error {
	if m.From != expect {
		return fmt.Errorf("%w: the answer starts at %d, the range before ended at %d", errMisaligned, m.From, expect-1)
	}
	if m.To+1 < m.From {
		return fmt.Errorf("%w: the answer ends at %d before it starts at %d", errMisaligned, m.To, m.From)
	}
	prev := m.From - 1
	for i, seg := range segs {
		// Each segment starts right after the one before (with a record,
		// or with a hole its heartbeat declares) and ends at its heartbeat.
		hb := seg.Heartbeat.Seqno
		first := hb + 1
		if len(seg.Records) > 0 {
			first = seg.Records[0].Seqno
		}
		for _, h := range seg.Heartbeat.Holes {
			if h > prev {
				first = min(first, h)
				break
			}
		}
		if first != prev+1 || (len(seg.Records) > 0 && seg.Records[len(seg.Records)-1].Seqno > hb) {
			return fmt.Errorf("%w: segment %d (entries from %d, heartbeat %d) is not the next in [%d, %d]", errMisaligned, i, first, hb, prev+1, m.To)
		}
		prev = hb
	}
	if prev != m.To { // segments beyond To, or a To beyond them
		return fmt.Errorf("%w: the answer says it ends at %d, its segments at %d", errMisaligned, m.To, prev)
	}
	return nil
}

// askRange asks peer for the range [lo, hi] of capsule c (range SYNCs),
// again from where an answer stopped while it has more, and returns the
// answers in order. A peer answering 503 (its sync_answers_per_peer share
// of SYNCs being answered) is asked again after a short pause, for at most
// PeerTimeout.
func (s *Server) askRange(ctx context.Context, c, peer pdu.Name, lo, hi uint64) ([]*wire.Message, error) {
	var out []*wire.Message
	from := lo
	busyUntil := time.Now().Add(s.cfg.PeerTimeout)
	for {
		resp, err := s.askSync(ctx, c, peer, from, hi)
		var se *wire.StatusError
		if errors.As(err, &se) && se.Status == wire.StatusUnavailable && time.Now().Before(busyUntil) {
			select {
			case <-time.After(time.Duration(5+rand.IntN(20)) * time.Millisecond):
				continue
			case <-ctx.Done():
				return out, ctx.Err()
			}
		}
		if err != nil {
			return out, err
		}
		out = append(out, resp)
		if !resp.More {
			return out, nil
		}
		if resp.To < resp.From || resp.To >= hi {
			return out, nil // no progress, or a lie: checkRangeAnswer judges what came
		}
		from = resp.To + 1
	}
}

// askSync sends peer a SYNC for capsule c from seqno from (a range SYNC
// through to when to > 0) and returns its successful answer.
// A plain SYNC carries a fresh random nonce (key 11), that the answer's
// possession tag must cover (sawHead), when a check of the peer's head is
// due (checkDue); a range SYNC, a page of a catch-up this server is
// behind in, never does. An answer to a SYNC without a nonce that claims
// another head than the one the peer proved, which this server holds, is
// not shown: the SYNC is asked again at once with a nonce (a range page
// leaves the check pending for the next plain SYNC).
func (s *Server) askSync(ctx context.Context, c, peer pdu.Name, from, to uint64) (*wire.Message, error) {
	check := to == 0 && s.checkDue(c, peer)
	for {
		var nonce []byte
		var samples uint64
		if check {
			nonce = make([]byte, wire.NonceLen)
			if _, err := crand.Read(nonce); err != nil {
				return nil, fmt.Errorf("sync nonce: %w", err)
			}
			samples = s.samples()
		}
		resp, err := s.ask(ctx, peer, &wire.Message{Op: wire.OpSync, Capsule: c[:], From: from, To: to, Hash: nonce, Limit: samples})
		if err != nil {
			if ctx.Err() != nil {
				return nil, err // ended by us (a window that stopped), not the peer
			}
			reason := "unreachable"
			if errors.Is(err, errNAK) {
				reason = "nak"
			}
			s.met.syncErrors.WithLabelValues(reason).Inc()
			return nil, err
		}
		if err := resp.Err(); err != nil {
			reason := "refused"
			if resp.Status == wire.StatusUnavailable {
				reason = "busy"
			}
			s.met.syncErrors.WithLabelValues(reason).Inc()
			return nil, err
		}
		err = s.sawHead(c, peer, challenge{nonce, samples}, resp)
		if errors.Is(err, errCheckDue) {
			if to == 0 && !check {
				check = true
				continue
			}
			err = nil
		}
		if err != nil {
			return nil, err
		}
		return resp, nil
	}
}

// checkDue reports whether a SYNC to peer for capsule c asks for a
// possession tag now (replState.checkDue).
func (s *Server) checkDue(c, peer pdu.Name) bool {
	own, err := s.st.Head(c)
	if err != nil {
		return true
	}
	return s.repl.checkDue(c, peer, own.Seqno, time.Now())
}

// nextCheck is when a check that succeeded at now is due again at the
// latest: between half the PossessionInterval and all of it, at random,
// so the checks of capsules proven in one round spread out.
func (s *Server) nextCheck(now time.Time) time.Time {
	d := s.cfg.PossessionInterval
	if d <= 0 {
		d = DefaultPossessionInterval
	}
	return now.Add(d/2 + time.Duration(rand.Int64N(int64(d/2)+1)))
}

// samples is how many entries besides the head a possession tag this
// server asks for covers (Config.PossessionSamples).
func (s *Server) samples() uint64 {
	if s.cfg.PossessionSamples <= 0 {
		return DefaultPossessionSamples
	}
	return uint64(min(s.cfg.PossessionSamples, wire.MaxPossessionSamples))
}

// minSamples is the fewest samples a peer's possession tag may cover
// (Config.PossessionMinSamples, reloadable).
func (s *Server) minSamples() uint64 {
	if p := s.pol.Load(); p != nil && p.minSamples > 0 {
		return uint64(p.minSamples)
	}
	if s.cfg.PossessionMinSamples > 0 {
		return uint64(s.cfg.PossessionMinSamples)
	}
	return s.samples()
}

// challenge is what a SYNC asked a possession tag over: its nonce (nil:
// none asked for) and the samples it stated (key 24).
type challenge struct {
	nonce   []byte
	samples uint64
}

// errCheckDue: an answer to a SYNC without a nonce claims a head this
// server holds that the peer has not proven; it is not shown.
var errCheckDue = errors.New("a possession check is due")

// sawHead records peer's head for the replication-lag figures from its
// answer to our SYNC (matched to the request by s.ask: its random id, from
// peer only), and only when the answer proves it. First, a heartbeat for
// exactly that head, signed by the capsule's writer key; anything else is
// counted (gdp_capsuled_dropped_total{reason="unproven_head"}) and
// ignored: a peer cannot hide its lag, or make this replica look behind,
// by claiming a head the writer never signed. But heartbeats are public:
// a peer holding an old prefix could copy the newest one. So second, when
// this replica holds the claimed head itself, the answer's possession tag
// over ch (the nonce and samples this SYNC carried, when a check was due:
// askSync) must cover at least minSamples entries, at most those asked,
// and equal the one computed from this replica's own entries (PROTOCOL.md
// §8.3); a check that succeeds is counted
// (possession_checks_total{result="ok"}) and schedules the next. An
// answer to a SYNC without a nonce keeps the head the peer proved last
// shown (heard now) when it repeats it; one claiming another head this
// replica holds is not shown, a check is marked pending, and errCheckDue
// returned (askSync asks again with a nonce). A missing or wrong tag is
// counted (reason="head_not_held", or "too_few_samples" for a tag over
// fewer samples than minSamples, "too_many_samples" over more than asked;
// possession_checks_total{result="failed"}), the head ignored, the check left due, a head shown before
// that this answer puts in doubt withdrawn (one shown on the heartbeat's
// word alone, or one at least as high as this claim), and returned as an
// error (errHeadNotHeld): the pull from that peer fails with it, so Status
// shows it as the peer's error and anti-entropy logs it at WARN once
// (syncFailures) — there is nothing to pull from a peer whose claimed head
// this replica holds. While this replica is behind the claimed head it
// cannot check the tag: the head shows on the heartbeat alone (the
// catch-up from that peer pulls and verifies its records), and is checked
// once this replica gets there. Head 0 (an empty log) needs no proof:
// claiming less than one holds only makes oneself look behind.
func (s *Server) sawHead(c, peer pdu.Name, ch challenge, resp *wire.Message) error {
	now := time.Now()
	own, err := s.st.Head(c)
	if err != nil {
		return nil
	}
	if resp.Head == 0 {
		s.repl.checked(c, peer, 0, own.Seqno, now, s.nextCheck(now))
		return nil
	}
	// A heartbeat already verified for this peer's head is not verified
	// again: in the steady state every anti-entropy answer repeats it,
	// and an ed25519 verification per answer per capsule would be most of
	// the work. (Nor is the possession tag asked for on every answer:
	// only when a check is due, askSync.)
	if known, ok := s.repl.head(c, peer); !ok || resp.Head != known {
		if err := s.proveHead(c, resp); err != nil {
			s.met.dropped.WithLabelValues("unproven_head").Inc()
			s.repl.unproven(c, peer)
			s.log.Debug("peer head not proven; not shown", logging.Capsule(c), logging.Peer(peer),
				logging.Seqno(resp.Head), logging.Reason("unproven_head"), zap.Error(err))
			return nil
		}
	}
	if own.Seqno < resp.Head {
		s.repl.saw(c, peer, resp.Head, now, false) // not checkable yet
		return nil
	}
	if ch.nonce == nil {
		// No check asked for: the head the peer proved last stays shown
		// when the answer repeats it; another one waits for a check.
		if s.repl.stillHeld(c, peer, resp.Head, now) {
			return nil
		}
		return errCheckDue
	}
	if err := s.checkPossession(c, peer, ch, resp); err != nil {
		reason := "head_not_held"
		switch {
		case errors.Is(err, errTooFewSamples):
			reason = "too_few_samples"
		case errors.Is(err, errTooManySamples):
			reason = "too_many_samples"
		}
		s.met.possessionChecks.WithLabelValues("failed").Inc()
		s.met.dropped.WithLabelValues(reason).Inc()
		s.repl.withdraw(c, peer, resp.Head)
		return fmt.Errorf("%w: head %d: %w; its lag is not shown: check that replica (upgrade it if it predates "+
			"proofs of possession; else it lost entries, holds another line of the log, or lies)", errHeadNotHeld, resp.Head, err)
	}
	s.met.possessionChecks.WithLabelValues("ok").Inc()
	s.repl.checked(c, peer, resp.Head, own.Seqno, now, s.nextCheck(now))
	return nil
}

// errHeadNotHeld: a peer claims a head this replica holds, and its answer
// does not show it holds the entries (a missing or wrong possession tag).
var errHeadNotHeld = errors.New("the peer does not show it holds the head it claims")

// checkPossession checks resp's possession tag, from peer, against the one
// computed for ch from this replica's own entries (it holds resp.Head),
// after the count of samples the answer states (key 24; absent: one, the
// tag of a replica before sampled tags): fewer than minSamples is
// errTooFewSamples (a downgrade, refused before any entry is read), more
// than asked errTooManySamples (this server reads no more than it chose).
func (s *Server) checkPossession(c, peer pdu.Name, ch challenge, resp *wire.Message) error {
	if len(resp.Possession) == 0 {
		return errors.New("no possession tag (a replica before proofs of possession)")
	}
	stated := max(resp.Limit, 1)
	if low := s.minSamples(); stated < low {
		return fmt.Errorf("%w: the answer states %d samples, possession_min_samples is %d (a replica before "+
			"sampled tags states none, 1: while upgrading, set possession_min_samples: 1)", errTooFewSamples, stated, low)
	}
	if stated > max(ch.samples, 1) {
		return fmt.Errorf("%w: the answer states %d samples, %d were asked", errTooManySamples, stated, ch.samples)
	}
	want, err := s.possessionTag(c, peer, ch.nonce, resp.Head, resp.Limit)
	if err != nil {
		return fmt.Errorf("possession tag: reading our own entries: %w", err)
	}
	if !hmac.Equal(want, resp.Possession) {
		if resp.Limit == 0 {
			return fmt.Errorf("the possession tag does not match this replica's entries %d and %d",
				resp.Head, wire.PossessionSeqno(c, ch.nonce, resp.Head))
		}
		return fmt.Errorf("the possession tag does not match this replica's entry %d and the %d the nonce picks",
			resp.Head, min(resp.Limit, resp.Head))
	}
	return nil
}

// errTooFewSamples, errTooManySamples: a possession tag covers fewer
// sampled entries than this server accepts, or more than it asked for.
var (
	errTooFewSamples  = errors.New("too few samples")
	errTooManySamples = errors.New("more samples than asked")
)

// isReplicaPeer reports whether from is one of capsule c's other replicas
// in the placement this server holds for c (only those are answered a
// possession tag).
func (s *Server) isReplicaPeer(c, from pdu.Name) bool {
	p := s.places.get(c)
	return p != nil && from != s.name && slices.Contains(p.replicas, from)
}

// possessionTag is the possession tag of the replica of capsule c named
// server at head, for nonce, from this store's entries: with samples 0
// the one-entry tag of replicas before sampled tags (wire.PossessionTag:
// the head's entry and the one the nonce picks), else wire.
// PossessionSampledTag over the head's entry and min(samples, head) the
// nonce picks — 1 + that many entry reads.
func (s *Server) possessionTag(c, server pdu.Name, nonce []byte, head, samples uint64) ([]byte, error) {
	read := func(seq uint64) ([]byte, error) {
		var out []byte
		err := s.st.ReadRaw(c, seq, seq, func(_ uint64, raw []byte) error {
			out = append([]byte(nil), raw...)
			return nil
		})
		return out, err
	}
	he, err := read(head)
	if err != nil {
		return nil, err
	}
	if samples == 0 {
		ke, err := read(wire.PossessionSeqno(c, nonce, head))
		if err != nil {
			return nil, err
		}
		return wire.PossessionTag(c, server, nonce, head, he, ke), nil
	}
	seqs := wire.PossessionSamples(c, nonce, head, samples)
	entries := make([][]byte, len(seqs))
	for i, k := range seqs {
		if entries[i], err = read(k); err != nil {
			return nil, err
		}
	}
	return wire.PossessionSampledTag(c, server, nonce, head, samples, he, entries), nil
}

// proveHead checks that resp carries the writer's heartbeat for resp.Head.
func (s *Server) proveHead(c pdu.Name, resp *wire.Message) error {
	if len(resp.Heartbeat) == 0 {
		return errors.New("no heartbeat for the head")
	}
	hb, err := capsule.UnmarshalHeartbeat(resp.Heartbeat)
	if err != nil {
		return fmt.Errorf("head heartbeat: %w", err)
	}
	if hb.Seqno != resp.Head {
		return fmt.Errorf("head heartbeat is for seqno %d, the answer claims %d", hb.Seqno, resp.Head)
	}
	info, _, err := s.st.Info(c)
	if err != nil {
		return err
	}
	return hb.Verify(c, info.Writer)
}

// decodeSegments decodes a SYNC answer's segments up to the first that
// does not decode, whose error it returns beside the ones before it.
func decodeSegments(in []wire.Segment) ([]store.Segment, error) {
	out := make([]store.Segment, 0, len(in))
	for _, seg := range in {
		recs, hb, err := decodeBatch(seg.Records, seg.Heartbeat)
		if err != nil {
			return out, err
		}
		out = append(out, store.Segment{Records: recs, Heartbeat: hb})
	}
	return out, nil
}

// pullResult is what storing one SYNC answer came to: reconciled (this
// replica adopted the peer's line: pull on from the new head), done (ours
// is the majority's line: the peer adopts it), or an error that ends the
// pull.
type pullResult struct {
	reconciled, done bool
	err              error
}

// storeAnswer stores segs, a SYNC answer from peer whose head is
// peerHead, in the background; derr is the error of the segment after
// segs that did not decode (nil: none). A segment that does not extend our
// line is settled with the other replicas (reconcile).
func (s *Server) storeAnswer(ctx context.Context, c, peer pdu.Name, peerHead uint64, segs []store.Segment, derr error) <-chan pullResult {
	out := make(chan pullResult, 1)
	go func() {
		n, err := s.st.AppendSegments(ctx, c, segs)
		for _, seg := range segs[:n] {
			s.met.synced.Add(float64(len(seg.Records)))
		}
		if n > 0 {
			s.watch.changed(c)
		}
		if err == nil {
			err = derr
		}
		if err == nil {
			out <- pullResult{}
			return
		}
		if diverged(err) {
			adopted, rerr := s.reconcile(ctx, c, peer, peerHead)
			if adopted {
				out <- pullResult{reconciled: true}
				return
			}
			if rerr == nil {
				out <- pullResult{done: true} // ours is the majority's line: the peer adopts it
				return
			}
			var eq *capsule.EquivocationError
			if errors.As(rerr, &eq) {
				err = rerr
			} else if !errors.Is(rerr, errAgreed) {
				err = fmt.Errorf("%w (reconciling: %w)", err, rerr)
			}
		}
		var eq *capsule.EquivocationError
		if errors.As(err, &eq) {
			s.met.equivocations.Inc()
			s.logLim.Warn(s.log, c.String()+" "+peer.String(), "forked writer detected during anti-entropy", logging.Capsule(c), logging.Peer(peer), logging.Seqno(eq.Evidence.Size))
		}
		s.met.syncErrors.WithLabelValues("verify").Inc()
		out <- pullResult{err: fmt.Errorf("segment %d from %s: %w", n, peer, err)}
	}()
	return out
}

// awaitBulk waits until the peer streaming capsule c is done (wait is
// closed), as long as our head moves: a peer that stops making progress
// (slow, gone, or lying) holds up the others for one PeerTimeout at most.
func (s *Server) awaitBulk(ctx context.Context, c pdu.Name, wait <-chan struct{}) {
	t := time.NewTicker(s.cfg.PeerTimeout)
	defer t.Stop()
	var was uint64
	if h, err := s.st.Head(c); err == nil {
		was = h.Seqno
	}
	for {
		select {
		case <-wait:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h, err := s.st.Head(c)
		if err != nil || h.Seqno == was {
			return
		}
		was = h.Seqno
	}
}

// bulkPull lets one peer at a time stream a capsule's catch-up (pullFrom).
type bulkPull struct {
	mu    sync.Mutex
	owner pdu.Name
	held  bool
	done  chan struct{}
}

// claim makes peer the one streaming unless another one is; then it
// returns a channel closed when that one is done.
func (b *bulkPull) claim(peer pdu.Name) <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.held {
		b.held, b.owner, b.done = true, peer, make(chan struct{})
		return nil
	}
	if b.owner == peer {
		return nil
	}
	return b.done
}

// release ends peer's turn if it is streaming.
func (b *bulkPull) release(peer pdu.Name) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held && b.owner == peer {
		b.held = false
		close(b.done)
	}
}

// peerCount counts what each peer has under way (SYNCs being answered,
// bulk read streams open), so that no peer takes more than its share.
type peerCount struct {
	mu sync.Mutex
	n  map[pdu.Name]int
}

// admit takes one of peer's limit slots; false: it holds them all.
func (p *peerCount) admit(peer pdu.Name, limit int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n[peer] >= limit {
		return false
	}
	if p.n == nil {
		p.n = map[pdu.Name]int{}
	}
	p.n[peer]++
	return true
}

func (p *peerCount) release(peer pdu.Name) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n[peer]--; p.n[peer] <= 0 {
		delete(p.n, peer)
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
	fedAt    map[pdu.Name]time.Time // when a writer's batch last extended the capsule here
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
		waits: map[pdu.Name]peerWait{}, asks: map[uint64]*askWait{}, fedAt: map[pdu.Name]time.Time{}}
}

// fed records that a writer's batch extended capsule c now.
func (st *syncState) fed(c pdu.Name, now time.Time) {
	st.mu.Lock()
	st.fedAt[c] = now
	st.mu.Unlock()
}

// unfed forgets capsule c's mark (c was deleted).
func (st *syncState) unfed(c pdu.Name) {
	st.mu.Lock()
	delete(st.fedAt, c)
	st.mu.Unlock()
}

// beingFed reports whether a writer's batch extended capsule c within the
// last interval; an older mark is forgotten.
func (st *syncState) beingFed(c pdu.Name, now time.Time, interval time.Duration) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	t, ok := st.fedAt[c]
	if ok && now.Sub(t) >= interval {
		delete(st.fedAt, c)
		return false
	}
	return ok
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

// syncFailureReason is the reason field of an anti-entropy failure's log
// line: head_not_held (the peer claims a head it does not show it holds),
// nak (its router answered NAK), refused (the peer answered an error
// status), or sync_failed (no answer, or records that did not verify:
// the error says which).
func syncFailureReason(err error) string {
	var se *wire.StatusError
	switch {
	case errors.Is(err, errHeadNotHeld):
		return "head_not_held"
	case errors.Is(err, errNAK):
		return "nak"
	case errors.As(err, &se):
		return "refused"
	}
	return "sync_failed"
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
		log.Warn("anti-entropy with a replica failing; retrying", logging.Capsule(c), logging.Peer(peer),
			logging.Reason(syncFailureReason(err)), zap.Error(err))
	case err != nil:
		log.Debug("anti-entropy", logging.Capsule(c), logging.Peer(peer), logging.Reason(syncFailureReason(err)), zap.Error(err))
	case was:
		log.Info("anti-entropy with the replica works again", logging.Capsule(c), logging.Peer(peer))
	}
}
