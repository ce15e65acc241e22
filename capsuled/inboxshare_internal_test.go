package capsuled

import (
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestInboxSharePerIdentity (Session 17): the endpoint inbox before the
// receive loop is shared per proven identity: two source names the
// requester cache holds as one member's are one share of the inbox (the
// second refused once the first holds it), while a name not proven keeps
// a share of its own (its PDU may carry the proof not checked yet). Per
// source name, as before, a member's second name had a share of its own.
func TestInboxSharePerIdentity(t *testing.T) {
	c := newRequesterCache(100, 10)
	now := time.Now()
	mallory := asker{group: pdu.Name{0xa1}, ident: pdu.Name{0xa1}, domain: pdu.Name{0xd0}}
	own, session, stranger := pdu.Name{0x01}, pdu.Name{0x02}, pdu.Name{0x03}
	for _, n := range []pdu.Name{own, session} {
		if _, result, _ := c.lookup(n, []byte{n[0]}, now, func(gateFunc) (asker, time.Time, error) {
			return mallory, now.Add(time.Hour), nil
		}); result != cacheProven {
			t.Fatalf("proving %v: %s", n, result)
		}
	}
	if c.inboxShare(own) != c.inboxShare(session) || c.inboxShare(own) != mallory.ident {
		t.Fatal("a member's two proven names are not one inbox share")
	}
	if c.inboxShare(stranger) != stranger {
		t.Fatal("a name not proven is not its own inbox share")
	}

	id, err := certs.NewIdentity(certs.KindServer, "s")
	if err != nil {
		t.Fatal(err)
	}
	net := &peerNet{self: id.Name, done: make(chan struct{})}
	cl := client.New(id, net, client.Options{InboxSize: 16})
	t.Cleanup(func() { _ = cl.Close(); _ = net.Close() })
	cl.SetInboxShare(c.inboxShare)
	data := func(src pdu.Name) []byte {
		p, err := (&pdu.Header{Type: pdu.TypeData, TTL: 32, Src: src, Dst: id.Name, Payload: []byte{1}}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Nothing reads the inbox: mallory's own name takes what its share
	// allows (half of 16 with one source waiting).
	for range 16 {
		cl.HandlePDU(data(own))
	}
	held := cl.DroppedShare.Load()
	if held != 8 {
		t.Fatalf("%d of mallory's 16 dropped for its share, want 8", held)
	}
	cl.HandlePDU(data(session))
	if got := cl.DroppedShare.Load() - held; got != 1 {
		t.Fatal("mallory's session name took a share of its own")
	}
	cl.HandlePDU(data(stranger))
	if got := cl.DroppedShare.Load() - held; got != 1 {
		t.Fatal("a name not proven was refused with mallory's share")
	}
}
