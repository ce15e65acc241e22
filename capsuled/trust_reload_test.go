package capsuled_test

import (
	"context"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestTrustWithdrawnOnReload (Session 17): a capsule server that stops
// trusting a domain on reload (gdp capsuled's trusted_domains, SIGHUP:
// client.Endpoint.Reload with the new trust, then Server.ReloadTrust)
// no longer counts that domain's members as proven. A partner member
// proven before — its requests hits, no proof needed — counts in the
// unproven pool after the reload, and its proof, sent again, does not
// hold; an own-domain member stays proven without proving again. Trusted
// again, the partner's proof — refused under the old trust, the very same
// bytes — is checked at once and holds. Real routers, tunnels and
// certificates; the routers trust the partner throughout.
func TestTrustWithdrawnOnReload(t *testing.T) {
	w := newWorld(t)
	partner := w.trust("partner")
	r1 := w.router("r1")
	s := w.newReplica(r1, "s")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	pid := clientID(t, "partner member")
	pc := w.attachIn(r1, partner, pid)
	oid, oc := w.member(r1, "own member")
	c := pdu.Name{0xca, 0xfe}
	ask := func(what string, src pdu.Name, cl interface{ Credentials() []byte }, withProof bool, want string) {
		t.Helper()
		m := &wire.Message{Op: wire.OpMetadata, Capsule: c[:]}
		if withProof {
			m.Proof = proofOf(t, cl.Credentials(), nil)
		}
		before := cacheResult(s, want)
		var got wire.Status
		if src == pid.Name {
			got = rawRequest(ctx, t, pc, src, s.id.Name, m)
		} else {
			got = rawRequest(ctx, t, oc, src, s.id.Name, m)
		}
		if got == 0 {
			t.Fatalf("%s: no answer", what)
		}
		if after := cacheResult(s, want); after != before+1 {
			t.Fatalf("%s: requester_cache_total{result=%q} %v, want %v", what, want, after, before+1)
		}
	}
	ask("the partner's proof", pid.Name, pc, true, "proven")
	ask("the partner, no proof", pid.Name, pc, false, "hit")
	ask("the own member's proof", oid.Name, oc, true, "proven")

	// The server stops trusting the partner domain.
	withdrawn0 := cacheResult(s, "withdrawn")
	member, err := w.dom.Member(s.id)
	if err != nil {
		t.Fatal(err)
	}
	onlyOwn := &certs.Verifier{Trusted: map[certs.Name]*certs.Metadata{w.dom.ID.Name: w.dom.ID.Meta}, Now: w.dom.Verifier.Now, Skew: w.dom.Verifier.Skew}
	if err := s.ep.Reload(member, w.dom.ID.Meta, onlyOwn); err != nil {
		t.Fatal(err)
	}
	s.srv.ReloadTrust(onlyOwn)
	if got := cacheResult(s, "withdrawn") - withdrawn0; got != 1 {
		t.Fatalf("requester_cache_total{result=\"withdrawn\"} rose by %v at the reload, want 1 (the partner's name)", got)
	}
	ask("the partner after the reload, no proof", pid.Name, pc, false, "unproven")
	ask("the partner's proof after the reload", pid.Name, pc, true, "invalid")
	ask("the own member after the reload, no proof", oid.Name, oc, false, "hit")

	// Trusted again: the same proof is checked at once, not refused.
	both := &certs.Verifier{Trusted: map[certs.Name]*certs.Metadata{w.dom.ID.Name: w.dom.ID.Meta, partner.ID.Name: partner.ID.Meta},
		Now: w.dom.Verifier.Now, Skew: w.dom.Verifier.Skew}
	if err := s.ep.Reload(member, w.dom.ID.Meta, both); err != nil {
		t.Fatal(err)
	}
	s.srv.ReloadTrust(both)
	ask("the partner's proof once trusted again", pid.Name, pc, true, "proven")
}

// TestTrustWithdrawnEndsSubscriptions (Session 18): a reload that stops
// trusting a domain ends the running subscriptions its members proved
// themselves for, counted
// gdp_capsuled_subscription_quota_total{reason="trust_withdrawn"}; an own
// member's subscription runs on. Before, they were served until their
// next renewal in the share of an identity no longer proven. The
// partner's next SUBSCRIBE is admitted as any unproven subscriber's.
// Real routers, tunnels and certificates.
func TestTrustWithdrawnEndsSubscriptions(t *testing.T) {
	w := newWorld(t)
	partner := w.trust("partner")
	r1 := w.router("r1")
	s := w.newReplica(r1, "s")
	tc := newTestCapsule(t, "followed")
	tc.create(t, w.user(r1, "writer"), 1, s)
	c := tc.meta.Name()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	pid := clientID(t, "partner member")
	pc := w.attachIn(r1, partner, pid)
	oid, oc := w.member(r1, "own member")
	subscribe := func(what string, cl *client.Client, src pdu.Name) {
		t.Helper()
		m := &wire.Message{Op: wire.OpSubscribe, Capsule: c[:], Lease: 60_000, Proof: proofOf(t, cl.Credentials(), nil)}
		if got := rawRequest(ctx, t, cl, src, s.id.Name, m); got != wire.StatusOK {
			t.Fatalf("%s: SUBSCRIBE answered %v, want OK", what, got)
		}
	}
	live := func() float64 { return s.metric("gdp_capsuled_subscriptions", "") }
	subscribe("the partner member", pc, pid.Name)
	subscribe("the own member", oc, oid.Name)
	if got := live(); got != 2 {
		t.Fatalf("%v live subscriptions, want 2", got)
	}

	member, err := w.dom.Member(s.id)
	if err != nil {
		t.Fatal(err)
	}
	onlyOwn := &certs.Verifier{Trusted: map[certs.Name]*certs.Metadata{w.dom.ID.Name: w.dom.ID.Meta}, Now: w.dom.Verifier.Now, Skew: w.dom.Verifier.Skew}
	if err := s.ep.Reload(member, w.dom.ID.Meta, onlyOwn); err != nil {
		t.Fatal(err)
	}
	s.srv.ReloadTrust(onlyOwn)
	if got := subQuota(t, s, "trust_withdrawn"); got != 1 {
		t.Fatalf("subscription_quota_total{reason=\"trust_withdrawn\"} %v after the reload, want 1 (the partner's)", got)
	}
	if got := live(); got != 1 {
		t.Fatalf("%v live subscriptions after the reload, want 1 (the own member's)", got)
	}
	subscribe("the partner member again, unproven now", pc, pid.Name)
	if got := live(); got != 2 {
		t.Fatalf("%v live subscriptions after the partner subscribed again, want 2", got)
	}
	if got := cacheResult(s, "invalid"); got < 1 {
		t.Fatalf("requester_cache_total{result=\"invalid\"} %v: the partner's proof after the reload was not refused", got)
	}
}
