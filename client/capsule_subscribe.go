package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/wire"
)

// Event is one verified push: new entries (possibly none) and the
// heartbeat that covers them.
type Event struct {
	Entries   []capsule.Record
	Heartbeat *capsule.Heartbeat
}

// Subscription follows a capsule: the server pushes new entries and
// heartbeats as they become durable. Pushes are datagrams: when one is
// lost the subscription notices the gap and resumes from the first missing
// seqno, asking again (after the client's timeout, then doubling) until a
// push brings it; it renews its lease before it runs out. It needs no
// goroutine of its own: Next does the work.
type Subscription struct {
	r     *Reader
	id    uint64
	ch    chan *wire.Message
	resp  <-chan wire.Reply
	next  uint64
	lease time.Duration
	renew time.Time
	kick  chan struct{}
	// A SUBSCRIBE sent to resume from resumeFrom (after a gap, a lost
	// proof base or a Renew) that no push has answered yet: until resumeAt
	// no other is sent for the same gap (several would only land on
	// different replicas), then it is sent again with the wait doubled, up
	// to the renewal interval. Zero resumeAt: nothing outstanding.
	resumeFrom uint64
	resumeAt   time.Time
	resumeWait time.Duration
	// owed is the highest head the server has shown (verified heartbeats,
	// answers to SUBSCRIBE): while next ≤ owed a push is due, and if none
	// brings next within the timeout the subscription resumes.
	owed uint64
	// lostTo is the last seqno of pushes dropped because their proof
	// rested on a heartbeat this subscriber did not hold yet (they came
	// ahead of a page still on its way): once that page is delivered,
	// those seqnos are asked for at once, since their pushes will not
	// come again.
	lostTo uint64
	// proofSent: the last SUBSCRIBE sent carried the requester proof (an
	// answer to a renewal marks the server that gave it, RequestAnswered).
	proofSent bool
	// awaiting: a SUBSCRIBE was sent (at sentAt) and no answer came
	// since. One sent after the client's Timeout without an answer
	// carries the proof (RequestUnanswered): the server may have
	// restarted and forgotten it, as for any request left unanswered.
	awaiting bool
	sentAt   time.Time
}

// Renew makes Next subscribe again from the next seqno at once instead of at
// the lease renewal: for a caller that knows its path to the server changed
// (re-attached to another router), so pushes resume without waiting.
// Safe from any goroutine.
func (s *Subscription) Renew() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Lease is how long a subscription lives on the server without renewal.
const Lease = 30 * time.Second

// Subscribe follows the capsule from seqno from (0: only what comes after
// the current head).
func (r *Reader) Subscribe(ctx context.Context, from uint64) (*Subscription, error) {
	cc := r.cc
	id, resp, err := cc.pend.Add(wire.OpSubscribe, 16, answerers(r.dst, r.info.Name)...)
	if err != nil {
		return nil, err
	}
	s := &Subscription{r: r, id: id, ch: make(chan *wire.Message, 256), resp: resp, next: from, lease: Lease, kick: make(chan struct{}, 1)}
	sw := &subWaiter{ch: s.ch}
	if r.dst != r.info.Name {
		sw.asked = r.dst
	}
	cc.mu.Lock()
	cc.subs[id] = sw
	cc.mu.Unlock()
	if err := s.subscribe(ctx, true); err != nil {
		s.drop()
		return nil, err
	}
	return s, nil
}

