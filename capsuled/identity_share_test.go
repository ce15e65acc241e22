package capsuled_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/router"
	"github.com/gdpnet/gdpnet/router/routertest"
	"github.com/gdpnet/gdpnet/tunnel"
)

// Session 14: a capsule server's placement shares per proven identity and
// per domain. The CREATE carries the requester's membership (wire.
// Requester, key 13); real certificates of up to three trusted domains and
// one untrusted, real routers and tunnels.

// trust mints another domain that the world's routers and servers trust
// (call before starting them: the verifier's map is not locked).
func (w *world) trust(desc string) *routertest.Domain {
	w.t.Helper()
	d, err := routertest.NewDomain(desc)
	if err != nil {
		w.t.Fatal(err)
	}
	w.dom.Verifier.Trusted[d.ID.Name] = d.ID.Meta
	return d
}

// attachIn connects id, a member of dom, to router n (the world's attach,
// for a member of any domain).
func (w *world) attachIn(n *router.Node, dom *routertest.Domain, id *certs.Identity) *client.Client {
	w.t.Helper()
	c, ep, _ := w.attachDom(n, dom, id, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Advertise(ctx, c.Self()); err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() {
		_ = c.Close()
		_ = ep.Close()
	})
	return c
}

// memberIn is a capsule client of a fresh identity of dom.
func (w *world) memberIn(n *router.Node, dom *routertest.Domain, desc string) *client.CapsuleClient {
	w.t.Helper()
	return w.capsuleClient(w.attachIn(n, dom, clientID(w.t, desc)))
}

