package capsuled

import (
	"container/list"
	"crypto/sha256"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/internal/clock"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

// Who asks, on every request (Session 15). A CREATE proved its requester
// since Session 14; every other request was counted by its source name,
// so one member holding advertise.max_names_per_identity names (100,000 by
// default) got as many turns in the request queue's round robin and as
// many subscription shares. Now any request may carry the same proof
// (wire.Requester at key 13, PROTOCOL.md §8.3): the server verifies it once
// per source name and remembers the answer here until the membership
// expires, so a request from a name proven before costs a map lookup, not
// a signature check, and needs no proof (the client sends one to each
// server until it is answered, and again every CapsuleOptions.ProofRefresh).
//
// The cache is bounded (Config.RequesterCache names) and so is each
// identity's part of it (Config.RequesterCachePerIdentity: a member
// proving thousands of session names evicts its own, not the others').
// Session 16: the cache is shared max-min over the request queue's groups
// (asker.group: each proven identity of the server's own domain, each
// other domain's members together), not in one least-recently-used order:
// full, a newcomer whose group holds fewer than the largest group less one
// takes the place of that group's least recently used name, else of its
// own group's. A trusted partner domain minting a thousand identities of
// 64 names each fills its own group and then evicts its own names; an
// own-domain member's names (at most RequesterCachePerIdentity) go only
// when every group holds as many. A dropped name's requests count in the
// unproven pool until its client proves it again. Proofs that do not
// hold are remembered apart (a quarter of the size), so a name sending
// forged proofs costs one signature check per proofRecheck, and they
// never evict a proven name.

// proofRecheck: a name's proof is verified again, when a request brings
// another one, at most this often (a name cannot make the server check a
// signature per request by varying the proof's bytes).
const proofRecheck = 10 * time.Second

// verifyRate and verifyBurst bound the proofs the receive loop verifies
// (each a membership chain: a few signature checks) per second, over every
// name together. The per-name limits above do not bound a member holding
// many names (advertise.max_names_per_identity, 100,000): sending a proof
// from each, it would make the single receive loop check signatures for
// every request of a new name. Over the budget a request counts in the
// unproven pool, its proof neither remembered nor refused (the client
// sends it again until answered), counted result "over_budget". 1,000 a
// second re-proves 10,000 clients within 10 s of a restart.
const (
	verifyRate  = 1000.0
	verifyBurst = 1000.0
)

// asker is whose shares a request counts in.
type asker struct {
	// group is the request queue's first level: a proven member of the
	// server's own domain by its identity key, another domain's proven
	// members together by the domain's name (as placements are counted,
	// max_per_domain), every requester that proved nothing in
	// unprovenGroup.
	group pdu.Name
	// ident is the subscriptions' share: a proven requester's identity
	// key (of any trusted domain), or unprovenGroup.
	ident pdu.Name
	// domain is the domain whose membership proved it (zero: unproven):
	// a reload that stops trusting it drops the proof (Session 17).
	domain pdu.Name
}

// unprovenAsker: every requester that proved nothing, together.
var unprovenAsker = asker{group: unprovenGroup, ident: unprovenGroup}

// shareOf is whose share a request from src counts in for the limits kept
// per requester: the proven identity's key, the one pool of every
// requester that proved nothing (Session 16: sync_answers_per_peer,
// creates_per_peer, read-ahead; before, per source name, so a member
// holding many names had as many shares), or src for a request that went
// through no request proof (a bulk stream: its peer is the identity its
// QUIC certificate proves).
func (a asker) shareOf(src pdu.Name) pdu.Name {
	if a.ident == (pdu.Name{}) {
		return src
	}
	return a.ident
}

// shareLabel names a's share in what a refusal counts: "identity" or
// "unproven".
func (a asker) shareLabel() string {
	if a.ident == unprovenGroup {
		return "unproven"
	}
	return "identity"
}

// Requester cache results (gdp_capsuled_requester_cache_total{result}).
const (
	cacheHit        = "hit"            // a request without a proof from a name proven before
	cacheRepeated   = "repeated"       // a proof from a name proven before, not checked again (the same proof, or within proofRecheck)
	cacheProven     = "proven"         // a proof verified now and remembered
	cacheInvalid    = "invalid"        // a proof verified now that does not hold
	cacheRefused    = "refused"        // a proof from a name whose last proof did not hold, or (Session 16) of a node whose credentials were checked within 10 s and are not these: not verified
	cacheKnown      = "known"          // a proof from a new name with credentials verified before for its node: proven without a check (Session 16)
	cacheUnproven   = "unproven"       // no proof from a name not proven: the unproven pool
	cacheEvicted    = "evicted"        // a proven name of the largest group dropped for another group's newcomer (the cache's bound)
	cacheGroupShare = "group_share"    // a proven name dropped for a newcomer of its own group, the largest: the group's share bit (Session 16)
	cacheIdentShare = "identity_share" // a proven name dropped for a newcomer of its own identity, at requester_cache_per_identity (Session 16)
	cacheExpired    = "expired"        // a proven name dropped as its membership expired
	cacheOverBudget = "over_budget"    // a proof not verified: the second's verify budget was spent (counted unproven)
	cacheWithdrawn  = "withdrawn"      // a proven name dropped by a reload: its domain is no longer trusted (Session 17)
)

var cacheResults = []string{cacheHit, cacheRepeated, cacheProven, cacheKnown, cacheInvalid, cacheRefused, cacheUnproven, cacheEvicted, cacheGroupShare, cacheIdentShare, cacheExpired, cacheOverBudget, cacheWithdrawn}

// provenName is one source name's proof as the cache holds it.
type provenName struct {
	src      pdu.Name
	asker    asker
	notAfter time.Time
	sum      [sha256.Size]byte // of the proof taken
	checked  time.Time         // when it was verified
	inGroup  *list.Element     // in its group's list
	mine     *list.Element     // in its identity's list
}

// cacheGroup is one asker.group's proven names, most recently used first,
// and its place in requesterCache.counts.
type cacheGroup struct {
	key  pdu.Name
	lru  *list.List // *provenName
	slot int
}

func (g *cacheGroup) count() int  { return g.lru.Len() }
func (g *cacheGroup) slotp() *int { return &g.slot }

// refusedProof is a name whose last proof did not hold.
type refusedProof struct {
	sum     [sha256.Size]byte
	checked time.Time
}

// requesterCache remembers which source names proved which identity.
type requesterCache struct {
	mu       sync.Mutex
	max      int
	perIdent int
	byName   map[pdu.Name]*provenName
	byGroup  map[pdu.Name]*cacheGroup
	// counts finds the group holding the most names in O(1) (own-domain
	// members are a group each: thousands of groups).
	counts  counted[*cacheGroup]
	byIdent map[pdu.Name]*list.List // *provenName, most recently used first
	refused map[pdu.Name]refusedProof
	// nodes: the last check of each node's credentials (Session 16), a
	// quarter of max, any one dropped for room.
	nodes map[pdu.Name]nodeVerdict

	// The verify budget: tokens left at last (verifyRate, verifyBurst).
	tokens float64
	last   time.Time
	// gen counts retrusts: a check that began under the trust before one
	// is not remembered (Session 17).
	gen uint64
}

func newRequesterCache(max, perIdent int) *requesterCache {
	return &requesterCache{max: max, perIdent: perIdent, byName: map[pdu.Name]*provenName{}, byGroup: map[pdu.Name]*cacheGroup{},
		byIdent: map[pdu.Name]*list.List{}, refused: map[pdu.Name]refusedProof{}, nodes: map[pdu.Name]nodeVerdict{}, tokens: verifyBurst}
}

// maxRefused bounds the names remembered for a proof that did not hold.
func (c *requesterCache) maxRefused() int { return max(16, c.max/4) }

// remove forgets e (c.mu held).
func (c *requesterCache) remove(e *provenName) {
	delete(c.byName, e.src)
	g := c.byGroup[e.asker.group]
	g.lru.Remove(e.inGroup)
	c.counts.resize(g, g.count()+1)
	if g.count() == 0 {
		delete(c.byGroup, g.key)
	}
	if l := c.byIdent[e.asker.ident]; l != nil {
		l.Remove(e.mine)
		if l.Len() == 0 {
			delete(c.byIdent, e.asker.ident)
		}
	}
}

// add remembers e, dropping beyond the bounds first the least recently
// used of its identity's names, then, the cache full, of the largest
// group's or of its own group's (max-min over groups, as the request
// queue); c.mu held.
func (c *requesterCache) add(e *provenName) drops {
	var d drops
	id := e.asker.ident
	for l := c.byIdent[id]; l != nil && l.Len() >= c.perIdent; l = c.byIdent[id] {
		c.remove(l.Back().Value.(*provenName))
		d.identShare++
	}
	for len(c.byName) > 0 && len(c.byName) >= c.max {
		mine := c.byGroup[e.asker.group]
		if mine == nil || c.counts.most > mine.count()+1 {
			c.remove(c.counts.top().lru.Back().Value.(*provenName))
			d.evicted++
			continue
		}
		c.remove(mine.lru.Back().Value.(*provenName))
		d.groupShare++
	}
	g := c.byGroup[e.asker.group]
	if g == nil {
		g = &cacheGroup{key: e.asker.group, lru: list.New()}
		c.byGroup[g.key] = g
	}
	l := c.byIdent[id]
	if l == nil {
		l = list.New()
		c.byIdent[id] = l
	}
	c.byName[e.src] = e
	e.inGroup = g.lru.PushFront(e)
	c.counts.resize(g, g.count()-1)
	e.mine = l.PushFront(e)
	return d
}

// touch marks e used now (c.mu held).
func (c *requesterCache) touch(e *provenName) {
	c.byGroup[e.asker.group].lru.MoveToFront(e.inGroup)
	c.byIdent[e.asker.ident].MoveToFront(e.mine)
}

// askerOf is whose shares a request from src with proof (key 13, empty when
// none) counts in. Called by the receive loop for every request: a name
// proven before is a map lookup; a proof is verified only when its name is
// not proven with the same proof, and not more than once per proofRecheck
// for one name.
func (s *Server) askerOf(src pdu.Name, proof []byte) asker {
	a, result, dropped := s.reqs.lookup(src, proof, clock.Now(), func(gate gateFunc) (asker, time.Time, error) {
		creds, node, err := requesterClaim(src, proof)
		if err == nil {
			var a asker
			var notAfter time.Time
			var done bool
			if a, notAfter, done, err = gate(node, creds); done && err == nil {
				return a, notAfter, nil // the node's same credentials verified before
			} else if errors.Is(err, errOverBudget) || errors.Is(err, errNodeRefused) {
				return asker{}, time.Time{}, err
			}
		}
		var m client.Member
		if err == nil {
			m, err = s.verifyMembership(creds)
		}
		if err != nil {
			s.logLim.Info(s.log, "request_proof "+src.String(), "request proof refused: the requester's requests count in the unproven pool (request queue, max_subscriptions_unproven)",
				logging.Src(src), logging.Reason("invalid_proof"), zap.Error(err))
			return asker{}, time.Time{}, err
		}
		return askerOfMember(m), m.NotAfter, nil
	})
	s.met.requesterCache.WithLabelValues(result).Inc()
	for _, n := range []struct {
		result string
		n      int
	}{{cacheEvicted, dropped.evicted}, {cacheGroupShare, dropped.groupShare}, {cacheIdentShare, dropped.identShare}} {
		if n.n > 0 {
			s.met.requesterCache.WithLabelValues(n.result).Add(float64(n.n))
		}
	}
	if dropped.expired > 0 {
		s.met.requesterCache.WithLabelValues(cacheExpired).Add(float64(dropped.expired))
	}
	return a
}

// askerOfMember is whose shares a proven member's requests count in: its
// identity key's for subscriptions; in the request queue its identity's
// turns when it is of the server's own domain, its domain's when not (as
// placements count per domain: another domain's operator mints identities
// at will, so its members share one group's turns; the own domain's
// operator admits each of its members).
func askerOfMember(m client.Member) asker {
	a := asker{group: keyShare(m.Meta.Key), ident: keyShare(m.Meta.Key), domain: m.Domain}
	if !m.Own {
		a.group = m.Domain
	}
	return a
}

// drops are the proven names a lookup dropped: for another group's
// newcomer (evicted), its own group's at the largest share (groupShare),
// its own identity's at its bound (identShare), or expired.
type drops struct{ evicted, groupShare, identShare, expired int }

// verifyFunc checks a proof: once the checks that parse and compare
// passed, it asks gate about the node the credentials claim, and verifies
// the membership only when gate says not done.
type verifyFunc func(gate gateFunc) (asker, time.Time, error)

// gateFunc is the requester cache's word on a proof of node with creds,
// before its signature is checked (Session 16): done with the node's
// identity when these credentials were verified for it before and have
// not expired (no check: a member's other names, a name evicted and proven
// again); done with errNodeRefused when the node's credentials were
// checked less than proofRecheck ago and these are not the ones that held,
// or are the ones that did not; done with errOverBudget when the verify
// budget is spent; otherwise not done, one check taken from the budget,
// and the result is remembered for the node.
type gateFunc func(node pdu.Name, creds []byte) (asker, time.Time, bool, error)

// errOverBudget: the proof needed a signature check and the second's
// verify budget was spent.
var errOverBudget = errors.New("the verify budget is spent")

// errNodeRefused: the proof's node had credentials checked within
// proofRecheck, and these are not the ones that held.
var errNodeRefused = errors.New("the node's credentials were checked within 10 s; these are not the ones that held")

// lookup is askerOf's decision at time now, with verify the proof's
// check (called without c.mu held, only when the proof must be checked):
// whose shares, the result label, and the names dropped.
func (c *requesterCache) lookup(src pdu.Name, proof []byte, now time.Time, verify verifyFunc) (asker, string, drops) {
	var d drops
	var sum [sha256.Size]byte
	if len(proof) > 0 {
		sum = sha256.Sum256(proof)
	}
	c.mu.Lock()
	e := c.byName[src]
	if e != nil && !now.Before(e.notAfter) {
		c.remove(e)
		e = nil
		d.expired++
	}
	if e != nil && (len(proof) == 0 || e.sum == sum || now.Sub(e.checked) < proofRecheck) {
		c.touch(e)
		a := e.asker
		c.mu.Unlock()
		if len(proof) == 0 {
			return a, cacheHit, d
		}
		return a, cacheRepeated, d
	}
	if len(proof) == 0 {
		c.mu.Unlock()
		return unprovenAsker, cacheUnproven, d
	}
	if r, ok := c.refused[src]; ok && e == nil && (r.sum == sum || now.Sub(r.checked) < proofRecheck) {
		c.mu.Unlock()
		return unprovenAsker, cacheRefused, d
	}
	gen := c.gen
	c.mu.Unlock()

	// verify takes from the budget only for the signature check, after
	// the parse-and-compare checks passed: a proof those refuse (a
	// member's own credentials sent from each of its other names) costs a
	// parse and leaves the budget to the proofs that need a signature.
	// The gate first asks what is known of the node the proof claims
	// (Session 16): its credentials verified before cost no check, and a
	// node is checked at most once per proofRecheck otherwise, however
	// many names it sends from.
	var pending *nodeCheck
	known := false
	gate := func(node pdu.Name, creds []byte) (asker, time.Time, bool, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		sum := sha256.Sum256(creds)
		if v, ok := c.nodes[node]; ok {
			switch {
			case v.ok && v.sum == sum && now.Before(v.notAfter):
				known = true
				return v.asker, v.notAfter, true, nil
			case now.Sub(v.checked) < proofRecheck, !v.ok && v.sum == sum:
				return asker{}, time.Time{}, true, errNodeRefused
			}
		}
		if !c.spend(now) {
			return asker{}, time.Time{}, true, errOverBudget
		}
		pending = &nodeCheck{node: node, sum: sum}
		return asker{}, time.Time{}, false, nil
	}
	var a asker
	var notAfter time.Time
	var err error
	for again := false; ; again = true {
		pending, known = nil, false
		a, notAfter, err = verify(gate)
		c.mu.Lock()
		if c.gen == gen {
			break
		}
		if again {
			// Another reload during the re-check: its verdict may be the
			// old trust's again. Neither it nor the node's is kept; the
			// request counts unproven and the client's next proof is
			// checked.
			c.mu.Unlock()
			return unprovenAsker, cacheWithdrawn, d
		}
		// The trusted domains were reloaded while the proof was checked:
		// its verdict may be the old trust's, so it is checked once more
		// under the new one (Session 18; the server's client took the new
		// trust before the cache's retrust). Before, it was dropped at any
		// reload — a certificate renewal too — and the client, its proof
		// answered, did not send it again for ProofRefresh (30 s): its
		// requests counted unproven meanwhile.
		gen = c.gen
		c.mu.Unlock()
	}
	defer c.mu.Unlock()
	if pending != nil {
		c.rememberNode(*pending, a, notAfter, err, now)
	}
	if errors.Is(err, errOverBudget) || errors.Is(err, errNodeRefused) {
		// Not checked: neither remembered nor refused for the name (the
		// client sends its proof again until answered).
		result := cacheOverBudget
		if errors.Is(err, errNodeRefused) {
			result = cacheRefused
		}
		if e = c.byName[src]; e != nil { // proven before: that proof stands until rechecked
			return e.asker, result, d
		}
		return unprovenAsker, result, d
	}
	if err != nil {
		if e = c.byName[src]; e != nil { // proven before, with another proof: that one stands
			e.checked = now
			return e.asker, cacheInvalid, d
		}
		if _, ok := c.refused[src]; !ok && len(c.refused) >= c.maxRefused() {
			for k := range c.refused { // any one: a forger gains nothing by its choice
				delete(c.refused, k)
				break
			}
		}
		c.refused[src] = refusedProof{sum: sum, checked: now}
		return unprovenAsker, cacheInvalid, d
	}
	delete(c.refused, src)
	if old := c.byName[src]; old != nil {
		c.remove(old)
	}
	added := c.add(&provenName{src: src, asker: a, notAfter: notAfter, sum: sum, checked: now})
	added.expired = d.expired
	if known {
		return a, cacheKnown, added
	}
	return a, cacheProven, added
}

// nodeCheck is a node's credentials whose check the gate let through.
type nodeCheck struct {
	node pdu.Name
	sum  [sha256.Size]byte
}

// nodeVerdict is what the last check of a node's credentials found.
type nodeVerdict struct {
	sum      [sha256.Size]byte // of the credentials checked
	ok       bool
	asker    asker     // when ok
	notAfter time.Time // when ok: the membership's expiry
	checked  time.Time
}

// rememberNode keeps the verdict of check p at now (c.mu held). Failed
// credentials do not unseat ones that held and have not expired (a member
// router sending forged credentials in a member's name would else make
// its next names pay a check); they only start the node's proofRecheck.
func (c *requesterCache) rememberNode(p nodeCheck, a asker, notAfter time.Time, err error, now time.Time) {
	v, had := c.nodes[p.node]
	if err != nil && had && v.ok && now.Before(v.notAfter) {
		v.checked = now
		c.nodes[p.node] = v
		return
	}
	if !had && len(c.nodes) >= c.maxRefused() {
		for k := range c.nodes { // any one: a node's next proof is checked again, nothing more
			delete(c.nodes, k)
			break
		}
	}
	c.nodes[p.node] = nodeVerdict{sum: p.sum, ok: err == nil, asker: a, notAfter: notAfter, checked: now}
}

// spend takes one verify from the budget at now, or reports it spent
// (c.mu held).
func (c *requesterCache) spend(now time.Time) bool {
	if !c.last.IsZero() && now.After(c.last) {
		c.tokens = min(verifyBurst, c.tokens+now.Sub(c.last).Seconds()*verifyRate)
	}
	if c.last.IsZero() || now.After(c.last) {
		c.last = now
	}
	if c.tokens < 1 {
		return false
	}
	c.tokens--
	return true
}

// retrusted is what retrust dropped.
type retrusted struct {
	names, nodes, refused int
}

// retrust puts a reload's trusted domains in force in the cache (Session
// 17): every proven name and node verdict whose domain trusted no longer
// lists — or whose own-domain standing changed with own, the server's
// domain — is dropped, so its requests count unproven until its proof
// holds under the new trust; every proof that did not hold is forgotten,
// so one that holds now (a domain added) is checked at its next request.
// Checks in flight are not remembered (gen).
func (c *requesterCache) retrust(trusted func(domain pdu.Name) bool, own pdu.Name) retrusted {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	stale := func(a asker) bool {
		wasOwn := a.group != a.domain // a foreign member's group is its domain
		return !trusted(a.domain) || wasOwn != (a.domain == own)
	}
	var r retrusted
	for _, e := range c.byName {
		if stale(e.asker) {
			c.remove(e)
			r.names++
		}
	}
	for k, v := range c.nodes {
		if !v.ok || stale(v.asker) {
			delete(c.nodes, k)
			r.nodes++
		}
	}
	r.refused = len(c.refused)
	clear(c.refused)
	return r
}

// inboxShare is the endpoint inbox share (client.Client.SetInboxShare) of
// a PDU from src, before the receive loop has read it (Session 17): a name
// proven before counts as its identity, so one member's proven names hold
// one share of the inbox, as of the request queue behind it. A name not
// proven keeps a share of its own: its PDU may carry the proof that the
// receive loop has not checked yet, and a pool of every such name would
// let a flood from names that prove nothing drop a new client's first,
// proving request before it was read. Called for every DATA PDU on the
// tunnel's receive path: a map lookup under c.mu.
func (c *requesterCache) inboxShare(src pdu.Name) pdu.Name {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.byName[src]; e != nil {
		return e.asker.ident
	}
	return src
}
