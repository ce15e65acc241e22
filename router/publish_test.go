package router_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/gdpnet/gdpnet/advert"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/internal/config"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
)

// trackingResolver is the world's static resolver behind a slow and, on
// demand, failing publish path that records the order of what it stored.
type trackingResolver struct {
	*resolver.Static
	delay     time.Duration
	failPubs  atomic.Int64 // this many more Publish calls fail
	failWdraw atomic.Int64 // this many more WithdrawIf calls fail
	mu        sync.Mutex
	order     []pdu.Name
}

var errFlaky = errors.New("test resolver: unavailable")

func (t *trackingResolver) Publish(ctx context.Context, rec *resolver.Record) error {
	time.Sleep(t.delay)
	if t.failPubs.Add(-1) >= 0 {
		return errFlaky
	}
	if err := t.Static.Publish(ctx, rec); err != nil {
		return err
	}
	t.mu.Lock()
	t.order = append(t.order, rec.Name)
	t.mu.Unlock()
	return nil
}

func (t *trackingResolver) WithdrawIf(ctx context.Context, name, router pdu.Name) error {
	time.Sleep(t.delay)
	if t.failWdraw.Add(-1) >= 0 {
		return errFlaky
	}
	return t.Static.WithdrawIf(ctx, name, router)
}

// position returns where name was first stored, or -1.
func (t *trackingResolver) position(name pdu.Name) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, n := range t.order {
		if n == name {
			return i
		}
	}
	return -1
}

func (t *trackingResolver) stored() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.order)
}

func published(res resolver.Resolver, n pdu.Name) bool {
	_, err := res.Lookup(context.Background(), n)
	return err == nil
}

