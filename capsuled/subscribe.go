package capsuled

import (
	"context"
	"sync"
	"time"

	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/pdu"
)

// watchers wake subscriptions when a capsule's durable head moves: each
// capsule has a channel that is closed (and replaced) on every change.
type watchers struct {
	mu sync.Mutex
	m  map[pdu.Name]chan struct{}
}

func newWatchers() *watchers { return &watchers{m: map[pdu.Name]chan struct{}{}} }

// wait returns the channel closed at c's next change.
func (w *watchers) wait(c pdu.Name) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch := w.m[c]
	if ch == nil {
		ch = make(chan struct{})
		w.m[c] = ch
	}
	return ch
}

func (w *watchers) changed(c pdu.Name) {
	w.mu.Lock()
	ch := w.m[c]
	delete(w.m, c)
	w.mu.Unlock()
	if ch != nil {
		close(ch)
	}
}

// subKey identifies a subscription: the subscriber and its request id.
type subKey struct {
	who pdu.Name
	id  uint64
}

// subscription pushes one capsule's new entries to one subscriber. Its
// goroutine sends everything from next to the durable head, then sleeps
// until the head moves, the lease ends, or it is renewed or cancelled.
type subscription struct {
	key subKey
	// share is whose share it counts in: its subscriber's identity, or
	// unprovenGroup (asker.ident), as of its last SUBSCRIBE (a renewal
	// moves it: handleSubscribe). It and domain change under
	// subscriptions.mu.
	share pdu.Name
	// domain is the domain whose membership proved the subscriber (zero:
	// unproven): a reload that stops trusting it ends the subscription
	// (Session 18, subscriptions.untrust).
	domain pdu.Name
	c      pdu.Name
	mu     sync.Mutex
	next   uint64 // first seqno not yet pushed
	lastHB uint64 // seqno of the last heartbeat pushed
	lastT  int64  // its time
	known  uint64 // size of the newest heartbeat the subscriber holds
	expiry time.Time
	poke   chan struct{}
	cancel context.CancelFunc
}

// subscriptions are the live subscriptions, shared fairly among
// subscribers: a proven identity, whatever names it subscribes from
// (Session 15; before, each source name was a subscriber, and a member
// holding thousands of names had thousands of shares), or the pool of
// every subscriber that proved nothing (askerOf). Each identity may hold
// MaxSubscriptionsPerSubscriber; the pool MaxSubscriptionsUnproven, and
// each of its names MaxSubscriptionsPerSubscriber of those. When the
// server is at MaxSubscriptions a share holding fewer than the largest
// (less one) takes a subscription from that one. One member holding every
// subscription can therefore never keep another from its first.
type subscriptions struct {
	s     *Server
	mu    sync.Mutex
	m     map[subKey]*subscription
	byWho map[pdu.Name]map[subKey]*subscription // by share
	// poolNames counts the pool's subscriptions per source name.
	poolNames map[pdu.Name]int
	// byCount[k] holds the subscribers holding exactly k subscriptions,
	// and most is the largest k with a holder: admit finds the largest
	// holder without scanning every subscriber under mu.
	byCount map[int]map[pdu.Name]struct{}
	most    int
	wg      sync.WaitGroup
}

func newSubscriptions(s *Server) *subscriptions {
	return &subscriptions{s: s, m: map[subKey]*subscription{}, byWho: map[pdu.Name]map[subKey]*subscription{},
		poolNames: map[pdu.Name]int{}, byCount: map[int]map[pdu.Name]struct{}{}}
}

// recount moves who from holding from subscriptions to holding to
// (ss.mu held), keeping byCount and most.
func (ss *subscriptions) recount(who pdu.Name, from, to int) {
	if from > 0 {
		if b := ss.byCount[from]; b != nil {
			delete(b, who)
			if len(b) == 0 {
				delete(ss.byCount, from)
			}
		}
	}
	if to > 0 {
		b := ss.byCount[to]
		if b == nil {
			b = map[pdu.Name]struct{}{}
			ss.byCount[to] = b
		}
		b[who] = struct{}{}
		if to > ss.most {
			ss.most = to
		}
	}
	for ss.most > 0 && len(ss.byCount[ss.most]) == 0 {
		ss.most--
	}
}

// admit decides whether src, whose subscriptions count in share, may
// start one more, evicting one of the largest holder's when the server is
// full (ss.mu held). It returns the refusal's reason, or "".
func (ss *subscriptions) admit(src, share pdu.Name) string {
	pol := ss.s.pol.Load()
	mine := len(ss.byWho[share])
	switch {
	case share == unprovenGroup && ss.poolNames[src] >= pol.maxSubsPer:
		return "subscriber_quota"
	case share == unprovenGroup && mine >= pol.maxSubsUnp:
		return "unproven_quota"
	case share != unprovenGroup && mine >= pol.maxSubsPer:
		return "subscriber_quota"
	}
	if len(ss.m) < pol.maxSubs {
		return ""
	}
	var top pdu.Name
	most := ss.most
	for w := range ss.byCount[most] {
		top = w
		break
	}
	if most <= mine+1 {
		return "subscriptions_full" // shared evenly already
	}
	for _, victim := range ss.byWho[top] {
		ss.drop(victim)
		victim.cancel()
		ss.s.met.subQuota.WithLabelValues("subscription_evicted").Inc()
		break
	}
	return ""
}