// subscribe (re)sends SUBSCRIBE from s.next; with wait it waits for the
// server's answer.
func (s *Subscription) subscribe(ctx context.Context, wait bool) error {
	m := &wire.Message{Op: wire.OpSubscribe, ID: s.id, Capsule: s.r.info.Name[:], From: s.next, Lease: uint64(s.lease / time.Millisecond)}
	if hb := s.r.Heartbeat(); hb != nil {
		m.Size = hb.Seqno
	}
	for attempt := 0; ; attempt++ {
		if s.awaiting && time.Since(s.sentAt) >= s.r.cc.opts.Timeout {
			s.r.cc.c.RequestUnanswered(s.r.dst)
		}
		// The send waits for the link at most the client's Timeout
		// (Session 21: it had no deadline, and a link whose send queue
		// stayed full held Next, and the caller's ctx with it, until the
		// link's idle timeout). One that gives up is a SUBSCRIBE lost on
		// the way: a renewal is tried again after the Timeout, a first
		// SUBSCRIBE counts the attempt.
		sctx, cancel := context.WithTimeout(ctx, s.r.cc.opts.Timeout)
		err := s.r.cc.send(sctx, s.r.dst, 0, m)
		blocked := err != nil && sctx.Err() != nil && ctx.Err() == nil
		cancel()
		if err != nil && !blocked {
			return fmt.Errorf("subscribe %s: %w", s.r.info.Name, err)
		}
		if blocked {
			s.renew = time.Now().Add(min(s.r.cc.opts.Timeout, s.lease/3))
			if !wait {
				return nil
			}
			if attempt+1 >= s.r.cc.opts.Attempts {
				if deadline, ok := ctx.Deadline(); !ok || time.Until(deadline) <= 0 {
					return fmt.Errorf("subscribe %s: %w after %d attempts (%w)", s.r.info.Name, ErrNoAnswer, attempt+1, err)
				}
			}
			continue
		}
		s.proofSent, s.awaiting, s.sentAt = m.Proof != nil, true, time.Now()
		s.renew = time.Now().Add(s.lease / 3)
		if !wait {
			return nil
		}
		actx, cancel := context.WithTimeout(ctx, s.r.cc.opts.Timeout)
		rep, err := wire.Wait(actx, s.resp)
		cancel()
		if err == nil {
			s.awaiting = false
			if rep.Msg != nil {
				s.r.cc.c.RequestAnswered(s.r.cc.c.ReplyName(), s.r.dst, rep.From, m.Proof != nil)
			} else {
				s.r.cc.c.RequestUnanswered(s.r.dst)
			}
			if err := rep.Msg.Err(); err != nil {
				return fmt.Errorf("subscribe %s: %w", s.r.info.Name, err)
			}
			if s.next == 0 {
				s.next = rep.Msg.From
			}
			return nil
		}
		// At least Attempts sends, then on until ctx's deadline if it has
		// one (a slow server is waited for, as in CapsuleClient.call).
		deadline, ok := ctx.Deadline()
		if ctx.Err() != nil || (attempt+1 >= s.r.cc.opts.Attempts && (!ok || time.Until(deadline) <= 0)) {
			return fmt.Errorf("subscribe %s: %w after %d attempts", s.r.info.Name, ErrNoAnswer, attempt+1)
		}
	}
}

