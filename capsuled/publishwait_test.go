package capsuled_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsuled"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/resolver"
)

// gatedResolver is a resolver whose publications of chosen names are
// slowed (delay) or fail (broken): the resolver of a loaded or partly
// unreachable DHT, for one capsule only, so the test's other names (the
// server's, the users') resolve at once.
type gatedResolver struct {
	resolver.Resolver
	mu     sync.Mutex
	names  map[pdu.Name]bool
	delay  time.Duration
	broken atomic.Bool
}

func (g *gatedResolver) gate(n pdu.Name) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.names == nil {
		g.names = map[pdu.Name]bool{}
	}
	g.names[n] = true
}

func (g *gatedResolver) Publish(ctx context.Context, rec *resolver.Record) error {
	g.mu.Lock()
	gated, delay := g.names[rec.Name], g.delay
	g.mu.Unlock()
	if gated {
		if g.broken.Load() {
			return fmt.Errorf("gated resolver: %w", context.DeadlineExceeded)
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return g.Resolver.Publish(ctx, rec)
}

// resolvable waits until name's location record is in w's resolver.
func resolvable(t *testing.T, w *world, name pdu.Name) {
	t.Helper()
	eventually(t, 10*time.Second, "the server's own name in the resolver", func() bool {
		_, err := w.res.Lookup(context.Background(), name)
		return err == nil
	})
}

// TestCreateAnswersOncePublished: a CREATE is answered only once the
// capsule's location record is in the resolver, so a client on another
// router reaches the capsule the moment CREATE returns, even when the
// resolver takes a second to store the record. Before, CREATE returned as
// soon as the server's router had the name in its FIB and the client's
// router answered NO_ROUTE until the record landed.
func TestCreateAnswersOncePublished(t *testing.T) {
	w := newWorld(t)
	g := &gatedResolver{Resolver: w.res, delay: time.Second}
	w.rres = g
	ra := w.router("router A")
	rb := w.router("router B", ra)
	srv := w.newReplica(ra, "server")
	resolvable(t, w, srv.id.Name)
	owner := w.user(rb, "owner")
	other := w.user(rb, "other")
	tc := newTestCapsule(t, "published")
	g.gate(tc.meta.Name())
	// The server's start waited for its own name's record already.
	before := gathered(ra.Router.Gatherer(), "gdp_router_publish_waits_total", "published")

	start := time.Now()
	tc.create(t, owner, 1, srv)
	took := time.Since(start)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// No waiting here: the answer to CREATE is the promise.
	if _, err := other.Info(ctx, tc.meta.Name(), tc.meta.Name()); err != nil {
		t.Fatalf("capsule not reachable from another router right after CREATE returned (after %s): %v", took, err)
	}
	if took < g.delay {
		t.Fatalf("CREATE returned after %s, before the resolver stored the record (%s)", took, g.delay)
	}
	if got := gathered(ra.Router.Gatherer(), "gdp_router_publish_waits_total", "published") - before; got != 1 {
		t.Fatalf("gdp_router_publish_waits_total{result=published} rose by %v in the CREATE, want 1", got)
	}
	// A repeated CREATE of the same capsule (a renewal) is idempotent.
	tc.create(t, owner, 1, srv)
	if _, err := other.Info(ctx, tc.meta.Name(), tc.meta.Name()); err != nil {
		t.Fatalf("capsule not reachable after a repeated CREATE: %v", err)
	}
}

// TestCreateUnpublishedLeavesNothing: when the router cannot get the
// record into the resolver within publish_wait, CREATE fails 503 with a
// clear error and a counted refusal, the server stores nothing and its
// router no longer holds the name; copies the client re-sends meanwhile
// are dropped, not served again; once the resolver is back the same
// CREATE succeeds.
func TestCreateUnpublishedLeavesNothing(t *testing.T) {
	w := newWorld(t)
	g := &gatedResolver{Resolver: w.res}
	g.broken.Store(true)
	w.rres = g
	ra := w.router("router A")
	srv := w.newReplicaConf(ra, "server", capsuled.Config{PublishWait: 2500 * time.Millisecond})
	resolvable(t, w, srv.id.Name)
	owner := w.user(ra, "owner")
	tc := newTestCapsule(t, "unpublished")
	g.gate(tc.meta.Name())

	places, err := client.PlaceCapsule(tc.owner, tc.meta, []pdu.Name{srv.id.Name}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = owner.Create(ctx, tc.owner, tc.meta, 1, places)
	var se *wire.StatusError
	if !errors.As(err, &se) || se.Status != wire.StatusUnavailable || !strings.Contains(err.Error(), "not published") {
		t.Fatalf("CREATE with the resolver down: %v, want 503 saying the location was not published", err)
	}
	// The client re-sent the CREATE every second (same id) while the
	// first copy waited: the copies were dropped, not served again.
	if got := srv.metric("gdp_capsuled_placements_refused_total", "not_published"); got != 1 {
		t.Fatalf("placements_refused_total{not_published} = %v, want 1", got)
	}
	if got := srv.metric("gdp_capsuled_dropped_total", "create_in_progress"); got < 1 {
		t.Fatalf("dropped_total{create_in_progress} = %v, want >= 1", got)
	}
	if _, _, err := srv.srv.Store().Info(tc.meta.Name()); err == nil {
		t.Fatal("the server stored the capsule of a failed CREATE")
	}
	eventually(t, 5*time.Second, "the router to drop the unpublished name", func() bool {
		return len(ra.Router.FIB().Lookup(tc.meta.Name())) == 0
	})
	if got := gathered(ra.Router.Gatherer(), "gdp_router_publish_waits_total", "pending"); got < 1 {
		t.Fatalf("gdp_router_publish_waits_total{result=pending} = %v, want >= 1", got)
	}

	g.broken.Store(false)
	tc.create(t, owner, 1, srv)
	if _, _, err := srv.srv.Store().Info(tc.meta.Name()); err != nil {
		t.Fatalf("capsule not stored after the retried CREATE: %v", err)
	}
}

// TestCreateWaitsOffWorkers: CREATEs waiting for a slow resolver do not
// hold the server's workers — with two workers and two CREATEs waiting,
// another user's request on a capsule already held is answered while
// they still wait (before, each waiting CREATE held a worker, and a
// member sending Workers CREATEs every publish_wait stalled every read,
// append and sync). One requester has creates_per_peer CREATEs waiting at
// most: the next is answered 503 at once and counted.
func TestCreateWaitsOffWorkers(t *testing.T) {
	w := newWorld(t)
	g := &gatedResolver{Resolver: w.res, delay: 2 * time.Second}
	w.rres = g
	ra := w.router("router A")
	srv := w.newReplicaConf(ra, "server", capsuled.Config{Workers: 2, CreatesPerPeer: 2, PublishWait: 15 * time.Second})
	resolvable(t, w, srv.id.Name)
	owner := w.user(ra, "owner")
	other := w.user(ra, "other")
	held := newTestCapsule(t, "held")
	held.create(t, owner, 1, srv)

	type result struct {
		err  error
		done time.Time
	}
	results := make(chan result, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 3 {
		tc := newTestCapsule(t, fmt.Sprintf("slow %d", i))
		g.gate(tc.meta.Name())
		places, err := client.PlaceCapsule(tc.owner, tc.meta, []pdu.Name{srv.id.Name}, 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			err := owner.Create(ctx, tc.owner, tc.meta, 1, places)
			results <- result{err, time.Now()}
		}()
		if i < 2 {
			// the first two are admitted before the third is sent
			eventually(t, 10*time.Second, "the router to hold the waiting CREATE's name", func() bool {
				return len(ra.Router.FIB().Lookup(tc.meta.Name())) > 0
			})
		}
	}
	// The third: refused at once, the requester's share being taken.
	first := <-results
	var se *wire.StatusError
	if !errors.As(first.err, &se) || se.Status != wire.StatusUnavailable || !strings.Contains(first.err.Error(), "creates_per_peer") {
		t.Fatalf("third CREATE while two wait: %v, want 503 naming creates_per_peer", first.err)
	}
	if got := srv.metric("gdp_capsuled_placements_refused_total", "creates_per_peer"); got != 1 {
		t.Fatalf("placements_refused_total{creates_per_peer} = %v, want 1", got)
	}
	// Another user's request is served while both CREATEs still wait.
	if _, err := other.Info(ctx, held.meta.Name(), held.meta.Name()); err != nil {
		t.Fatal(err)
	}
	answered := time.Now()
	for range 2 {
		r := <-results
		if r.err != nil {
			t.Fatalf("a waiting CREATE: %v", r.err)
		}
		if !r.done.After(answered) {
			t.Fatal("a CREATE finished before the other user's request was answered: the request waited behind it")
		}
	}
}

// TestStartWaitsForPublish: a capsule server is up only once its router
// confirmed the location records of its own name and of the capsules it
// holds, so a client behind another router that sends a CREATE the moment
// the server is up, or reads a capsule the moment a restarted server is
// up, reaches it — even when the resolver takes a second to store each
// record (before, it got NO_ROUTE, and its router remembered the miss).
// With publish_wait shorter than the resolver's delay the server starts
// after publish_wait, not after the records.
func TestStartWaitsForPublish(t *testing.T) {
	w := newWorld(t)
	g := &gatedResolver{Resolver: w.res, delay: time.Second}
	w.rres = g
	ra := w.router("router A")
	rb := w.router("router B", ra)
	id, err := certs.NewIdentity(certs.KindServer, "server")
	if err != nil {
		t.Fatal(err)
	}
	g.gate(id.Name)
	srv := &replica{id: id, dir: t.TempDir()}
	start := time.Now()
	w.start(ra, srv)
	t.Cleanup(srv.stop)
	if took := time.Since(start); took < g.delay {
		t.Fatalf("server up after %s, before the resolver stored its name's record (%s)", took, g.delay)
	}
	owner := w.user(rb, "owner")
	tc := newTestCapsule(t, "at start")
	tc.create(t, owner, 1, srv) // no waiting: the server being up is the promise

	// Restarted, the server holds the capsule: its record is withdrawn
	// when the server goes and published again, slowly, when it comes
	// back. A reader on a third router that never looked it up asks at
	// once.
	srv.stop()
	g.gate(tc.meta.Name())
	w.start(ra, srv)
	rc := w.router("router C", ra)
	reader := w.user(rc, "reader")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := reader.Info(ctx, tc.meta.Name(), tc.meta.Name()); err != nil {
		t.Fatalf("capsule not reachable from another router right after its server restarted: %v", err)
	}

	// publish_wait bounds the wait at start.
	id2, err := certs.NewIdentity(certs.KindServer, "impatient server")
	if err != nil {
		t.Fatal(err)
	}
	g.gate(id2.Name)
	g.mu.Lock()
	g.delay = 3 * time.Second
	g.mu.Unlock()
	srv2 := &replica{id: id2, dir: t.TempDir(), conf: capsuled.Config{PublishWait: 300 * time.Millisecond}}
	start = time.Now()
	w.start(ra, srv2)
	t.Cleanup(srv2.stop)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("server with publish_wait 300ms up after %s: it waited for the resolver (3s)", took)
	}
}
