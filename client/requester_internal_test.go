package client

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/router/routertest"
)

// fakeClient is a Client of a new member identity over a fake network,
// holding no credentials yet.
func fakeClient(t *testing.T) (*Client, *certs.Identity) {
	t.Helper()
	me, err := certs.NewIdentity(certs.KindClient, "member")
	if err != nil {
		t.Fatal(err)
	}
	net := &fakeNet{self: me.Name, done: make(chan struct{})}
	c := New(me, net, Options{})
	t.Cleanup(func() { _ = c.Close(); _ = net.Close() })
	return c, me
}

// proveMember gives c a membership of a new domain, as an attachment's
// QUIC credentials do: its requests can carry a proof from then on.
func proveMember(t *testing.T, c *Client) {
	t.Helper()
	dom, err := routertest.NewDomain("proof test")
	if err != nil {
		t.Fatal(err)
	}
	member, err := dom.Member(c.id)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetQUICCredentials(member, dom.ID.Meta, nil); err != nil {
		t.Fatal(err)
	}
}

// TestRequesterProofCarriesSession (review7): once the client has a
// session name, the proof a CREATE carries holds the session's metadata
// whichever of its two names it is sent from — CapsuleClient.Create picks
// the proof before sending, and ReplyName moves between the two names
// while a re-attachment re-advertises the session; with a proof for the
// other name the capsule would count in the server's unproven pool for
// good. No credentials, or a third name: no proof.
func TestRequesterProofCarriesSession(t *testing.T) {
	c, me := fakeClient(t)
	if c.requesterProof(me.Name) != nil {
		t.Fatal("a proof without credentials")
	}
	proveMember(t, c)
	source := func(src pdu.Name) []byte {
		t.Helper()
		b := c.requesterProof(src)
		if b == nil {
			t.Fatalf("no proof from %s", src)
		}
		r, err := wire.UnmarshalRequester(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r.Credentials, c.Credentials()) {
			t.Fatal("the proof does not carry the client's credentials")
		}
		return r.Source
	}
	if s := source(me.Name); s != nil {
		t.Fatalf("no session yet, but the proof carries source metadata %x", s)
	}
	sess, err := c.Session()
	if err != nil {
		t.Fatal(err)
	}
	want := sess.Target.Marshal()
	for _, src := range []pdu.Name{me.Name, sess.Name} {
		if s := source(src); !bytes.Equal(s, want) {
			t.Fatalf("from %s: source metadata %x, want the session's", src, s)
		}
	}
	if c.requesterProof(pdu.Name{9}) != nil {
		t.Fatal("a proof for a name the client cannot prove")
	}
}

// TestRequestProofUntilAnswered (Session 15, per server since Session
// 16): a request to a server carries the requester proof until that
// server answered one from the same source name, then none (a READ costs
// no byte more) until ProofRefresh has passed; another server, or the
// same one from another name, still gets it; a negative refresh (a client
// of before) never sends one. A request to a capsule's name is taken to
// reach the server that answered the last one sent to it: when another
// replica answers (routing moved the name), the next request carries the
// proof until that replica has answered one; an unanswered request or a
// NAK makes the next carry it.
func TestRequestProofUntilAnswered(t *testing.T) {
	c, me := fakeClient(t)
	proveMember(t, c)
	sess, err := c.Session()
	if err != nil {
		t.Fatal(err)
	}
	server, capsuleName, other := pdu.Name{1}, pdu.Name{2}, pdu.Name{3}
	const refresh = time.Hour
	proof := func(src, dst pdu.Name, refresh time.Duration) bool {
		return c.RequestProof(src, dst, refresh) != nil
	}
	for i := range 3 {
		if !proof(me.Name, capsuleName, refresh) {
			t.Fatalf("request %d before an answer: no proof", i)
		}
	}
	c.RequestAnswered(me.Name, capsuleName, server, true) // a request to the capsule's name, answered by server
	for _, dst := range []pdu.Name{server, capsuleName} {
		if proof(me.Name, dst, refresh) {
			t.Fatalf("a proof to %v after it answered one", dst)
		}
	}
	if !proof(me.Name, other, refresh) {
		t.Fatal("no proof to a server that never answered one")
	}
	if !proof(sess.Name, server, refresh) || !proof(sess.Name, capsuleName, refresh) {
		t.Fatal("no proof from another name of ours")
	}
	if !proof(me.Name, server, time.Nanosecond) || !proof(me.Name, capsuleName, time.Nanosecond) {
		t.Fatal("no proof after the refresh")
	}
	if proof(me.Name, other, -1) {
		t.Fatal("a proof with a negative refresh")
	}

	// Routing moves the capsule's name to other: its answer to a request
	// without the proof makes the next carry it, until other answers one.
	c.RequestAnswered(me.Name, capsuleName, other, false)
	if !proof(me.Name, capsuleName, refresh) {
		t.Fatal("no proof to the capsule's name after another replica, never proven, answered")
	}
	if proof(me.Name, server, refresh) {
		t.Fatal("a proof to the first server, which still holds it")
	}
	c.RequestAnswered(me.Name, capsuleName, other, true)
	if proof(me.Name, capsuleName, refresh) || proof(me.Name, other, refresh) {
		t.Fatal("a proof after the new replica answered one")
	}
	// Back to the first server (still proven): none.
	c.RequestAnswered(me.Name, capsuleName, server, false)
	if proof(me.Name, capsuleName, refresh) {
		t.Fatal("a proof to the capsule's name while the server answering it holds one")
	}

	// Unanswered (a timeout, a NAK): the next request carries the proof,
	// to the capsule's name and to a server asked by name (it may have
	// restarted).
	c.RequestUnanswered(capsuleName)
	if !proof(me.Name, capsuleName, refresh) {
		t.Fatal("no proof to the capsule's name after an unanswered request")
	}
	c.RequestUnanswered(server)
	if !proof(me.Name, server, refresh) {
		t.Fatal("no proof to a server after an unanswered request")
	}
	if proof(me.Name, other, refresh) {
		t.Fatal("a proof to a server that answered one and was not silent")
	}
}

