package capsuled

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/tunnel"
)

// TestRequesterCache (Session 15): a name's proof is checked once and
// remembered until its membership expires; the same proof again is not
// checked, another one at most once per proofRecheck; a proof that did
// not hold is remembered apart and not checked again within proofRecheck
// (unless it is another), never evicting a proven name; the cache keeps
// at most max names, and one identity at most perIdent of them, its own
// least recently used dropped first.
func TestRequesterCache(t *testing.T) {
	c := newRequesterCache(4, 2)
	t0 := time.Unix(1_000_000, 0)
	checks := 0
	ok := func(id byte, notAfter time.Time) verifyFunc {
		return func(gateFunc) (asker, time.Time, error) {
			checks++
			return asker{group: pdu.Name{id}, ident: pdu.Name{id}}, notAfter, nil
		}
	}
	bad := func(gateFunc) (asker, time.Time, error) {
		checks++
		return asker{}, time.Time{}, errors.New("forged")
	}
	name := func(b byte) pdu.Name { return pdu.Name{0xee, b} }
	proofA, proofB := []byte("proof a"), []byte("proof b")
	later := t0.Add(time.Hour)

	step := func(what string, src pdu.Name, proof []byte, now time.Time, verify verifyFunc, wantResult string, wantIdent pdu.Name, wantChecks int) {
		t.Helper()
		a, result, _ := c.lookup(src, proof, now, verify)
		if result != wantResult || a.ident != wantIdent || checks != wantChecks {
			t.Fatalf("%s: %q as %v after %d checks, want %q as %v after %d", what, result, a.ident, checks, wantResult, wantIdent, wantChecks)
		}
	}
	step("no proof, unknown", name(1), nil, t0, ok(1, later), cacheUnproven, unprovenGroup, 0)
	step("a proof", name(1), proofA, t0, ok(1, later), cacheProven, pdu.Name{1}, 1)
	step("no proof after it", name(1), nil, t0.Add(time.Second), ok(1, later), cacheHit, pdu.Name{1}, 1)
	step("another proof within proofRecheck", name(1), proofB, t0.Add(5*time.Second), bad, cacheRepeated, pdu.Name{1}, 1)
	step("the same proof long after", name(1), proofA, t0.Add(time.Minute), ok(1, later), cacheRepeated, pdu.Name{1}, 1)
	step("another proof after: forged, the held one stands", name(1), proofB, t0.Add(2*time.Minute), bad, cacheInvalid, pdu.Name{1}, 2)
	step("expired", name(1), nil, later, ok(1, later), cacheUnproven, unprovenGroup, 2)

	step("a forged proof", name(2), proofA, t0, bad, cacheInvalid, unprovenGroup, 3)
	step("another within proofRecheck", name(2), proofB, t0.Add(5*time.Second), ok(2, later), cacheRefused, unprovenGroup, 3)
	step("the same forged proof long after", name(2), proofA, t0.Add(time.Minute), bad, cacheRefused, unprovenGroup, 3)
	step("another after it", name(2), proofB, t0.Add(2*time.Minute), ok(2, later), cacheProven, pdu.Name{2}, 4)

	// Bounds: identity 3 proves three names, perIdent 2: its first goes.
	for i := range byte(3) {
		step("identity 3's names", name(10+i), proofA, t0, ok(3, later), cacheProven, pdu.Name{3}, 5+int(i))
	}
	step("identity 3's first name, dropped for its third", name(10), nil, t0, nil, cacheUnproven, unprovenGroup, 7)
	step("identity 2's name kept", name(2), nil, t0, nil, cacheHit, pdu.Name{2}, 7)
	// Forged proofs do not take proven names' places.
	for i := range byte(20) {
		step("forged", name(100+i), proofA, t0, bad, cacheInvalid, unprovenGroup, 8+int(i))
	}
	step("identity 2's name after 20 forged", name(2), nil, t0, nil, cacheHit, pdu.Name{2}, 27)
	// max 4: identity 3 holds 2, identity 2 one; two more identities'
	// names drop the least recently used (identity 3's second, 11).
	step("identity 4", name(20), proofA, t0, ok(4, later), cacheProven, pdu.Name{4}, 28)
	step("identity 5", name(21), proofA, t0, ok(5, later), cacheProven, pdu.Name{5}, 29)
	step("the least recently used dropped", name(11), nil, t0, nil, cacheUnproven, unprovenGroup, 29)
	step("the most recently used kept", name(2), nil, t0, nil, cacheHit, pdu.Name{2}, 29)
	inGroups := 0
	for _, g := range c.byGroup {
		inGroups += g.count()
	}
	if len(c.byName) != 4 || inGroups != 4 || len(c.refused) > c.maxRefused() {
		t.Fatalf("%d names, %d in the groups, %d refused (max %d)", len(c.byName), inGroups, len(c.refused), c.maxRefused())
	}
}