// add records a new subscription (ss.mu held).
func (ss *subscriptions) add(sub *subscription) {
	ss.m[sub.key] = sub
	set := ss.byWho[sub.share]
	if set == nil {
		set = map[subKey]*subscription{}
		ss.byWho[sub.share] = set
	}
	set[sub.key] = sub
	if sub.share == unprovenGroup {
		ss.poolNames[sub.key.who]++
	}
	ss.recount(sub.share, len(set)-1, len(set))
	ss.s.met.subscriptions.Inc()
}

// drop forgets sub if it is still the live one for its key (ss.mu held).
func (ss *subscriptions) drop(sub *subscription) {
	if ss.m[sub.key] != sub {
		return
	}
	delete(ss.m, sub.key)
	if set := ss.byWho[sub.share]; set != nil {
		delete(set, sub.key)
		ss.recount(sub.share, len(set)+1, len(set))
		if len(set) == 0 {
			delete(ss.byWho, sub.share)
		}
	}
	if sub.share == unprovenGroup {
		if ss.poolNames[sub.key.who]--; ss.poolNames[sub.key.who] <= 0 {
			delete(ss.poolNames, sub.key.who)
		}
	}
	ss.s.met.subscriptions.Dec()
}

// handleSubscribe starts a subscription, or renews and repositions the
// one with this id: pushes resume at From (0: after the current head).
func (s *Server) handleSubscribe(r request) *wire.Message {
	m := r.msg
	c := m.CapsuleName()
	head, err := s.st.Head(c)
	if err != nil {
		return fail(m, err)
	}
	lease := time.Duration(m.Lease) * time.Millisecond
	if lease <= 0 || lease > s.cfg.MaxLease {
		lease = s.cfg.MaxLease
	}
	next := m.From
	if next == 0 {
		next = head.Seqno + 1
	}
	ss := s.subs
	k := subKey{r.from, m.ID}
	ss.mu.Lock()
	sub := ss.m[k]
	if sub == nil {
		if reason := ss.admit(r.from, r.ident); reason != "" {
			ss.mu.Unlock()
			s.met.subQuota.WithLabelValues(reason).Inc()
			resp := m.Reply(wire.StatusUnavailable)
			resp.Error = "too many subscriptions (" + reason + ")"
			return resp
		}
		ctx, cancel := context.WithCancel(s.ctx)
		sub = &subscription{key: k, share: r.ident, domain: r.domain, c: c, next: next, known: m.Size, expiry: time.Now().Add(lease), poke: make(chan struct{}, 1), cancel: cancel}
		ss.add(sub)
		ss.wg.Add(1)
		go func() {
			defer ss.wg.Done()
			ss.run(ctx, sub)
		}()
	} else {
		if reason := ss.restand(sub, r.from, r.ident, r.domain); reason != "" {
			ss.mu.Unlock()
			sub.cancel()
			s.met.subQuota.WithLabelValues(reason).Inc()
			resp := m.Reply(wire.StatusUnavailable)
			resp.Error = "too many subscriptions (" + reason + ")"
			return resp
		}
		sub.mu.Lock()
		if m.From != 0 {
			sub.next, sub.lastHB, sub.lastT = m.From, 0, 0
		}
		sub.known = m.Size
		sub.expiry = time.Now().Add(lease)
		sub.mu.Unlock()
	}
	ss.mu.Unlock()
	select {
	case sub.poke <- struct{}{}:
	default:
	}
	resp := m.Reply(wire.StatusOK)
	resp.Head, resp.From, resp.Lease = head.Seqno, next, uint64(lease/time.Millisecond)
	return resp
}

// restand counts a renewed subscription in the share its subscriber,
// from, belongs to now (ident, proven by domain), when that changed since
// it was admitted (it proved itself since, the name now proves another
// identity, or its proof lapsed), as a new subscription would be (Session
// 19; before, it stayed in the share of its first SUBSCRIBE for as long as
// it was renewed). It returns the reason when an identity's share has no
// room: the caller refuses the renewal and ends the subscription. A proof
// that lapsed (the cache evicted it, over_budget: the client sends it again
// within 30 s) moves the subscription to the unproven pool only if the
// pool has room; else it stays where it was, costing no one else, rather
// than an honest subscriber's ending whenever names that prove nothing
// fill the pool (review12). A domain no longer trusted ended it already
// (untrust). ss.mu held.
func (ss *subscriptions) restand(sub *subscription, from, ident, domain pdu.Name) string {
	if sub.share == ident && sub.domain == domain {
		return ""
	}
	ss.drop(sub)
	if reason := ss.admit(from, ident); reason != "" {
		if ident != unprovenGroup {
			return reason
		}
		ss.add(sub) // back in its share, unchanged
		return ""
	}
	sub.share, sub.domain = ident, domain
	ss.add(sub)
	return ""
}

