package capsuled_test

import (
	"context"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/router"
)

// TestCreateRefusedByRouter (Session 14): a CREATE whose capsule name the
// server's router refuses to advertise (here the server's identity holds
// advertise.max_names_per_identity names already) fails, and the server
// stores neither the capsule nor its placement: a capsule stored but never
// advertised would be unreachable and still count in the server's limits
// (mutant: the advertise error ignored).
func TestCreateRefusedByRouter(t *testing.T) {
	w := newWorld(t)
	// The server's own name and one capsule's.
	r1 := w.routerConf("r1", router.Config{Advertise: router.AdvertiseConfig{MaxNamesPerIdentity: 2}})
	x := w.newReplica(r1, "server")
	admin := w.user(r1, "admin")
	first := newTestCapsule(t, "first")
	first.create(t, admin, 1, x)
	tc := newTestCapsule(t, "over the router's quota")
	places, err := client.PlaceCapsule(tc.owner, tc.meta, []certs.Name{x.id.Name}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := admin.Create(ctx, tc.owner, tc.meta, 1, places); err == nil {
		t.Fatal("a capsule the router refused to advertise was created")
	}
	for _, c := range x.srv.Store().Capsules() {
		if c == tc.meta.Name() {
			t.Fatal("the refused capsule is stored")
		}
	}
	if n := len(x.srv.Store().Capsules()); n != 1 {
		t.Fatalf("%d capsules stored, want the first alone", n)
	}
}