// TestRequesterCacheGroupShares (Session 16): the cache is shared max-min
// over the request queue's groups, so a trusted partner domain proving
// names from a thousand identities (its members one group) evicts its own
// names once it holds the most, never an own-domain member's (a group per
// identity); another partner domain's and a new own member's first names
// take the largest group's places; each drop is counted by the share
// that bit.
func TestRequesterCacheGroupShares(t *testing.T) {
	const max, perIdent = 100, 4
	c := newRequesterCache(max, perIdent)
	t0 := time.Unix(1_000_000, 0)
	as := func(a asker) verifyFunc {
		return func(gateFunc) (asker, time.Time, error) { return a, t0.Add(time.Hour), nil }
	}
	partner, third := pdu.Name{0xd1}, pdu.Name{0xd2}
	ident := func(i int) pdu.Name { return pdu.Name{0x1d, byte(i >> 8), byte(i)} }
	name := func(i, j int) pdu.Name { return pdu.Name{0x5a, byte(i >> 8), byte(i), byte(j)} }
	var total drops
	prove := func(src pdu.Name, a asker) {
		t.Helper()
		_, r, d := c.lookup(src, []byte("proof"), t0, as(a))
		if r != cacheProven {
			t.Fatalf("%v: %q, want proven", src, r)
		}
		total.evicted += d.evicted
		total.groupShare += d.groupShare
		total.identShare += d.identShare
	}
	hits := func(from, to int) int {
		n := 0
		for i := from; i < to; i++ {
			for j := range perIdent {
				if _, r, _ := c.lookup(name(i, j), nil, t0, nil); r == cacheHit {
					n++
				}
			}
		}
		return n
	}
	// Ten own-domain members prove 4 names each (a group each).
	for i := range 10 {
		for j := range perIdent {
			prove(name(i, j), asker{group: ident(i), ident: ident(i)})
		}
	}
	// The partner domain: 1,000 identities × 4 names, one group.
	for i := 1000; i < 2000; i++ {
		for j := range perIdent {
			prove(name(i, j), asker{group: partner, ident: ident(i)})
		}
	}
	if n := hits(0, 10); n != 40 {
		t.Fatalf("after the partner's 4,000 names, %d of the own domain's 40 are proven", n)
	}
	if g := c.byGroup[partner].count(); g != max-40 || total.groupShare != 4000-(max-40) || total.evicted != 0 || total.identShare != 0 {
		t.Fatalf("the partner holds %d names (want %d); drops %+v, want %d for its group's share only", g, max-40, total, 4000-(max-40))
	}
	// A third domain's first names and a new own member's take the
	// largest group's (the partner's) places.
	total = drops{}
	for j := range 2 {
		prove(name(3000, j), asker{group: third, ident: ident(3000)})
		prove(name(10, j), asker{group: ident(10), ident: ident(10)})
	}
	if n := hits(0, 11) + hits(3000, 3001); n != 44 || total.evicted != 4 || total.groupShare != 0 {
		t.Fatalf("a third domain's and a new own member's 2 names each: %d of 44 proven, drops %+v, want 4 evicted", n, total)
	}
	if g := c.byGroup[partner].count(); g != max-44 {
		t.Fatalf("the partner holds %d names, want %d", g, max-44)
	}
	// A partner member's fifth name drops its own first (identity share).
	total = drops{}
	prove(name(1999, perIdent), asker{group: partner, ident: ident(1999)})
	if total.identShare != 1 || total.evicted+total.groupShare != 0 {
		t.Fatalf("a fifth name of one identity: drops %+v, want one identity_share", total)
	}
}