// Next returns the next verified push. Entries already delivered are
// never delivered twice, and none is skipped.
func (s *Subscription) Next(ctx context.Context) (Event, error) {
	for {
		wait := time.Until(s.renew)
		if !s.resumeAt.IsZero() {
			wait = min(wait, time.Until(s.resumeAt))
		}
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return Event{}, ctx.Err()
		case a := <-s.resp:
			t.Stop()
			// An answer to a renewal: if the server holds nothing past
			// what was delivered, no push is owed. Sent to the capsule's
			// name, it says which replica takes it now (after a failover,
			// one that may not have seen our proof: the next renewal
			// carries it).
			s.awaiting = false
			if a.Msg != nil {
				s.r.cc.c.RequestAnswered(s.r.cc.c.ReplyName(), s.r.dst, a.From, s.proofSent)
			} else {
				// A router's NAK (no route: the server is down): the
				// next renewal carries the proof.
				s.r.cc.c.RequestUnanswered(s.r.dst)
			}
			if a.Msg != nil && a.Msg.Status.Success() {
				if a.Msg.Head < s.next {
					s.resumeAt = time.Time{}
				} else {
					s.owed = max(s.owed, a.Msg.Head)
					s.expect()
				}
			}
			continue
		case <-t.C:
			var err error
			if !s.resumeAt.IsZero() && !time.Now().Before(s.resumeAt) {
				err = s.resume(ctx, true) // no push came: ask again
			} else {
				err = s.subscribe(ctx, false)
			}
			if err != nil {
				return Event{}, err
			}
			continue
		case <-s.kick:
			t.Stop()
			if err := s.resume(ctx, true); err != nil {
				return Event{}, err
			}
			continue
		case m := <-s.ch:
			t.Stop()
			// A push comes only from a server that acknowledged this
			// subscription: the head it claims says what is owed, even
			// when its page cannot be verified yet.
			s.owed = max(s.owed, m.Head)
			entries, err := s.r.verifyPage(m)
			if errors.Is(err, errProofBase) {
				// The server thinks we hold a heartbeat we dropped with a
				// lost page, or this push overtook the page that brings
				// it: tell it what we hold and resume.
				if m.To >= s.next {
					s.lostTo = max(s.lostTo, m.To)
				}
				if err := s.resume(ctx, false); err != nil {
					return Event{}, err
				}
				continue
			}
			if err != nil {
				return Event{}, err
			}
			if len(entries) > 0 {
				first := entries[0].Seqno
				if first > s.next {
					// A push was lost: resume from the gap.
					if err := s.resume(ctx, false); err != nil {
						return Event{}, err
					}
					continue
				}
				skip := int(s.next - first)
				if skip >= len(entries) {
					continue // all seen already
				}
				entries = entries[skip:]
				s.next = entries[len(entries)-1].Seqno + 1
			}
			hb := s.r.Heartbeat()
			if hb != nil {
				s.owed = max(s.owed, hb.Seqno)
			}
			if len(entries) > 0 && s.lostTo >= s.next {
				// Pushes for what comes next were dropped before this
				// page arrived: ask for them now.
				s.lostTo = 0
				if err := s.resume(ctx, true); err != nil {
					return Event{}, err
				}
			} else {
				s.expect()
			}
			return Event{Entries: entries, Heartbeat: hb}, nil
		}
	}
}

// expect arms the resumption timer while records the server has shown
// are not delivered (a push carrying them is due: if it was lost and no
// later push shows the gap, the subscription resumes after the client's
// timeout instead of at the renewal), and disarms it when none are.
func (s *Subscription) expect() {
	switch {
	case s.next > s.owed:
		s.resumeAt = time.Time{}
	case s.resumeAt.IsZero() || s.resumeFrom != s.next:
		s.resumeFrom, s.resumeWait = s.next, s.r.cc.opts.Timeout
		s.resumeAt = time.Now().Add(s.resumeWait)
	}
}

// resume subscribes again from the next seqno wanted, unless (without
// force) a SUBSCRIBE from there is already outstanding and not yet due.
func (s *Subscription) resume(ctx context.Context, force bool) error {
	now := time.Now()
	pending := !s.resumeAt.IsZero() && s.resumeFrom == s.next
	if !force && pending && now.Before(s.resumeAt) {
		return nil
	}
	if pending {
		s.resumeWait = min(2*s.resumeWait, s.lease/3)
	} else {
		s.resumeWait = s.r.cc.opts.Timeout
	}
	s.resumeFrom, s.resumeAt = s.next, now.Add(s.resumeWait)
	return s.subscribe(ctx, false)
}

// Close ends the subscription on the server (best effort) and here. The
// UNSUBSCRIBE waits for the link at most the client's Timeout (Session 21:
// it had no deadline); one that could not be sent leaves the server's
// lease to run out (Lease) and Close returns an ErrTimeout.
func (s *Subscription) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.r.cc.opts.Timeout)
	defer cancel()
	err := s.r.cc.send(ctx, s.r.dst, 0, &wire.Message{Op: wire.OpUnsubscribe, ID: s.id, Capsule: s.r.info.Name[:]})
	s.drop()
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("unsubscribe %s: %w: not sent in %s (the link's send queue stayed full); the server's lease ends it", s.r.info.Name, ErrTimeout, s.r.cc.opts.Timeout)
	}
	return err
}

func (s *Subscription) drop() {
	cc := s.r.cc
	cc.mu.Lock()
	delete(cc.subs, s.id)
	cc.mu.Unlock()
	cc.pend.Done(s.id)
}
