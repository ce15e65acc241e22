package capsuled_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsuled"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestPlacementsPerRequester (Session 13): owner keys cost nothing to
// mint, so a member placing capsules each under a fresh owner key passed
// max_per_owner and filled max_placements: another member's capsules were
// then refused server_full. Each requester (the CREATE's source name) now
// places at most max_per_requester capsules; the flood's excess is refused
// requester_quota, another member's capsules are all placed, renewals do
// not count again, and the share survives a restart.
func TestPlacementsPerRequester(t *testing.T) {
	w := newWorld(t)
	r1 := w.router("r1")
	s := w.newReplicaConf(r1, "s", capsuled.Config{Placement: capsuled.PlacementPolicy{MaxPerRequester: 10, MaxPlacements: 30}})
	flooder, honest := w.user(r1, "flooder"), w.user(r1, "honest")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	create := func(cc *client.CapsuleClient, tc *testCapsule) error {
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
	var first *testCapsule
	placed := 0
	for i := range 40 {
		tc := newTestCapsule(t, "junk") // a fresh owner key each time
		switch err := create(flooder, tc); {
		case err == nil:
			placed++
			if first == nil {
				first = tc
			}
		case !forbidden(err):
			t.Fatalf("flood CREATE %d: %v", i, err)
		}
	}
	if placed != 10 {
		t.Fatalf("the flooder placed %d capsules, want its share of 10", placed)
	}
	ok := 0
	for i := range 9 {
		if err := create(honest, newTestCapsule(t, "honest")); err != nil {
			t.Logf("honest CREATE %d: %v", i, err)
			continue
		}
		ok++
	}
	if ok < 9 {
		t.Fatalf("another member placed %d/9 capsules during the flood", ok)
	}
	// A renewal at the share is no new capsule; one from another requester
	// (the owner key on another device) leaves it in its creator's share.
	if err := create(flooder, first); err != nil {
		t.Fatalf("renewal at the share: %v", err)
	}
	if err := create(honest, first); err != nil {
		t.Fatalf("renewal by another requester: %v", err)
	}
	if got := s.metric("gdp_capsuled_placements_refused_total", "requester_quota"); got != 30 {
		t.Fatalf("requester_quota refusals: %v, want 30", got)
	}
	if got := s.metric("gdp_capsuled_placements_refused_total", "server_full"); got != 0 {
		t.Fatalf("server_full refusals: %v, want 0", got)
	}
	// The share is kept with the placements: after a restart the flooder's
	// next capsule is still refused, the honest member's tenth is placed.
	s.stop()
	w.start(r1, s)
	if err := create(flooder, newTestCapsule(t, "junk after restart")); !forbidden(err) {
		t.Fatalf("flood CREATE after a restart: %v", err)
	}
	if err := create(honest, newTestCapsule(t, "honest after restart")); err != nil {
		t.Fatalf("honest CREATE after a restart: %v", err)
	}
	if got := s.metric("gdp_capsuled_placements_refused_total", "requester_quota"); got != 1 {
		t.Fatalf("requester_quota refusals after the restart: %v, want 1", got)
	}
}