func (s *Server) handleUnsubscribe(r request) *wire.Message {
	ss := s.subs
	ss.mu.Lock()
	sub := ss.m[subKey{r.from, r.msg.ID}]
	ss.mu.Unlock()
	if sub == nil {
		return r.msg.Reply(wire.StatusNotFound)
	}
	sub.cancel()
	return r.msg.Reply(wire.StatusOK)
}

func (ss *subscriptions) remove(sub *subscription) {
	ss.mu.Lock()
	ss.drop(sub)
	ss.mu.Unlock()
}

// untrust ends every subscription whose subscriber was proven by a domain
// trusted no longer reports false for, and returns how many (Session 18:
// Server.ReloadTrust). Before, they ran until their next renewal, counted
// meanwhile in the share of an identity no longer proven; the subscriber's
// renewal now starts one afresh, counted as its requests are.
func (ss *subscriptions) untrust(trusted func(pdu.Name) bool) int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	n := 0
	for _, sub := range ss.m {
		if sub.domain != (pdu.Name{}) && !trusted(sub.domain) {
			ss.drop(sub)
			sub.cancel()
			n++
		}
	}
	return n
}

func (ss *subscriptions) closeAll() {
	ss.mu.Lock()
	for _, sub := range ss.m {
		sub.cancel()
	}
	ss.mu.Unlock()
	ss.wg.Wait()
}

// run is the subscription's goroutine.
func (ss *subscriptions) run(ctx context.Context, sub *subscription) {
	defer ss.remove(sub)
	defer sub.cancel()
	s := ss.s
	for {
		changed := s.watch.wait(sub.c)
		if err := ss.push(sub); err != nil {
			return
		}
		sub.mu.Lock()
		left := time.Until(sub.expiry)
		sub.mu.Unlock()
		if left <= 0 {
			if subHookLapsed != nil {
				subHookLapsed(sub)
			}
			if ss.lapse(sub) {
				return
			}
			continue // renewed meanwhile
		}
		t := time.NewTimer(left)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-changed:
		case <-sub.poke:
		case <-t.C:
		}
		t.Stop()
	}
}

// lapse ends sub, whose lease ran out, unless a renewal came since its
// run read the expiry: handleSubscribe renews a subscription it finds in
// the map (under ss.mu) and answers OK, so one renewed between that read
// and the end would be answered and then ended, and the subscriber get no
// push until its next renewal found it gone. The expiry is read again
// under ss.mu, and the subscription leaves the map in the same step.
func (ss *subscriptions) lapse(sub *subscription) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	sub.mu.Lock()
	left := time.Until(sub.expiry)
	sub.mu.Unlock()
	if left > 0 {
		return false
	}
	ss.drop(sub)
	return true
}

// subHookLapsed, set only by tests, runs when a subscription's run found
// its lease over, before it ends it.
var subHookLapsed func(sub *subscription)

// push sends everything from next to the head (pages of records with the
// newest heartbeat and a proof of each page's last entry), or the newest
// heartbeat alone when only it changed.
func (ss *subscriptions) push(sub *subscription) error {
	s := ss.s
	for {
		head, err := s.st.Head(sub.c)
		if err != nil {
			return err
		}
		if head.Heartbeat == nil {
			return nil
		}
		sub.mu.Lock()
		next, lastHB, lastT, known := sub.next, sub.lastHB, sub.lastT, sub.known
		sub.mu.Unlock()
		ev := &wire.Message{Op: wire.OpEvent, ID: sub.key.id, Capsule: sub.c[:], Head: head.Seqno, Heartbeat: head.Heartbeat.Marshal()}
		if known > 0 && known < head.Seqno {
			cp, err := s.st.ConsistencyProof(sub.c, known, head.Seqno)
			if err != nil {
				return err
			}
			ev.Consistency, ev.Size = cp.Marshal(), known
		}
		if next <= head.Seqno {
			recs, last, err := s.page(pdu.Name{}, pdu.Name{}, sub.c, next, head.Seqno, s.cfg.ReadLimit, wire.Budget-len(ev.Heartbeat))
			if err != nil {
				return err
			}
			p, err := s.st.InclusionProof(sub.c, last, head.Seqno)
			if err != nil {
				return err
			}
			ev.Records, ev.Proof, ev.From, ev.To, ev.More = recs, p.Marshal(), next, last, last < head.Seqno
			next = last + 1
		} else if head.Heartbeat.Seqno == lastHB && head.Heartbeat.Time == lastT {
			return nil // nothing new
		}
		b, err := ev.Marshal()
		if err != nil {
			return err
		}
		if _, err := s.cli.SendFrom(s.name, sub.key.who, 0, b); err != nil {
			return err
		}
		s.met.pushes.Inc()
		sub.mu.Lock()
		if sub.next == ev.From || ev.From == 0 {
			sub.next = next
		}
		sub.lastHB, sub.lastT = head.Heartbeat.Seqno, head.Heartbeat.Time
		if head.Seqno > sub.known {
			sub.known = head.Seqno
		}
		sub.mu.Unlock()
		if !ev.More {
			return nil
		}
	}
}