// TestAskerOfMember: a member of the server's own domain is its own group
// in the request queue; the members of another domain share their
// domain's; every member's subscriptions are its identity's.
func TestAskerOfMember(t *testing.T) {
	key := make(ed25519.PublicKey, ed25519.PublicKeySize)
	key[0] = 7
	meta := &certs.Metadata{Kind: certs.KindClient, Key: key}
	dom := pdu.Name{0xd0}
	for _, tt := range []struct {
		own                  bool
		wantGroup, wantIdent pdu.Name
	}{
		{true, pdu.Name(key), pdu.Name(key)},
		{false, dom, pdu.Name(key)},
	} {
		a := askerOfMember(client.Member{Meta: meta, Domain: dom, Own: tt.own})
		if a.group != tt.wantGroup || a.ident != tt.wantIdent {
			t.Fatalf("own domain %v: group %v ident %v, want %v %v", tt.own, a.group, a.ident, tt.wantGroup, tt.wantIdent)
		}
	}
}

// TestRequesterVerifyBudget (Session 15): the receive loop verifies at most
// verifyBurst proofs at once and verifyRate a second over every name
// together; over it a request counts unproven (a name proven before keeps
// its identity), its proof neither remembered nor refused, so it proves
// once the budget allows. A member sending a proof from each of its many
// names cannot make the loop check signatures for every request.
func TestRequesterVerifyBudget(t *testing.T) {
	c := newRequesterCache(1<<20, 1<<20)
	t0 := time.Unix(1_000_000, 0)
	checks := 0
	name := func(i int) pdu.Name { return pdu.Name{0xbb, byte(i >> 8), byte(i)} }
	// Each name a node of its own (credentials known before cost no check).
	of := func(src pdu.Name) verifyFunc {
		return func(gate gateFunc) (asker, time.Time, error) {
			if _, _, done, err := gate(src, src[:]); done {
				return asker{}, time.Time{}, err
			}
			checks++
			return asker{group: pdu.Name{1}, ident: pdu.Name{1}}, t0.Add(time.Hour), nil
		}
	}
	old := pdu.Name{0xcc}
	if _, r, _ := c.lookup(old, []byte("proof"), t0.Add(-2*proofRecheck), of(old)); r != cacheProven {
		t.Fatalf("a name proven earlier: %q", r)
	}
	checks = 0
	results := map[string]int{}
	for i := range 2500 {
		_, r, _ := c.lookup(name(i), []byte("proof"), t0, of(name(i)))
		results[r]++
	}
	if checks != verifyBurst || results[cacheProven] != verifyBurst || results[cacheOverBudget] != 2500-verifyBurst {
		t.Fatalf("2,500 names at once: %d verified, results %v; want %v verified, the rest over_budget", checks, results, verifyBurst)
	}
	// The name proven earlier brings another proof (past proofRecheck)
	// while the budget is spent: its identity stands.
	if a, r, _ := c.lookup(old, []byte("another"), t0, of(pdu.Name{0xcd})); r != cacheOverBudget || a.ident != (pdu.Name{1}) {
		t.Fatalf("proven name over budget: %q as %v", r, a.ident)
	}
	// Half a second later: half a burst more.
	clear(results)
	checks = 0
	for i := 1000; i < 2500; i++ {
		_, r, _ := c.lookup(name(i), []byte("proof"), t0.Add(500*time.Millisecond), of(name(i)))
		results[r]++
	}
	if want := int(verifyRate / 2); checks != want || results[cacheProven] != want {
		t.Fatalf("half a second later: %d verified, results %v; want %d", checks, results, want)
	}
	if len(c.refused) != 0 {
		t.Fatalf("%d names refused for an over-budget proof", len(c.refused))
	}
}