func (w *world) capsuleClient(c *client.Client) *client.CapsuleClient {
	cc := client.NewCapsuleClient(c, client.CapsuleOptions{Timeout: time.Second})
	w.t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// placeOn creates a fresh capsule on s through cc.
func placeOn(ctx context.Context, t *testing.T, cc *client.CapsuleClient, s *replica) error {
	t.Helper()
	tc := newTestCapsule(t, "shared")
	places, err := client.PlaceCapsule(tc.owner, tc.meta, []pdu.Name{s.id.Name}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return cc.Create(ctx, tc.owner, tc.meta, 0, places)
}

// refusedAs reports whether err is a 403 naming the limit.
func refusedAs(err error) wire.Status {
	var se *wire.StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	return 0
}

// TestPlacementsPerIdentity: one member creating from three names it
// holds — its own, a second node metadata of the same key (another device,
// with its own membership) and its session name (capsule-kind, owned by
// its key) — gets one max_per_requester share in all, not three; another
// member still places its whole share; the shares survive a restart.
func TestPlacementsPerIdentity(t *testing.T) {
	w := newWorld(t)
	r1 := w.router("r1")
	s := w.newReplicaConf(r1, "s", capsuled.Config{Placement: capsuled.PlacementPolicy{MaxPerRequester: 4}})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	id, err := certs.NewIdentity(certs.KindClient, "member, first device")
	if err != nil {
		t.Fatal(err)
	}
	meta2, err := certs.NewMetadata(certs.KindClient, id.Public(), "member, second device")
	if err != nil {
		t.Fatal(err)
	}
	id2, err := certs.NewIdentityFor(meta2, id.Key)
	if err != nil {
		t.Fatal(err)
	}
	if id2.Name == id.Name {
		t.Fatal("the second device has the first one's name")
	}
	c1 := w.attachIn(r1, w.dom, id)
	m1, m2 := w.capsuleClient(c1), w.capsuleClient(w.attachIn(r1, w.dom, id2))

	placed, refused := 0, 0
	try := func(cc *client.CapsuleClient, what string) {
		switch err := placeOn(ctx, t, cc, s); {
		case err == nil:
			placed++
		case refusedAs(err) == wire.StatusForbidden:
			refused++
		default:
			t.Fatalf("%s: %v", what, err)
		}
	}
	try(m1, "own name")
	try(m1, "own name")
	// From the session name: the proof carries the session's metadata.
	sess, err := c1.Session()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c1.Advertise(ctx, c1.Self(), sess); err != nil {
		t.Fatal(err)
	}
	if c1.ReplyName() != sess.Name {
		t.Fatal("the client does not send from its session name")
	}
	try(m1, "session name")
	try(m1, "session name")
	try(m2, "second device")
	try(m2, "second device")
	if placed != 4 || refused != 2 {
		t.Fatalf("one member from three names: %d placed, %d refused; want its one share of 4 placed, 2 refused", placed, refused)
	}
	if got := s.metric("gdp_capsuled_placements_refused_total", "requester_quota"); got != 2 {
		t.Fatalf("requester_quota refusals: %v, want 2", got)
	}
	if got := s.metric("gdp_capsuled_requester_proofs_total", "proven"); got != 6 {
		t.Fatalf("proven requesters: %v, want 6", got)
	}
	other := w.memberIn(r1, w.dom, "another member")
	for i := range 4 {
		if err := placeOn(ctx, t, other, s); err != nil {
			t.Fatalf("another member's capsule %d: %v", i, err)
		}
	}

	// The identity is kept in the placement files.
	s.stop()
	w.start(r1, s)
	if err := placeOn(ctx, t, m2, s); refusedAs(err) != wire.StatusForbidden {
		t.Fatalf("the member's next capsule after a restart: %v, want 403", err)
	}
	if err := placeOn(ctx, t, w.memberIn(r1, w.dom, "a third member"), s); err != nil {
		t.Fatalf("a third member after a restart: %v", err)
	}
}

// TestPlacementsPerDomain: another domain's members together place at
// most max_per_domain capsules, each member within its own share; the
// server's own domain's members are not pooled; a third domain has its
// own share.
func TestPlacementsPerDomain(t *testing.T) {
	w := newWorld(t)
	partner, third := w.trust("partner domain"), w.trust("third domain")
	r1 := w.router("r1")
	s := w.newReplicaConf(r1, "s", capsuled.Config{Placement: capsuled.PlacementPolicy{MaxPerRequester: 10, MaxPerDomain: 3}})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	count := func(dom *routertest.Domain, members, each int) (placed, refused int) {
		for range members {
			cc := w.memberIn(r1, dom, "member")
			for range each {
				switch err := placeOn(ctx, t, cc, s); {
				case err == nil:
					placed++
				case refusedAs(err) == wire.StatusForbidden:
					refused++
				default:
					t.Fatal(err)
				}
			}
		}
		return placed, refused
	}
	if p, r := count(partner, 5, 1); p != 3 || r != 2 {
		t.Fatalf("5 partner members: %d placed, %d refused; want the domain's 3 placed", p, r)
	}
	if got := s.metric("gdp_capsuled_placements_refused_total", "domain_quota"); got != 2 {
		t.Fatalf("domain_quota refusals: %v, want 2", got)
	}
	if p, r := count(w.dom, 5, 1); p != 5 || r != 0 {
		t.Fatalf("5 members of the server's own domain: %d placed, %d refused; want all 5 placed", p, r)
	}
	if p, r := count(third, 1, 4); p != 3 || r != 1 {
		t.Fatalf("a third domain's member: %d placed, %d refused; want its domain's 3", p, r)
	}
}

// rawCreate sends a CREATE of a fresh capsule from src (a name c holds) to
// server s with proof at key 13, as a client of any version could, and
// returns the answer's status.
func rawCreate(ctx context.Context, t *testing.T, c *client.Client, src pdu.Name, s *replica, proof []byte) wire.Status {
	t.Helper()
	st := rawRequest(ctx, t, c, src, s.id.Name, createOf(t, newTestCapsule(t, "raw"), s, proof))
	if st == 0 {
		t.Fatalf("no answer to a CREATE from %s", src)
	}
	return st
}

// createOf is a CREATE of tc's capsule on server s alone, with proof at
// key 13.
func createOf(t *testing.T, tc *testCapsule, s *replica, proof []byte) *wire.Message {
	t.Helper()
	places, err := client.PlaceCapsule(tc.owner, tc.meta, []pdu.Name{s.id.Name}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := capsule.SignPlacement(tc.owner.Key, tc.meta, []pdu.Name{s.id.Name}, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	name := tc.meta.Name()
	return &wire.Message{Op: wire.OpCreate, Capsule: name[:], Metadata: tc.meta.Marshal(),
		AdCert: places[0].AdCert.Marshal(), Replicas: wire.NameBytes([]pdu.Name{s.id.Name}), W: uint64(rec.W), Placement: rec.Marshal(), Proof: proof}
}

// holdCapsuleName makes c hold a capsule name owned by key (an AdCert
// from key to c's identity) and returns the name and its metadata.
func holdCapsuleName(ctx context.Context, t *testing.T, c *client.Client, holder *certs.Identity, owner *certs.Identity) (pdu.Name, *certs.Metadata) {
	t.Helper()
	meta, err := tryHoldName(ctx, t, c, holder, owner, nil)
	if err != nil {
		t.Fatal(err)
	}
	return meta.Name(), meta
}

// tryHoldName asks c's router to let c hold a capsule name owned by owner,
// with extra attributes (a session name's mark), by an AdCert from owner
// to holder; it returns the metadata and the router's refusal, if any.
func tryHoldName(ctx context.Context, t *testing.T, c *client.Client, holder, owner *certs.Identity, extra map[string]string) (*certs.Metadata, error) {
	t.Helper()
	meta, err := certs.NewCapsule(owner.Key, owner.Public(), "a name held")
	if err != nil {
		t.Fatal(err)
	}
	if extra != nil {
		meta.Extra = extra
	}
	now := time.Now()
	ad, err := certs.IssueAdCert(owner.Key, meta.Name(), holder.Name, now.Add(-time.Minute), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Advertise(ctx, client.CapsuleRoute(meta, ad))
	return meta, err
}

// TestUnprovenPool: CREATEs that prove no identity — none sent (an older
// client), or a forged proof: another member's credentials, a membership
// of an untrusted domain, an expired one, a capsule's metadata as the
// node, a source name owned by another key, a capsule name of the
// requester's key that is not its session, a capsule name of a victim's
// key that the attacker hosts (review7: it proved the victim) — are placed
// in ONE pool of max_per_domain for all such requesters, counted; none of
// them is charged to the member whose credentials were copied; a proof of
// the requester's session name holds; the pool survives a restart.
func TestUnprovenPool(t *testing.T) {
	w := newWorld(t)
	r1 := w.router("r1")
	s := w.newReplicaConf(r1, "s", capsuled.Config{Placement: capsuled.PlacementPolicy{MaxPerRequester: 5, MaxPerDomain: 3}})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	aid, ac := w.member(r1, "attacker")
	vid, vc := w.member(r1, "victim")
	victim := w.capsuleClient(vc)
	proof := func(creds, source []byte) []byte { return proofOf(t, creds, source) }
	now := time.Now()
	bad := w.badMemberships(aid)
	fresh := clientID(t, "a key minted for a capsule name")
	foreignName, foreignMeta := holdCapsuleName(ctx, t, ac, aid, fresh)
	capMember, err := certs.IssueMember(w.dom.ID, foreignName, now.Add(-time.Minute), now.Add(time.Hour)) // a domain's mistake
	if err != nil {
		t.Fatal(err)
	}
	ownName, ownMeta := holdCapsuleName(ctx, t, ac, aid, aid)
	// The victim placed a capsule owned by its node key on the attacker's
	// capsule server: the attacker holds that name (the victim's AdCert).
	hostedName, hostedMeta := holdCapsuleName(ctx, t, ac, aid, vid)
	sess := withSession(ctx, t, ac)

	for _, tt := range []struct {
		name  string
		src   pdu.Name
		proof []byte
		want  wire.Status
	}{
		{"no proof (an older client)", aid.Name, nil, wire.StatusCreated},
		{"another member's credentials", aid.Name, proof(victim.Client().Credentials(), nil), wire.StatusCreated},
		{"a membership of an untrusted domain", aid.Name, proof(tunnel.EncodeCredentials(aid.Meta, bad.untrustedMember, bad.untrusted.ID.Meta), nil), wire.StatusCreated},
		// the pool holds 3 now
		{"an expired membership", aid.Name, proof(tunnel.EncodeCredentials(aid.Meta, bad.expired, w.dom.ID.Meta), nil), wire.StatusForbidden},
		{"a capsule's metadata as the node", foreignName, proof(tunnel.EncodeCredentials(foreignMeta, capMember, w.dom.ID.Meta), nil), wire.StatusForbidden},
		{"a source name owned by another key", foreignName, proof(ac.Credentials(), foreignMeta.Marshal()), wire.StatusForbidden},
		{"no proof from another name", foreignName, nil, wire.StatusForbidden},
		{"a capsule name the requester's key owns, not its session", ownName, proof(ac.Credentials(), ownMeta.Marshal()), wire.StatusForbidden},
		// (review7) was proven as the victim: a server hosting a member's
		// capsules got that member's share, one per owner it hosts
		{"a capsule name the victim's key owns, hosted by the attacker", hostedName, proof(victim.Client().Credentials(), hostedMeta.Marshal()), wire.StatusForbidden},
		// proven: counted in the attacker's own share, not the pool
		{"the requester's session name", sess.Name, proof(ac.Credentials(), sess.Target.Marshal()), wire.StatusCreated},
	} {
		if got := rawCreate(ctx, t, ac, tt.src, s, tt.proof); got != tt.want {
			t.Fatalf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
	if got := s.metric("gdp_capsuled_placements_refused_total", "unproven_quota"); got != 6 {
		t.Fatalf("unproven_quota refusals: %v, want 6", got)
	}
	for _, r := range []struct {
		result string
		want   float64
	}{{"none", 2}, {"invalid", 7}, {"proven", 1}} {
		if got := s.metric("gdp_capsuled_requester_proofs_total", r.result); got != r.want {
			t.Fatalf("requester proofs %s: %v, want %v", r.result, got, r.want)
		}
	}
	// The victim's share is its own: none of the copies counted in it.
	for i := range 5 {
		if err := placeOn(ctx, t, victim, s); err != nil {
			t.Fatalf("the victim's capsule %d: %v", i, err)
		}
	}
	if err := placeOn(ctx, t, victim, s); refusedAs(err) != wire.StatusForbidden {
		t.Fatalf("the victim's sixth capsule: %v, want 403 (its share of 5)", err)
	}

	// The pool is kept in the placement files.
	s.stop()
	w.start(r1, s)
	old, oc := w.member(r1, "an older client")
	if got := rawCreate(ctx, t, oc, old.Name, s, nil); got != wire.StatusForbidden {
		t.Fatalf("an older client after a restart: %s, want 403 (the pool is full)", got)
	}
	if err := placeOn(ctx, t, w.memberIn(r1, w.dom, "a proven member"), s); err != nil {
		t.Fatalf("a proven member after a restart: %v", err)
	}
}

// TestStorageSharePerDomain: the bytes of another domain's capsules are
// bounded together (max_bytes_per_domain): once one partner member's
// writer has filled the domain's share, another partner member's APPEND
// is refused 503 (share="domain"), though its own requester share is
// untouched; a member of the server's own domain writes on.
func TestStorageSharePerDomain(t *testing.T) {
	const share = 12_000 // a record of 1,000 bytes is ~1,120 stored
	w := newWorld(t)
	partner := w.trust("partner domain")
	r1 := w.router("r1")
	s := w.newReplicaConf(r1, "s", capsuled.Config{Placement: capsuled.PlacementPolicy{MaxBytesPerDomain: share}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p1, p2, own := w.memberIn(r1, partner, "partner one"), w.memberIn(r1, partner, "partner two"), w.memberIn(r1, w.dom, "own")
	write := func(cc *client.CapsuleClient, batches int) int {
		tc := newTestCapsule(t, "bytes")
		tc.create(t, cc, 1, s)
		wr, err := cc.NewWriter(ctx, tc.meta.Name(), tc.writer.Key, client.WriterOptions{Cadence: -1, Replicas: []pdu.Name{s.id.Name}, W: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			wr.Close(cctx)
		}()
		stored := 0
		for range batches {
			bctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			for range 5 {
				if _, err := wr.Append(bctx, make([]byte, 1000)); err != nil {
					break
				}
			}
			d, err := wr.Flush(bctx)
			cancel()
			if err != nil || !d.Met {
				break
			}
			stored++
		}
		return stored
	}
	if n := write(p1, 10); n == 0 || n > 3 {
		t.Fatalf("the first partner member stored %d batches of 5 KB, want 1-3 (domain share %d bytes)", n, share)
	}
	if n := write(p2, 1); n != 0 {
		t.Fatalf("another partner member stored %d batches past its domain's share", n)
	}
	if got := s.metricLabels("gdp_capsuled_storage_refused_total", "append", "domain"); got < 2 {
		t.Fatalf("appends refused for the domain's share: %v, want both members'", got)
	}
	if got := s.metricLabels("gdp_capsuled_storage_refused_total", "append", "requester"); got != 0 {
		t.Fatalf("appends refused for a requester's share: %v, want 0", got)
	}
	if n := write(own, 3); n != 3 {
		t.Fatalf("a member of the server's own domain stored %d/3 batches", n)
	}
}
