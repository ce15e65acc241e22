package client

import (
	"bytes"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/router/routertest"
)

// TestRequesterProofCarriesSession (review7): once the client has a
// session name, the proof a CREATE carries holds the session's metadata
// whichever of its two names it is sent from — CapsuleClient.Create picks
// the proof before sending, and ReplyName moves between the two names
// while a re-attachment re-advertises the session; with a proof for the
// other name the capsule would count in the server's unproven pool for
// good. No credentials, or a third name: no proof.
func TestRequesterProofCarriesSession(t *testing.T) {
	dom, err := routertest.NewDomain("proof test")
	if err != nil {
		t.Fatal(err)
	}
	me, err := certs.NewIdentity(certs.KindClient, "member")
	if err != nil {
		t.Fatal(err)
	}
	net := &fakeNet{self: me.Name, done: make(chan struct{})}
	c := New(me, net, Options{})
	t.Cleanup(func() { _ = c.Close(); _ = net.Close() })
	if c.requesterProof(me.Name) != nil {
		t.Fatal("a proof without credentials")
	}
	member, err := dom.Member(me)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetQUICCredentials(member, dom.ID.Meta, nil); err != nil {
		t.Fatal(err)
	}
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
	dom, err := routertest.NewDomain("proof test")
	if err != nil {
		t.Fatal(err)
	}
	me, err := certs.NewIdentity(certs.KindClient, "member")
	if err != nil {
		t.Fatal(err)
	}
	net := &fakeNet{self: me.Name, done: make(chan struct{})}
	c := New(me, net, Options{})
	t.Cleanup(func() { _ = c.Close(); _ = net.Close() })
	member, err := dom.Member(me)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetQUICCredentials(member, dom.ID.Meta, nil); err != nil {
		t.Fatal(err)
	}
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
