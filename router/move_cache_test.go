package router_test

import (
	"context"
	"testing"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
)

// TestMoveSeenThroughResolverCache: every router has its own resolver
// cache (as a router embedding resolver.Open does) over the domain's
// records. A client at C reaches a server at A; the server moves to B,
// which A cannot reach. C's cached record and learnt route still say A, so
// the next PDU goes there and A NAKs NO_ROUTE; C must then forget the
// cached record too, or it would learn the same dead route again until the
// record expires.
func TestMoveSeenThroughResolverCache(t *testing.T) {
	w := newWorld(t)
	cached := func() resolver.Resolver {
		c, err := resolver.NewCache(w.res, resolver.CacheConfig{})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ra := w.router("a", router.Config{}, cached())
	rb := w.router("b", router.Config{}, cached())
	rc := w.router("c", router.Config{}, cached())
	w.connect(rc, ra)
	w.connect(rc, rb)
	ctx := context.Background()

	id, _ := certs.NewIdentity(certs.KindServer, "mover")
	atA, linkA := w.attachLink(ra, id)
	advertise(t, atA)
	cl := w.endpoint(rc, certs.KindClient, "client at C")
	advertise(t, cl)
	w.published(id.Name, cl.Name())
	if rep := pingEventually(t, cl, id.Name); !rep.Reached {
		t.Fatalf("ping at A: %+v", rep)
	}

	_ = linkA.Close()
	atB := w.attach(rb, id)
	advertise(t, atB)
	eventually(t, "the record to say B", func() bool {
		rec, err := w.res.Lookup(ctx, id.Name)
		return err == nil && rec.Router() == rb.Name()
	})
	if rep := pingEventually(t, cl, id.Name); !rep.Reached || rep.From != id.Name {
		t.Fatalf("ping after the move: %+v", rep)
	}
	hops := rc.FIB().Lookup(id.Name)
	if len(hops) != 1 || hops[0].Router != rb.Name() {
		t.Fatalf("C's route after the move: %+v, want one hop to B", hops)
	}
}
