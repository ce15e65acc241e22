package capsuled_test

import (
	"context"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/router"
)

// TestRequestProofFollowsReplica (Session 16): a client reading a capsule
// by its name marks its requester proof answered per answering server
// (the answer's source name), not per capsule name. Replicas a (at the
// reader's router r1) and b (at r2); the reader's requests to the
// capsule's name reach a, which gets the proof once. a stops; once r1 has
// dropped a's tunnel the name leads to b, which answers the first request
// (without the proof: the client took it to reach a) and gets the proof
// with the next — b counts the reader proven after two requests, not
// after ProofRefresh (an hour here). Marked per capsule name, as before,
// b never gets it within the test. Later requests carry no proof (b
// counts hits, no repeated proof): the byte cost on ordinary requests
// stays nil.
func TestRequestProofFollowsReplica(t *testing.T) {
	w := newWorld(t)
	r1 := w.router("r1")
	r2 := w.router("r2", r1)
	a, b := w.newReplica(r1, "replica a"), w.newReplica(r2, "replica b")
	owner := w.user(r1, "owner")
	reader := w.userWith(r1, "reader", client.CapsuleOptions{Timeout: time.Second, Attempts: 3, ProofRefresh: time.Hour})
	tc := newTestCapsule(t, "proof follows the replica")
	tc.create(t, owner, 2, a, b)
	name := tc.meta.Name()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	write := tc.writes(ctx, t, owner, 2, a, b)
	write(3)
	// Each replica proves itself to the other with its first SYNC: wait
	// for that, so that what b counts after a stops is the reader's.
	eventually(t, 30*time.Second, "each replica proven at the other", func() bool {
		return cacheResult(a, "proven") >= 1 && cacheResult(b, "proven") >= 1
	})

	info := func() error {
		ictx, icancel := context.WithTimeout(ctx, 10*time.Second)
		defer icancel()
		_, err := reader.Info(ictx, name, name)
		return err
	}
	aProven, bProven := cacheResult(a, "proven"), cacheResult(b, "proven")
	for i := range 5 {
		if err := info(); err != nil {
			t.Fatalf("read %d through the capsule's name: %v", i, err)
		}
	}
	if got := cacheResult(a, "proven") - aProven; got != 1 {
		t.Fatalf("a, nearest, proved the reader %v times in 5 requests, want 1", got)
	}
	if got := cacheResult(b, "proven") - bProven; got != 0 {
		t.Fatalf("b was reached before a stopped (proven %v): the test needs the name to lead to a", got)
	}

	a.stop()
	eventually(t, slow*20*time.Second, "r1 dropped a's tunnel", func() bool {
		for _, h := range r1.Router.FIB().Lookup(a.id.Name) {
			if h.Origin == router.OriginLocal {
				return false
			}
		}
		return true
	})
	bProven, bRepeated, bHit := cacheResult(b, "proven"), cacheResult(b, "repeated"), cacheResult(b, "hit")
	bUnproven := cacheResult(b, "unproven")
	// r1 may still send the first requests towards a's withdrawn name (a
	// NAK, or no answer): asked again until b answers.
	var firstErr error
	eventually(t, slow*60*time.Second, "the capsule's name to lead to b", func() bool {
		err := info()
		if err != nil && firstErr == nil {
			firstErr = err
		}
		return err == nil
	})
	t.Logf("first answer after a stopped (first failure: %v): b counts proven +%v, unproven +%v",
		firstErr, cacheResult(b, "proven")-bProven, cacheResult(b, "unproven")-bUnproven)
	if err := info(); err != nil {
		t.Fatal(err)
	}
	if got := cacheResult(b, "proven") - bProven; got != 1 {
		t.Fatalf("b proved the reader %v times by its second answer after the failover, want 1", got)
	}
	if got := cacheResult(b, "unproven") - bUnproven; got > 1 {
		t.Fatalf("b counted %v of the reader's requests unproven, want at most the first", got)
	}
	hits := cacheResult(b, "hit")
	for i := range 5 {
		if err := info(); err != nil {
			t.Fatalf("read %d from b: %v", i, err)
		}
	}
	if got := cacheResult(b, "hit") - hits; got < 5 {
		t.Fatalf("b counted %v of 5 proven requests as hits", got)
	}
	if got := cacheResult(b, "repeated") - bRepeated; got != 0 {
		t.Fatalf("the reader sent its proof %v times more to b after b answered one", got)
	}
	t.Logf("b: proven +%v, hit +%v, repeated +%v, unproven +%v", cacheResult(b, "proven")-bProven,
		cacheResult(b, "hit")-bHit, cacheResult(b, "repeated")-bRepeated, cacheResult(b, "unproven")-bUnproven)
}