// TestProofOfAnotherNameNotVerified (Session 15): a proof whose
// credentials are not of the request's source name is refused by the
// parse-and-compare checks, before any signature is checked: the server's
// client (nil here) is never asked to verify the membership. A member
// sending its real credentials from each of its many names costs a parse
// per name, not a chain verify.
func TestProofOfAnotherNameNotVerified(t *testing.T) {
	dom, err := certs.NewIdentity(certs.KindDomain, "budget domain")
	if err != nil {
		t.Fatal(err)
	}
	node, err := certs.NewIdentity(certs.KindClient, "budget member")
	if err != nil {
		t.Fatal(err)
	}
	member, err := certs.IssueMember(dom, node.Name, time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	proof, err := (&wire.Requester{Credentials: tunnel.EncodeCredentials(node.Meta, member, dom.Meta)}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// No client: a membership check would crash.
	s := &Server{reqs: newRequesterCache(1<<10, 64), met: newMetrics(prometheus.NewRegistry()), log: zap.NewNop(),
		logLim: logging.NewLimiter(0, 0, time.Now)}
	if _, _, err := requesterClaim(pdu.Name{0xaa}, proof); err == nil || !strings.Contains(err.Error(), "the request comes from") {
		t.Fatalf("a proof of another name: %v", err)
	}
	if a := s.askerOf(pdu.Name{0xaa}, proof); a != unprovenAsker || s.reqs.tokens != verifyBurst {
		t.Fatalf("a proof of another name: counted as %v, %v of the verify budget left (want all)", a.ident, s.reqs.tokens)
	}
	// Of its own name, over the budget: refused before the signature
	// check (the nil client would crash), not as an invalid proof.
	s.reqs.tokens, s.reqs.last = 0, time.Now().Add(time.Hour)
	if a := s.askerOf(node.Name, proof); a != unprovenAsker {
		t.Fatalf("a proof of its own name over the budget: counted as %v", a.ident)
	}
	if _, refused := s.reqs.refused[node.Name]; refused {
		t.Fatal("a proof of its own name over the budget: the name refused")
	}
	if got := counterValue(s.met.requesterCache.WithLabelValues(cacheOverBudget)); got != 1 {
		t.Fatalf("over_budget %v, want 1", got)
	}
}

// TestRequesterNodeGate (Session 16): proofs are gated by the node whose
// credentials they carry. A node's credentials verified once prove its
// other names without a check (counted known) until they expire; a node
// whose credentials were checked is not checked again within proofRecheck
// unless these are the ones that held, and never for the same ones that
// did not: a member (its router takes its session names only from it,
// certs.VerifyRoute) sending forged credentials from thousands of its
// session names costs one check per 10 s, not one per name; a forged
// proof in a proven node's name does not unseat its credentials.
func TestRequesterNodeGate(t *testing.T) {
	c := newRequesterCache(1<<20, 1<<20)
	t0 := time.Unix(1_000_000, 0)
	checks := 0
	claim := func(node pdu.Name, creds string, valid bool) verifyFunc {
		return func(gate gateFunc) (asker, time.Time, error) {
			if a, na, done, err := gate(node, []byte(creds)); done {
				return a, na, err
			}
			checks++
			if !valid {
				return asker{}, time.Time{}, errors.New("forged membership")
			}
			return asker{group: node, ident: node}, t0.Add(time.Hour), nil
		}
	}
	src := func(i int) pdu.Name { return pdu.Name{0x5e, byte(i >> 8), byte(i)} }
	alice, mallory := pdu.Name{0xa1}, pdu.Name{0x66}
	results := map[string]int{}
	lookup := func(i int, now time.Time, v verifyFunc) asker {
		a, r, _ := c.lookup(src(i), []byte(fmt.Sprint("proof ", i)), now, v)
		results[r]++
		return a
	}
	// Alice proves from 100 names with one membership: one check.
	for i := range 100 {
		if a := lookup(i, t0, claim(alice, "alice's", true)); a.ident != alice {
			t.Fatalf("alice's name %d: counted as %v", i, a.ident)
		}
	}
	if checks != 1 || results[cacheProven] != 1 || results[cacheKnown] != 99 {
		t.Fatalf("one node's 100 names: %d checks, results %v; want 1 check, 1 proven, 99 known", checks, results)
	}
	// Mallory sends forged credentials from 1,000 of its names, each
	// different, for a minute: one check per proofRecheck.
	checks = 0
	clear(results)
	for i := range 1000 {
		lookup(1000+i, t0.Add(time.Duration(i)*60*time.Millisecond), claim(mallory, fmt.Sprint("forged ", i), false))
	}
	if want := 6; checks != want || results[cacheInvalid] != want || results[cacheRefused] != 1000-want {
		t.Fatalf("1,000 forged proofs of one node over 60 s: %d checks, results %v; want %d checks", checks, results, want)
	}
	// A forged proof in alice's name (a member router's) is checked once;
	// her own credentials still prove her next name without a check.
	checks = 0
	lookup(3000, t0.Add(time.Minute), claim(alice, "forged alice", false))
	if a := lookup(3001, t0.Add(time.Minute), claim(alice, "alice's", true)); a.ident != alice || checks != 1 {
		t.Fatalf("alice after a forgery in her name: counted as %v after %d checks, want alice after 1", a.ident, checks)
	}
	// Expired: checked again.
	checks = 0
	lookup(3002, t0.Add(2*time.Hour), claim(alice, "alice's", true))
	if checks != 1 {
		t.Fatalf("alice's expired credentials: %d checks, want 1", checks)
	}
}

// TestRefusedProofsSpendNoBudget (Session 15, review8): proofs the
// parse-and-compare checks refuse — a member sending its own credentials
// from each of its many other names — take nothing from the verify
// budget, so a proof that needs its signature checked is checked the same
// second. (With the budget taken before those checks, 2,500 such names
// spent it and every honest newcomer was over_budget: unproven, and its
// client, answered, stopped sending its proof.)
func TestRefusedProofsSpendNoBudget(t *testing.T) {
	c := newRequesterCache(1<<20, 1<<20)
	t0 := time.Unix(1_000_000, 0)
	notMine := func(gateFunc) (asker, time.Time, error) {
		return asker{}, time.Time{}, errors.New("the request comes from another name")
	}
	for i := range 2500 {
		if _, r, _ := c.lookup(pdu.Name{0xab, byte(i >> 8), byte(i)}, []byte("alice's credentials"), t0, notMine); r != cacheInvalid {
			t.Fatalf("name %d: %q, want invalid", i, r)
		}
	}
	honest := func(gate gateFunc) (asker, time.Time, error) {
		if _, _, done, err := gate(pdu.Name{0xcd}, []byte("bob's credentials")); done {
			return asker{}, time.Time{}, err
		}
		return asker{group: pdu.Name{2}, ident: pdu.Name{2}}, t0.Add(time.Hour), nil
	}
	if a, r, _ := c.lookup(pdu.Name{0xcd}, []byte("bob's proof"), t0, honest); r != cacheProven || a.ident != (pdu.Name{2}) {
		t.Fatalf("an honest newcomer after 2,500 refused proofs: %q as %v, want proven", r, a.ident)
	}
	if c.tokens != verifyBurst-1 {
		t.Fatalf("%v tokens left, want %v (one signature checked)", c.tokens, verifyBurst-1)
	}
}
