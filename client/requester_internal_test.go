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

// TestRequestProofUntilAnswered (Session 15): a request to a server
// carries the requester proof until that server answered one from the
// same source name, then none (a READ costs no byte more) until
// ProofRefresh has passed; another destination, or the same one from
// another name, still gets it; a negative refresh (a client of before)
// never sends one.
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
	for i := range 3 {
		if c.RequestProof(me.Name, server, refresh) == nil {
			t.Fatalf("request %d before an answer: no proof", i)
		}
	}
	c.ProofAnswered(me.Name, capsuleName, server) // a request to the capsule's name, answered by server
	for _, dst := range []pdu.Name{server, capsuleName} {
		if c.RequestProof(me.Name, dst, refresh) != nil {
			t.Fatalf("a proof to %v after it answered one", dst)
		}
	}
	if c.RequestProof(me.Name, other, refresh) == nil {
		t.Fatal("no proof to a server that never answered one")
	}
	if c.RequestProof(sess.Name, server, refresh) == nil {
		t.Fatal("no proof from another name of ours")
	}
	if c.RequestProof(me.Name, server, time.Nanosecond) == nil {
		t.Fatal("no proof after the refresh")
	}
	if c.RequestProof(me.Name, other, -1) != nil {
		t.Fatal("a proof with a negative refresh")
	}
}