// TestPublishQueueFair: one identity fills its share of the publish queue
// with self-minted names while the resolver is slow. Names beyond its share
// are refused (rate_limited, counted publish_queue), never accepted and
// then dropped; every name it was told was accepted is published in the
// end; an honest server's records are published after at most one of the
// flooder's per turn, and its withdrawal is carried out too.
func TestPublishQueueFair(t *testing.T) {
	w := newWorld(t)
	tr := &trackingResolver{Static: w.res, delay: 20 * time.Millisecond}
	r := w.router("r", router.Config{Resolver: router.ResolverConfig{PublishQueuePerIdentity: 30}}, tr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	attacker := w.endpoint(r, certs.KindClient, "attacker")
	res, err := attacker.Advertise(ctx, selfMinted(t, attacker.Name(), 100)...)
	if err != nil && !errors.Is(err, client.ErrRefused) {
		t.Fatal(err)
	}
	// Names the one publisher took off the queue while the ADVERTISE was
	// verified made room: the bound is the share plus those (plus the one
	// being published). A slow (loaded, -race) router verifies longer and
	// so accepts more; a router that ignored the share would take all 100.
	drained := tr.stored()
	var accepted []pdu.Name
	for _, nr := range res {
		switch nr.Status {
		case advert.StatusOK:
			accepted = append(accepted, nr.Name)
		case advert.StatusRateLimited:
		default:
			t.Fatalf("attacker's name refused %s (%s)", nr.Status, nr.Detail)
		}
	}
	if len(accepted) < 30 || len(accepted) > 30+1+drained {
		t.Fatalf("%d of 100 names accepted with a publish share of 30 (%d published meanwhile)", len(accepted), drained)
	}
	if got := metric(t, r, "gdp_router_quota_refusals_total", "reason", "publish_queue"); got != float64(100-len(accepted)) {
		t.Fatalf("publish_queue refusals %v, want %d", got, 100-len(accepted))
	}

	server := w.endpoint(r, certs.KindServer, "honest server")
	start := tr.stored()
	honest := append([]client.Route{server.Self()}, selfMinted(t, server.Name(), 4)...)
	if _, err := server.Advertise(ctx, honest...); err != nil {
		t.Fatalf("honest server refused: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, h := range honest {
		for !published(w.res, h.Name) {
			if time.Now().After(deadline) {
				t.Fatalf("honest name %s never published", h.Name)
			}
			time.Sleep(5 * time.Millisecond)
		}
		// Round robin over two identities: the honest names are stored
		// within about twice their number of the flood's turns.
		if pos := tr.position(h.Name); pos-start > 2*len(honest)+2 {
			t.Fatalf("honest name stored %d records after it was accepted (flood not interleaved)", pos-start)
		}
	}
	if _, err := server.Withdraw(ctx, honest[1].Name); err != nil {
		t.Fatal(err)
	}
	for _, n := range accepted {
		for !published(w.res, n) {
			if time.Now().After(deadline) {
				t.Fatalf("accepted name %s was never published", n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	eventually(t, "the honest withdrawal", func() bool { return !published(w.res, honest[1].Name) })
}

// TestPublishRetried: the resolver fails publications and withdrawals for
// a while. A name the router accepted is published once it recovers, and
// a withdrawal is carried out, neither silently dropped.
func TestPublishRetried(t *testing.T) {
	w := newWorld(t)
	tr := &trackingResolver{Static: w.res}
	tr.failPubs.Store(3)
	r := w.router("r", router.Config{}, tr)
	c := w.endpoint(r, certs.KindServer, "server")
	advertise(t, c)
	deadline := time.Now().Add(15 * time.Second)
	for !published(w.res, c.Name()) {
		if time.Now().After(deadline) {
			t.Fatal("an accepted name was never published after resolver failures")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := metric(t, r, "gdp_router_publish_retries_total", "", ""); got < 1 {
		t.Fatalf("publish retries counted %v", got)
	}
	tr.failWdraw.Store(3)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Withdraw(ctx, c.Name()); err != nil {
		t.Fatal(err)
	}
	for published(w.res, c.Name()) {
		if time.Now().After(deadline) {
			t.Fatal("a withdrawal was dropped after resolver failures")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRouterPublishesItselfOnce: a router publishes its own location
// record once when it starts, not once at start and again at its first
// housekeeping tick (its constructor's Reload marks the record dirty: at
// 300 simulated routers that second publish of each was half of the
// publishing work), and again after a Reload of its credentials.
func TestRouterPublishesItselfOnce(t *testing.T) {
	w := newWorld(t)
	w.tick = 10 * time.Millisecond
	tr := &trackingResolver{Static: w.res, delay: 50 * time.Millisecond}
	r := w.router("r", router.Config{}, tr)
	own := func() int {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		n := 0
		for _, name := range tr.order {
			if name == r.Name() {
				n++
			}
		}
		return n
	}
	eventually(t, "the own record published", func() bool { return own() >= 1 })
	time.Sleep(time.Second) // a hundred ticks: a second publish would be done
	if got := r.PublishPending(); got != 0 || own() != 1 {
		t.Fatalf("own record published %d times at start (%d jobs pending), want once", own(), got)
	}
	if err := r.Reload(r.creds.ID, r.creds.Member, r.creds.Domain, w.dom.Verifier, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the own record published again after a reload", func() bool { return own() == 2 })
}

// TestAdvertiseWaitPublished: an ADVERTISE that asks to wait is answered
// only once its location record is stored (PROTOCOL.md §5.4), "pending"
// when the router's max_publish_wait ends first, and an identity holding
// max_publish_waits_per_identity waiting answers gets "pending" at once
// (counted) instead of tying up more of the router.
func TestAdvertiseWaitPublished(t *testing.T) {
	w := newWorld(t)
	tr := &trackingResolver{Static: w.res, delay: 300 * time.Millisecond}
	r := w.router("r", router.Config{Advertise: router.AdvertiseConfig{
		MaxPublishWait: config.Duration(1500 * time.Millisecond), MaxPublishWaitsPerIdentity: 1}}, tr)
	c := w.endpoint(r, certs.KindServer, "server")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	res, err := c.AdvertisePublished(ctx, 10*time.Second, c.Self())
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Published != advert.PublishDone || !published(w.res, c.Name()) {
		t.Fatalf("answered %s; record stored: %v", res[0].Published, published(w.res, c.Name()))
	}

	tr.failPubs.Store(1 << 30) // the resolver refuses everything from now on
	start := time.Now()
	done := make(chan []advert.NameResult, 1)
	go func() {
		res, err := c.AdvertisePublished(ctx, 10*time.Second, c.Self())
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	// A second waiting ADVERTISE of the same identity is over its share.
	deadline := time.Now().Add(5 * time.Second)
	for metric(t, r, "gdp_router_publish_waits_total", "result", "pending") == 0 &&
		metric(t, r, "gdp_router_quota_refusals_total", "reason", "publish_waits") == 0 {
		res, err = c.AdvertisePublished(ctx, 10*time.Second, c.Self())
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Published != advert.PublishPending {
			t.Fatalf("second waiting ADVERTISE answered %s, want pending", res[0].Published)
		}
		if time.Now().After(deadline) {
			t.Fatal("no waiting answer was held or refused")
		}
	}
	if got := metric(t, r, "gdp_router_quota_refusals_total", "reason", "publish_waits"); got < 1 {
		t.Fatalf("quota_refusals_total{publish_waits} = %v, want >= 1", got)
	}
	first := <-done
	if took := time.Since(start); first[0].Published != advert.PublishPending || took > 8*time.Second {
		t.Fatalf("with the resolver down: %s after %s, want pending after about max_publish_wait (1.5 s)", first[0].Published, took)
	}
	if got := metric(t, r, "gdp_router_publish_waits_total", "result", "pending"); got != 1 {
		t.Fatalf("publish_waits_total{pending} = %v, want 1", got)
	}
}

// capsuleRoutes makes n capsules ("c0", "c1", …) and their routes to
// server, each with an AdCert for an hour.
func capsuleRoutes(t *testing.T, server pdu.Name, n int) []client.Route {
	t.Helper()
	var routes []client.Route
	for i := range n {
		cp, err := newCapsule(fmt.Sprintf("c%d", i))
		if err != nil {
			t.Fatal(err)
		}
		ad, err := cp.AdCert(server, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		routes = append(routes, client.CapsuleRoute(cp.Meta, ad))
	}
	return routes
}

// TestAdvertiseWaitManyNames: one waiting ADVERTISE of 64 capsule names
// with a resolver that stores at once, each name's job finished before the
// router puts the name's result in place: every name is answered
// published (a mark made before the result was in place was overwritten,
// and the name answered pending: CREATEs failed 503 in make test runs).
func TestAdvertiseWaitManyNames(t *testing.T) {
	w := newWorld(t)
	r := w.router("r", router.Config{}, nil)
	c := w.endpoint(r, certs.KindServer, "server")
	routes := capsuleRoutes(t, c.Name(), 64)
	// Each name's job is done before the router goes on (the worst case
	// of a loaded machine, where the advertising goroutine lost its CPU
	// right after queuing the job).
	router.SetTestHookQueued(func(n pdu.Name) {
		for end := time.Now().Add(5 * time.Second); !published(w.res, n) && time.Now().Before(end); {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Millisecond) // and the publisher has marked it
	})
	defer router.SetTestHookQueued(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := c.AdvertisePublished(ctx, 10*time.Second, routes...)
	if err != nil {
		t.Fatal(err)
	}
	for i, nr := range res {
		if nr.Published != advert.PublishDone || !published(w.res, nr.Name) {
			t.Fatalf("name %d answered %s (stored: %v)", i, nr.Published, published(w.res, nr.Name))
		}
	}
	if got := metric(t, r, "gdp_router_publish_waits_total", "result", "published"); got != 1 {
		t.Fatalf("publish_waits_total{published} = %v after one waiting ADVERTISE, want 1", got)
	}
	// A waiting ADVERTISE whose only name is refused (an AdCert for
	// another server) waits for nothing and is not counted.
	cp, err := newCapsule("refused")
	if err != nil {
		t.Fatal(err)
	}
	ad, err := cp.AdCert(pdu.Name{9}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	res, err = c.AdvertisePublished(ctx, 10*time.Second, client.CapsuleRoute(cp.Meta, ad))
	if err == nil || len(res) != 1 || res[0].Status == advert.StatusOK || res[0].Published != advert.PublishNotAsked {
		t.Fatalf("refused name: %+v, %v", res, err)
	}
	if got := metric(t, r, "gdp_router_publish_waits_total", "result", "published"); got != 1 {
		t.Fatalf("publish_waits_total{published} = %v after a refused ADVERTISE, want still 1", got)
	}
}

// TestAdvertiseWaitNoResolver: a router without a resolver answers a
// waiting ADVERTISE at once, each accepted name no_resolver (reachable
// only through this router), counted once per ADVERTISE; a waiting
// ADVERTISE whose only name is refused is answered without a published
// state and not counted (as with a resolver).
func TestAdvertiseWaitNoResolver(t *testing.T) {
	w := newWorld(t)
	rc, err := w.dom.NewRouter("r")
	if err != nil {
		t.Fatal(err)
	}
	rr, err := router.New(router.Config{Listen: "127.0.0.1:9"}, router.Deps{
		Identity: rc.ID, Member: rc.Member, Domain: rc.Domain, Verifier: w.dom.Verifier, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rr.Close() })
	r := &testRouter{Router: rr, creds: rc}
	c := w.endpoint(r, certs.KindServer, "server")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	start := time.Now()
	res, err := c.AdvertisePublished(ctx, 10*time.Second, c.Self())
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != advert.StatusOK || res[0].Published != advert.PublishNoResolver {
		t.Fatalf("answered %s / %s, want accepted, no_resolver", res[0].Status, res[0].Published)
	}
	if took := time.Since(start); took > 8*time.Second {
		t.Fatalf("answered after %s: nothing to wait for", took)
	}
	if got := metric(t, r, "gdp_router_publish_waits_total", "result", "no_resolver"); got != 1 {
		t.Fatalf("publish_waits_total{no_resolver} = %v, want 1", got)
	}

	cp, err := newCapsule("refused")
	if err != nil {
		t.Fatal(err)
	}
	ad, err := cp.AdCert(pdu.Name{9}, time.Hour) // for another server
	if err != nil {
		t.Fatal(err)
	}
	res, err = c.AdvertisePublished(ctx, 10*time.Second, client.CapsuleRoute(cp.Meta, ad))
	if err == nil || len(res) != 1 || res[0].Status == advert.StatusOK || res[0].Published != advert.PublishNotAsked {
		t.Fatalf("refused name: %+v, %v", res, err)
	}
	if got := metric(t, r, "gdp_router_publish_waits_total", "result", "no_resolver"); got != 1 {
		t.Fatalf("publish_waits_total{no_resolver} = %v after a refused ADVERTISE, want still 1", got)
	}
}

// TestAdvertiseWaitInAll: a client's waiting advertisement of more names
// than one ADVERTISE carries (64) waits at most its wait in all, not once
// per ADVERTISE: with a resolver that takes 200 ms a record, 70 names and
// a 1 s wait, the first ADVERTISE's names are answered published or
// pending after ~1 s and the rest are sent without a wait (not asked).
func TestAdvertiseWaitInAll(t *testing.T) {
	w := newWorld(t)
	tr := &trackingResolver{Static: w.res, delay: 200 * time.Millisecond}
	r := w.router("r", router.Config{}, tr)
	c := w.endpoint(r, certs.KindServer, "server")
	routes := capsuleRoutes(t, c.Name(), 70)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := c.AdvertisePublished(ctx, time.Second, routes...)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 70 {
		t.Fatalf("%d results for 70 names", len(res))
	}
	if got := res[0].Published; got != advert.PublishDone && got != advert.PublishPending {
		t.Fatalf("a name of the first ADVERTISE answered %s, want published or pending", got)
	}
	for _, nr := range res[64:] {
		if nr.Status != advert.StatusOK || nr.Published != advert.PublishNotAsked {
			t.Fatalf("a name sent after the wait was spent: %s, %s; want ok, not asked", nr.Status, nr.Published)
		}
	}
}

// TestAdvertiseWaitEndsAtClose: a waiting ADVERTISE whose record is not
// stored when the router closes ends with it: its max_publish_wait timer
// does not fire afterwards (it counted, logged and answered into a closed
// face after Close; a test's logger panicked at the line, Session 16).
func TestAdvertiseWaitEndsAtClose(t *testing.T) {
	w := newWorld(t)
	tr := &trackingResolver{Static: w.res}
	tr.failPubs.Store(1 << 30) // no record is ever stored
	const wait = 500 * time.Millisecond
	r := w.router("r", router.Config{Advertise: router.AdvertiseConfig{MaxPublishWait: config.Duration(wait)}}, tr)
	c := w.endpoint(r, certs.KindServer, "server")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() { _, _ = c.AdvertisePublished(ctx, 10*time.Second, c.Self()) }()
	eventually(t, "the router to take the waiting ADVERTISE", func() bool {
		return metric(t, r, "gdp_router_advertisements_total", "result", "accepted") > 0
	})
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * wait)
	if got := metric(t, r, "gdp_router_publish_waits_total", "result", "pending"); got != 0 {
		t.Fatalf("publish_waits_total{pending} = %v after Close, want 0: the wait's timer fired after the router closed", got)
	}
}
