package capsuled_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsuled"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestReloadPlacementOwners: a reload that changes placement.owners
// changes who may place capsules at once: an owner refused before is
// admitted after being added, one removed is refused, and a reload whose
// config is invalid changes nothing.
func TestReloadPlacementOwners(t *testing.T) {
	w := newWorld(t)
	r1 := w.router("r1")
	a, b := newTestCapsule(t, "reload a"), newTestCapsule(t, "reload b")
	only := func(tcs ...*testCapsule) capsuled.Config {
		var ks []ed25519.PublicKey
		for _, tc := range tcs {
			ks = append(ks, tc.owner.Public())
		}
		return capsuled.Config{Placement: capsuled.PlacementPolicy{Owners: ks}}
	}
	s := w.newReplicaConf(r1, "guarded", only(a))
	cc := w.user(r1, "placer")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	create := func(tc *testCapsule) error {
		places, err := client.PlaceCapsule(tc.owner, tc.meta, []pdu.Name{s.id.Name}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return cc.Create(ctx, tc.owner, tc.meta, 0, places)
	}
	forbidden := func(err error) bool {
		var se *wire.StatusError
		return errors.As(err, &se) && se.Status == wire.StatusForbidden
	}
	if err := create(b); !forbidden(err) {
		t.Fatalf("owner b before the reload: %v, want 403", err)
	}
	if err := s.srv.Reload(only(a, b)); err != nil {
		t.Fatal(err)
	}
	if err := create(b); err != nil {
		t.Fatalf("owner b after the reload added it: %v", err)
	}
	if err := s.srv.Reload(only(b)); err != nil {
		t.Fatal(err)
	}
	if err := create(a); !forbidden(err) {
		t.Fatalf("owner a after the reload removed it: %v, want 403", err)
	}
	bad := only(a)
	bad.Placement.MaxReplicas = wire.MaxReplicas + 1
	if err := s.srv.Reload(bad); err == nil {
		t.Fatal("a reload with max_replicas above the wire's bound was accepted")
	}
	if err := create(a); !forbidden(err) {
		t.Fatalf("owner a after a refused reload: %v, want 403 (the policy in force stays)", err)
	}
	if got := s.metric("gdp_capsuled_placements_refused_total", "owner_not_allowed"); got != 3 {
		t.Fatalf("owner_not_allowed refusals counted: %v, want 3", got)
	}
}
