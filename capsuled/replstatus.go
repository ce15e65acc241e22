package capsuled

import (
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gdpnet/gdpnet/pdu"
)

// CapsuleStatus is one placed capsule as the dashboard and Status show it:
// its head here and what this server last learnt of each peer replica's.
type CapsuleStatus struct {
	Name        pdu.Name `json:"name"`
	Description string   `json:"description,omitempty"`
	// Head is this replica's durable head seqno.
	Head uint64 `json:"head"`
	// Newest is the highest head known among the replicas (this one's and
	// the peers' last seen).
	Newest   uint64 `json:"newest"`
	Replicas int    `json:"replicas"`
	W        int    `json:"w"`
	// Syncing: an anti-entropy comparison is under way. Suspect: a peer
	// did not answer last time.
	Syncing bool         `json:"syncing,omitempty"`
	Suspect bool         `json:"suspect,omitempty"`
	Peers   []PeerStatus `json:"peers"`
}

// settle sets Newest from this replica's head and the peers' heard, and
// each heard peer's Lag behind it.
func (c *CapsuleStatus) settle() {
	c.Newest = c.Head
	for _, p := range c.Peers {
		if !p.Seen.IsZero() {
			c.Newest = max(c.Newest, p.Head)
		}
	}
	for i := range c.Peers {
		if !c.Peers[i].Seen.IsZero() {
			c.Peers[i].Lag = c.Newest - c.Peers[i].Head
		}
	}
}

// Lag is how many records this replica is behind the newest head known.
func (c CapsuleStatus) Lag() uint64 { return c.Newest - c.Head }

// PeerStatus is what this server last learnt of a peer replica's head:
// from the peer's answer to our SYNC, when it carries the writer's
// heartbeat for that head (sawHead); a peer's own SYNC requests and
// unproven answers do not count.
type PeerStatus struct {
	Name pdu.Name `json:"name"`
	// Head is the peer's head when last heard (0 with Seen zero: never).
	Head uint64    `json:"head"`
	Seen time.Time `json:"seen,omitempty"`
	// Lag is how many records the peer was behind the newest head known.
	Lag uint64 `json:"lag"`
	// BackingOff: the peer did not answer and is not asked until the
	// back-off ends (sync.peer_backoff).
	BackingOff bool `json:"backing_off,omitempty"`
	// Error is the last anti-entropy failure with the peer ("" after a
	// success).
	Error string `json:"error,omitempty"`
	// Unproven: the peer's last SYNC answer claimed a head it did not
	// prove (no writer's heartbeat of it, or no proof that it holds it):
	// Head, if shown, is an older one it proved. Such a peer is not in
	// the lag figures; UnprovenReplicas counts it.
	Unproven bool `json:"unproven,omitempty"`
}

// replState is what anti-entropy learnt of the peers' heads, per capsule
// and peer. Entries of deleted capsules or dropped peers are ignored (and
// pruned) by Status.
type replState struct {
	mu sync.Mutex
	m  map[[2]pdu.Name]peerSeen
}

type peerSeen struct {
	head uint64
	seen time.Time
	err  string
	// held: the peer showed it holds head (a possession tag this server
	// checked against its own entries); false: only the writer's
	// heartbeat vouches for it (this server was behind it).
	held bool
	// unproven: the peer's last answer claimed a head it did not prove.
	unproven bool
	// The schedule of possession checks (checkDue): this server's own
	// head at the last check that succeeded, when the next one is due at
	// the latest, and pending: an answer left one due (a head without the
	// writer's heartbeat, another head claimed without a tag). A check
	// that failed stays due anyway: what made it due holds until one
	// succeeds.
	checkedOwn uint64
	nextCheck  time.Time
	pending    bool
}

// saw records that peer's head for capsule c was head at now; held says
// whether the peer proved it holds the entries (sawHead).
func (r *replState) saw(c, peer pdu.Name, head uint64, now time.Time, held bool) {
	r.update(c, peer, func(e *peerSeen) { e.sawAt(head, now, held) })
}

func (e *peerSeen) sawAt(head uint64, now time.Time, held bool) {
	e.head, e.seen, e.err, e.held, e.unproven, e.pending = head, now, "", held, false, false
}

// update applies f to the entry of peer's replica of c (a new one if
// there is none), under the lock.
func (r *replState) update(c, peer pdu.Name, f func(e *peerSeen)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[[2]pdu.Name]peerSeen{}
	}
	k := [2]pdu.Name{c, peer}
	e := r.m[k]
	f(&e)
	r.m[k] = e
}

// checked records that peer proved it holds head of capsule c at now
// (a possession tag checked, or head 0), this server's own head being
// own: no check is due until own moves, a later answer claims another
// head, or next.
func (r *replState) checked(c, peer pdu.Name, head, own uint64, now, next time.Time) {
	r.update(c, peer, func(e *peerSeen) {
		e.sawAt(head, now, true)
		e.checkedOwn, e.nextCheck = own, next
	})
}

// checkDue reports whether the next SYNC to peer for capsule c asks for a
// possession tag (a nonce), own being this server's head: when no head of
// the peer is proven yet (unless this server is behind the head shown,
// which it cannot check), a check is pending, own moved since the last
// check (the peer's head has likely moved too: an active capsule is
// checked every round), or the last check is older than its interval.
func (r *replState) checkDue(c, peer pdu.Name, own uint64, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.m[[2]pdu.Name{c, peer}]
	switch {
	case !ok || e.seen.IsZero() || e.pending:
		return true
	case !e.held:
		return own >= e.head
	case own != e.checkedOwn:
		return true
	}
	return !now.Before(e.nextCheck)
}

