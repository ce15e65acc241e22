package capsuled

import (
	"errors"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/pdu"
)

// TestRequesterCacheRetrust (Session 17): a reload's trusted domains drop
// what the requester cache believed under the old trust — the names and
// node verdicts proven by a domain no longer trusted, those whose
// own-domain standing changed with the server's domain — and forget every
// proof that did not hold; the other proven names stay. A proof whose
// check straddles the reload is checked again under the new trust
// (Session 18), and not remembered when a second reload straddles that.
func TestRequesterCacheRetrust(t *testing.T) {
	c := newRequesterCache(100, 10)
	t0 := time.Unix(1_000_000, 0)
	later := t0.Add(time.Hour)
	own, partner, third := pdu.Name{0xd0}, pdu.Name{0xd1}, pdu.Name{0xd2}
	checks := 0
	// member proves node key k of domain d (own: its identity is its
	// group), through the gate, so the node's verdict is kept too.
	member := func(k byte, d pdu.Name, isOwn bool) verifyFunc {
		return func(gate gateFunc) (asker, time.Time, error) {
			if a, exp, done, err := gate(pdu.Name{0xaa, k}, []byte{k}); done {
				return a, exp, err
			}
			checks++
			a := asker{group: d, ident: pdu.Name{k}, domain: d}
			if isOwn {
				a.group = pdu.Name{k}
			}
			return a, later, nil
		}
	}
	bad := func(gateFunc) (asker, time.Time, error) {
		checks++
		return asker{}, time.Time{}, errors.New("untrusted domain")
	}
	name := func(b byte) pdu.Name { return pdu.Name{0xee, b} }
	proof := func(k byte) []byte { return []byte{'p', k} }
	step := func(what string, src pdu.Name, p []byte, verify verifyFunc, wantResult string, wantIdent pdu.Name, wantChecks int) {
		t.Helper()
		a, result, _ := c.lookup(src, p, t0, verify)
		if result != wantResult || a.ident != wantIdent || checks != wantChecks {
			t.Fatalf("%s: %q as %v after %d checks, want %q as %v after %d", what, result, a.ident, checks, wantResult, wantIdent, wantChecks)
		}
	}
	step("own member", name(1), proof(1), member(1, own, true), cacheProven, pdu.Name{1}, 1)
	step("partner member", name(2), proof(2), member(2, partner, false), cacheProven, pdu.Name{2}, 2)
	step("third domain's member", name(3), proof(3), member(3, third, false), cacheProven, pdu.Name{3}, 3)
	step("a proof of a domain not trusted yet", name(4), proof(4), bad, cacheInvalid, unprovenGroup, 4)
	step("the same again: refused", name(4), proof(4), bad, cacheRefused, unprovenGroup, 4)

	trusts := func(ds ...pdu.Name) func(pdu.Name) bool {
		return func(d pdu.Name) bool {
			for _, x := range ds {
				if x == d {
					return true
				}
			}
			return false
		}
	}
	// The partner is withdrawn.
	got := c.retrust(trusts(own, third), own)
	if got != (retrusted{names: 1, nodes: 1, refused: 1}) {
		t.Fatalf("retrust dropped %+v, want the partner's name and node and the refused proof", got)
	}
	step("the partner's name after: unproven", name(2), nil, nil, cacheUnproven, unprovenGroup, 4)
	// Its node's verdict went too: a new name's proof is checked (and,
	// its domain untrusted, does not hold), not taken as known.
	step("a new name of the partner's node: checked again", name(5), proof(2), bad, cacheInvalid, unprovenGroup, 5)
	step("own member kept", name(1), nil, nil, cacheHit, pdu.Name{1}, 5)
	step("third domain's member kept", name(3), nil, nil, cacheHit, pdu.Name{3}, 5)
	step("the refused proof, now checked (its domain added)", name(4), proof(4), member(4, third, false), cacheProven, pdu.Name{4}, 6)

	// The server's own domain changes (a replaced domain key): the old
	// own domain's members and the members of the new one were counted
	// in the wrong groups, and go.
	got = c.retrust(trusts(own, partner, third), third)
	if got.names != 3 { // the old own domain's member (1), the new one's 3 and 4
		t.Fatalf("own domain changed: %d names dropped, want 3 (%+v)", got.names, got)
	}
	step("the old own domain's member after", name(1), nil, nil, cacheUnproven, unprovenGroup, 6)
	step("the new own domain's member after", name(3), nil, nil, cacheUnproven, unprovenGroup, 6)

	// A check that straddles a reload is checked again under the new
	// trust (Session 18; before, it was dropped at any reload, a renewal
	// too, and the client did not send its proof again for 30 s).
	// underTrust is the server's verifier: it reads the trust in force.
	trusted := trusts(own, partner, third)
	underTrust := func(k byte, d pdu.Name) verifyFunc {
		return func(gate gateFunc) (asker, time.Time, error) {
			if !trusted(d) {
				return bad(gate)
			}
			return member(k, d, d == third)(gate)
		}
	}
	// reloadDuring reloads to next while v's first check is under way
	// (every check, with again).
	reloadDuring := func(next func(pdu.Name) bool, again bool, v verifyFunc) verifyFunc {
		done := false
		return func(gate gateFunc) (asker, time.Time, error) {
			a, exp, err := v(gate)
			if !done || again {
				done = true
				trusted = next
				c.retrust(next, third)
			}
			return a, exp, err
		}
	}
	step("a proof checked across a renewal (the same trust)", name(6), proof(6),
		reloadDuring(trusts(own, partner, third), false, underTrust(6, partner)), cacheProven, pdu.Name{6}, 8)
	step("its name after: proven", name(6), nil, nil, cacheHit, pdu.Name{6}, 8)
	step("a partner's proof checked across the reload that withdraws the partner", name(7), proof(7),
		reloadDuring(trusts(own, third), false, underTrust(7, partner)), cacheInvalid, unprovenGroup, 10)
	step("its name after: unproven", name(7), nil, nil, cacheUnproven, unprovenGroup, 10)
	step("the renewed partner member's name after the withdrawal", name(6), nil, nil, cacheUnproven, unprovenGroup, 10)
	step("a proof whose re-check straddles another reload", name(8), proof(8),
		reloadDuring(trusts(own, third), true, underTrust(8, third)), cacheWithdrawn, unprovenGroup, 12)
	step("its name after: not remembered", name(8), nil, nil, cacheUnproven, unprovenGroup, 12)
	if _, ok := c.nodes[pdu.Name{0xaa, 8}]; ok {
		t.Fatal("the straddling check's node verdict was kept")
	}
}