// TestSubscriptionRenewalUnansweredCarriesProof (Session 16): a follower
// whose proof was answered sends none on its renewals; when a renewal goes
// unanswered for the client's Timeout (the server down, perhaps
// restarting and forgetting the proof) the next one carries it, and once a proof-carrying renewal is
// answered the following ones carry none again. Mutation: the
// unanswered renewal not noted (RequestUnanswered skipped) — every renewal
// while the server is silent goes without the proof.
func TestSubscriptionRenewalUnansweredCarriesProof(t *testing.T) {
	tw := newTrustWorld(t)
	proveMember(t, tw.net.c)
	h1 := tw.servers[0].Name
	var mu sync.Mutex
	silent := false
	var renewals []bool // whether each SUBSCRIBE carried the proof
	tw.net.serve = func(h pdu.Header, m *wire.Message) []answer {
		if m.Op != wire.OpSubscribe {
			return tw.honest(h, m)
		}
		mu.Lock()
		defer mu.Unlock()
		renewals = append(renewals, m.Proof != nil)
		if silent {
			return nil
		}
		ok := m.Reply(wire.StatusOK)
		ok.From, ok.Head = m.From, 0
		return []answer{{from: h1, msg: ok}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rd, err := tw.cc.NewReader(ctx, tw.name, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := rd.Subscribe(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	// Renewals every 300 ms instead of every 10 s (the client's Timeout
	// is 200 ms: one renewal finds the one before it unanswered if no
	// answer came within that).
	sub.lease, sub.renew = 900*time.Millisecond, time.Now()
	// follow runs Next until n more SUBSCRIBEs were sent and returns
	// whether each carried the proof.
	follow := func(n int) []bool {
		t.Helper()
		mu.Lock()
		from := len(renewals)
		mu.Unlock()
		for {
			mu.Lock()
			got := len(renewals) - from
			mu.Unlock()
			if got >= n {
				break
			}
			nctx, ncancel := context.WithTimeout(ctx, 50*time.Millisecond)
			if _, err := sub.Next(nctx); err != nil && nctx.Err() == nil {
				t.Fatal(err)
			}
			ncancel()
			if ctx.Err() != nil {
				t.Fatalf("%d renewals sent, want %d", got, n)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(renewals[from : from+n])
	}
	// Answered: the proof was answered (the reader's INFO or the first
	// SUBSCRIBE), so renewals carry none.
	if got := follow(3); slices.Contains(got, true) {
		t.Fatalf("renewals answered by a server holding the proof: %v, want none with the proof", got)
	}
	mu.Lock()
	silent = true
	mu.Unlock()
	// The first silent one was sent without it; every later one carries
	// it (each finds the one before unanswered).
	got := follow(4)
	if got[0] || !got[1] || !got[2] || !got[3] {
		t.Fatalf("renewals while the server is silent carried the proof %v, want [false true true true]", got)
	}
	mu.Lock()
	silent = false
	mu.Unlock()
	// Answered again (with the proof): after at most one more
	// proof-carrying renewal, none.
	got = follow(4)
	if got[2] || got[3] {
		t.Fatalf("renewals after the server answered a proof: %v, want the last ones without", got)
	}
}