// stillHeld takes an answer from peer that claims head of capsule c and
// carries no possession tag (its SYNC asked for none): when head is the
// one the peer proved last, it stays shown, heard now, and true; any
// other head is not shown, a check is marked pending, and false.
func (r *replState) stillHeld(c, peer pdu.Name, head uint64, now time.Time) (held bool) {
	r.update(c, peer, func(e *peerSeen) {
		if held = e.held && !e.seen.IsZero() && e.head == head; held {
			e.seen = now
		} else {
			e.pending = true
		}
	})
	return held
}

// unproven records that peer's last answer for capsule c claimed a head it
// did not prove; the head shown, if any, stays.
func (r *replState) unproven(c, peer pdu.Name) {
	r.update(c, peer, func(e *peerSeen) { e.unproven, e.pending = true, true })
}

// withdraw forgets peer's head for capsule c when a claim of head failed
// the check of possession and that puts the shown head in doubt: a head
// shown on the heartbeat's word alone (while this server was behind: a
// copied heartbeat's claim must not stay shown once it can be checked), or
// one at least as high as the failed claim (the peer no longer shows it
// holds it). A lower head the peer proved it holds stays.
func (r *replState) withdraw(c, peer pdu.Name, claim uint64) {
	r.update(c, peer, func(e *peerSeen) {
		if !e.held || e.head >= claim {
			e.head, e.seen = 0, time.Time{}
		}
		e.unproven = true // the check stays due: what made it due holds until one succeeds
	})
}

// head is the head last recorded for peer's replica of c.
func (r *replState) head(c, peer pdu.Name) (uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.m[[2]pdu.Name{c, peer}]
	return e.head, ok && !e.seen.IsZero()
}

// failed records the outcome of a pull from peer (nil: success).
func (r *replState) failed(c, peer pdu.Name, err error) {
	r.update(c, peer, func(e *peerSeen) {
		e.err = ""
		if err != nil {
			e.err = err.Error()
		}
	})
}

func (r *replState) get(c, peer pdu.Name) (peerSeen, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.m[[2]pdu.Name{c, peer}]
	return e, ok
}

// prune forgets capsules not in keep.
func (r *replState) prune(keep map[pdu.Name]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.m {
		if !keep[k[0]] {
			delete(r.m, k)
		}
	}
}

// Status lists the capsules placed on this server, sorted by name, each
// with its head and its peers' as last learnt (replication state and lag).
func (s *Server) Status() []CapsuleStatus {
	now := time.Now()
	places := s.places.all()
	keep := make(map[pdu.Name]bool, len(places))
	out := make([]CapsuleStatus, 0, len(places))
	for _, p := range places {
		keep[p.name] = true
		cs := CapsuleStatus{Name: p.name, Replicas: len(p.replicas), W: p.w, Peers: []PeerStatus{}}
		if p.meta != nil {
			cs.Description = p.meta.Description
		}
		if h, err := s.st.Head(p.name); err == nil {
			cs.Head = h.Seqno
		}
		s.sync.mu.Lock()
		cs.Syncing, cs.Suspect = s.sync.running[p.name], s.sync.suspects[p.name]
		s.sync.mu.Unlock()
		for _, peer := range p.peers(s.name) {
			ps := PeerStatus{Name: peer, BackingOff: !s.sync.due(peer, now)}
			if e, ok := s.repl.get(p.name, peer); ok {
				ps.Head, ps.Seen, ps.Error, ps.Unproven = e.head, e.seen, e.err, e.unproven
			}
			cs.Peers = append(cs.Peers, ps)
		}
		cs.settle()
		out = append(out, cs)
	}
	s.repl.prune(keep)
	sort.Slice(out, func(i, j int) bool { return string(out[i].Name[:]) < string(out[j].Name[:]) })
	return out
}

// LagFigures are the largest lag of any replica of any capsule placed here
// (this one, or a peer as last heard), in records, and how many capsules
// have a replica behind.
func LagFigures(caps []CapsuleStatus) (most uint64, lagging int) {
	for _, c := range caps {
		l := c.Lag()
		for _, p := range c.Peers {
			l = max(l, p.Lag)
		}
		if l > 0 {
			lagging++
		}
		most = max(most, l)
	}
	return most, lagging
}

// UnprovenReplicas is how many peer replicas of the capsules placed here
// last claimed a head they did not prove (PeerStatus.Unproven): peers the
// lag figures leave out, so a lag of 0 says nothing about them.
func UnprovenReplicas(caps []CapsuleStatus) int {
	n := 0
	for _, c := range caps {
		for _, p := range c.Peers {
			if p.Unproven {
				n++
			}
		}
	}
	return n
}

// registerLag adds the replication-lag gauges, computed from Status at
// each scrape.
func (s *Server) registerLag(reg prometheus.Registerer) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "gdp", Subsystem: "capsuled", Name: "replication_lag_records",
			Help: "The most records any replica of a capsule placed here (this one, or a peer as last heard by anti-entropy) is behind the newest head this server knows."},
			func() float64 { most, _ := LagFigures(s.Status()); return float64(most) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "gdp", Subsystem: "capsuled", Name: "capsules_lagging",
			Help: "Capsules placed here with a replica behind the newest head this server knows."},
			func() float64 { _, n := LagFigures(s.Status()); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "gdp", Subsystem: "capsuled", Name: "replicas_unproven",
			Help: "Peer replicas of capsules placed here whose last SYNC answer claimed a head they did not prove (no writer's heartbeat of it, or no proof they hold it): left out of the lag figures."},
			func() float64 { return float64(UnprovenReplicas(s.Status())) }),
	)
}
