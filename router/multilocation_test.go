package router_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/router"
)

// TestCapsuleAtThreeRouters: three servers hold one capsule, each attached
// to a different router (real loopback QUIC tunnels, routers meet on
// demand through the resolver). A MULTICAST PDU from a client at a fourth
// router, and from a client at one of the holders' routers, reaches every
// server exactly once; an anycast PDU reaches exactly one; after one
// server withdraws, the other two still get multicast and anycast.
func TestCapsuleAtThreeRouters(t *testing.T) {
	w := newWorld(t)
	cap, err := newCapsule("replicated at three routers")
	if err != nil {
		t.Fatal(err)
	}
	var nodes []*router.Node
	var servers []*client.Client
	for i := range 3 {
		n, _ := w.startNode(fmt.Sprintf("holder %d", i), router.Config{})
		id, err := certs.NewIdentity(certs.KindServer, fmt.Sprintf("server %d", i))
		if err != nil {
			t.Fatal(err)
		}
		s := w.dialEndpoint(n, id)
		ad, err := cap.AdCert(s.Name(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		advertise(t, s, s.Self(), client.CapsuleRoute(cap.Meta, ad))
		nodes, servers = append(nodes, n), append(servers, s)
	}
	far, _ := w.startNode("client router", router.Config{})
	ctx := context.Background()
	name := cap.Meta.Name()
	holders := func(k int) {
		t.Helper()
		eventually(t, fmt.Sprintf("%d location records", k), func() bool {
			all, err := w.res.LookupAll(ctx, name)
			return (err == nil && len(all) == k) || (k == 0 && err != nil)
		})
	}
	holders(3)

	clientAt := func(n *router.Node, desc string) *client.Client {
		id, err := certs.NewIdentity(certs.KindClient, desc)
		if err != nil {
			t.Fatal(err)
		}
		c := w.dialEndpoint(n, id)
		advertise(t, c)
		w.published(c.Name())
		return c
	}
	cFar := clientAt(far, "client far")
	cNear := clientAt(nodes[0], "client near")

	// copies collects what each server receives of payload until want
	// copies in all arrived (at most 3 s), then 150 ms more for any
	// duplicate.
	copies := func(payload string, want int) []int {
		got := make([]int, len(servers))
		deadline := time.Now().Add(3 * time.Second)
		total := 0
		for time.Now().Before(deadline) {
			if grace := time.Now().Add(150 * time.Millisecond); total >= want && grace.Before(deadline) {
				deadline = grace
			}
			for i, s := range servers {
				rctx, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
				m, err := s.Receive(rctx)
				cancel()
				if err == nil && string(m.Payload) == payload {
					got[i]++
					total++
				}
			}
		}
		return got
	}
	multicast := func(c *client.Client, payload string, want []int) {
		t.Helper()
		if _, err := c.SendFrom(c.Name(), name, pdu.FlagMulticast|pdu.FlagNoNAK, []byte(payload)); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, k := range want {
			n += k
		}
		if got := copies(payload, n); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("multicast %q: copies per server %v, want %v", payload, got, want)
		}
	}
	anycast := func(c *client.Client, payload string, n int, live []bool) {
		t.Helper()
		for range n {
			if _, err := c.Send(name, []byte(payload)); err != nil {
				t.Fatal(err)
			}
		}
		got := copies(payload, n)
		total := 0
		for i, k := range got {
			if k > 0 && !live[i] {
				t.Fatalf("anycast %q reached withdrawn server %d", payload, i)
			}
			total += k
		}
		if total != n {
			t.Fatalf("anycast %q: %d copies of %d PDUs (per server %v)", payload, total, n, got)
		}
	}

	multicast(cFar, "from far", []int{1, 1, 1})
	multicast(cFar, "from far again", []int{1, 1, 1}) // now from the FIB
	multicast(cNear, "from a holder's router", []int{1, 1, 1})
	multicast(cNear, "from a holder's router again", []int{1, 1, 1})
	anycast(cFar, "anycast far", 12, []bool{true, true, true})
	anycast(cNear, "anycast near", 6, []bool{true, true, true})
	if got := far.Router.FIB().Lookup(name); len(got) != 3 {
		t.Fatalf("client router's FIB has %d hops for the capsule, want 3", len(got))
	}

	// Server 1 withdraws the capsule: its router withdraws its record
	// only, and the others stay reachable.
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := servers[1].Withdraw(wctx, name); err != nil {
		t.Fatal(err)
	}
	holders(2)
	multicast(cFar, "after withdraw", []int{1, 0, 1})
	multicast(cNear, "after withdraw, near", []int{1, 0, 1})
	anycast(cFar, "anycast after withdraw", 12, []bool{true, false, true})
}
