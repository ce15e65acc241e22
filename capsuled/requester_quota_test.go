package capsuled_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
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

// TestPlacementsPerRequesterConcurrent (Session 13): the share was checked
// when a CREATE was admitted and the placement stored only once its
// location record was published, so CREATEs waiting together
// (creates_per_peer of them) all passed the check: one requester with a
// share of 3 placed 12. A new capsule now takes its slot when admitted and
// gives it back when its CREATE fails: here one CREATE fails
// not_published first, then 12 sent at once place exactly 3.
func TestPlacementsPerRequesterConcurrent(t *testing.T) {
	w := newWorld(t)
	g := &gatedResolver{Resolver: w.res, delay: 300 * time.Millisecond}
	w.rres = g
	r1 := w.router("r1")
	s := w.newReplicaConf(r1, "s", capsuled.Config{PublishWait: 2500 * time.Millisecond, // not a multiple of the client's 1 s re-send:
		// no copy of the failed CREATE arrives after its answer
		Placement: capsuled.PlacementPolicy{MaxPerRequester: 3}})
	resolvable(t, w, s.id.Name)
	req := w.user(r1, "requester")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	create := func(tc *testCapsule) error {
		g.gate(tc.meta.Name())
		places, err := client.PlaceCapsule(tc.owner, tc.meta, []pdu.Name{s.id.Name}, time.Hour)
		if err != nil {
			t.Error(err)
			return err
		}
		return req.Create(ctx, tc.owner, tc.meta, 0, places)
	}
	status := func(err error) wire.Status {
		var se *wire.StatusError
		if errors.As(err, &se) {
			return se.Status
		}
		return 0
	}

	// A failed CREATE gives its slot back.
	g.broken.Store(true)
	if err := create(newTestCapsule(t, "unpublished")); status(err) != wire.StatusUnavailable {
		t.Fatalf("CREATE with the resolver down: %v, want 503", err)
	}
	g.broken.Store(false)

	const n = 12
	errs := make(chan error, n)
	for i := range n {
		tc := newTestCapsule(t, fmt.Sprintf("concurrent %d", i))
		go func() { errs <- create(tc) }()
	}
	placed, refused := 0, 0
	for range n {
		switch err := <-errs; {
		case err == nil:
			placed++
		case status(err) == wire.StatusForbidden && strings.Contains(err.Error(), "max_per_requester"):
			refused++
		default:
			t.Errorf("concurrent CREATE: %v", err)
		}
	}
	if placed != 3 || refused != n-3 {
		t.Fatalf("%d concurrent CREATEs with a share of 3: %d placed, %d refused requester_quota; want 3 and %d", n, placed, refused, n-3)
	}
	if got := s.metric("gdp_capsuled_placements_refused_total", "requester_quota"); got != n-3 {
		t.Fatalf("requester_quota refusals: %v, want %d", got, n-3)
	}
	if got := s.metric("gdp_capsuled_placements_refused_total", "not_published"); got != 1 {
		t.Fatalf("not_published refusals: %v, want 1", got)
	}
}
