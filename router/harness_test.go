package router_test

import (
	"context"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
	"github.com/gdpnet/gdpnet/router/routertest"
)

// world is a trust domain with a shared static resolver, in which tests
// build routers and attach endpoints over in-memory links.
type world struct {
	t   *testing.T
	dom *routertest.Domain
	res *resolver.Static
	// tick is the next routers' housekeeping period (Deps.Tick); zero:
	// the default.
	tick time.Duration
	// log, when set, is the next routers' logger (zaptest's otherwise).
	log *zap.Logger
}

func newWorld(t *testing.T) *world {
	t.Helper()
	dom, err := routertest.NewDomain("test domain")
	if err != nil {
		t.Fatal(err)
	}
	res := resolver.NewStatic(&resolver.Verifier{Certs: dom.Verifier})
	t.Cleanup(func() { _ = res.Close() })
	return &world{t: t, dom: dom, res: res}
}

type testRouter struct {
	*router.Router
	creds *routertest.Router
}

// router starts a router in w. A nil resolver argument means w's resolver.
func (w *world) router(desc string, cfg router.Config, res resolver.Resolver) *testRouter {
	w.t.Helper()
	rc, err := w.dom.NewRouter(desc)
	if err != nil {
		w.t.Fatal(err)
	}
	if res == nil {
		res = w.res
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:9"
	}
	log := zaptest.NewLogger(w.t)
	if w.log != nil {
		log = w.log
	}
	r, err := router.New(cfg, router.Deps{
		Identity: rc.ID, Member: rc.Member, Domain: rc.Domain, Verifier: w.dom.Verifier,
		Resolver: res, Logger: log.Named(desc), Tick: w.tick,
	})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { _ = r.Close() })
	return &testRouter{Router: r, creds: rc}
}

// endpoint mints an identity of the given kind and attaches it to r.
func (w *world) endpoint(r *testRouter, kind certs.Kind, desc string) *client.Client {
	w.t.Helper()
	id, err := certs.NewIdentity(kind, desc)
	if err != nil {
		w.t.Fatal(err)
	}
	return w.attach(r, id)
}

// attach connects identity id to r over an in-memory link.
func (w *world) attach(r *testRouter, id *certs.Identity) *client.Client {
	w.t.Helper()
	c, _ := w.attachLink(r, id)
	return c
}

func (w *world) attachLink(r *testRouter, id *certs.Identity) (*client.Client, *routertest.Link) {
	w.t.Helper()
	mine, theirs := routertest.Pipe(id.Name, r.Name(), 4096)
	if _, err := r.Attach(theirs, router.FaceEndpoint, pdu.Name{}, "mem"); err != nil {
		w.t.Fatal(err)
	}
	theirs.Start(func(l *routertest.Link, p []byte) { r.HandlePDU(l, p) })
	// An in-memory link loses nothing: a re-sent ADVERTISE would only mean
	// a router slowed by a loaded machine (-race beside other tests), and
	// it would be verified and counted twice in the tests that count
	// refusals (TestIdentityNameQuota). So the client waits long before a
	// re-send.
	c := client.New(id, mine, client.Options{RequestTimeout: 10 * time.Second})
	mine.Start(func(_ *routertest.Link, p []byte) { c.HandlePDU(p) })
	w.t.Cleanup(func() { _ = c.Close(); mine.Wait() })
	return c, mine
}

// connect joins two routers with an in-memory router-to-router link.
func (w *world) connect(a, b *testRouter) (*router.Face, *router.Face) {
	w.t.Helper()
	la, lb := routertest.Pipe(a.Name(), b.Name(), 8192)
	fa, err := a.Attach(la, router.FaceRouter, w.dom.ID.Name, "mem")
	if err != nil {
		w.t.Fatal(err)
	}
	fb, err := b.Attach(lb, router.FaceRouter, w.dom.ID.Name, "mem")
	if err != nil {
		w.t.Fatal(err)
	}
	la.Start(func(l *routertest.Link, p []byte) { a.HandlePDU(l, p) })
	lb.Start(func(l *routertest.Link, p []byte) { b.HandlePDU(l, p) })
	w.t.Cleanup(func() { _ = la.Close(); la.Wait() })
	return fa, fb
}

func advertise(t *testing.T, c *client.Client, routes ...client.Route) {
	t.Helper()
	if len(routes) == 0 {
		routes = []client.Route{c.Self()}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Advertise(ctx, routes...); err != nil {
		t.Fatalf("advertise: %v", err)
	}
}

// receive waits for one DATA message.
func receive(t *testing.T, c *client.Client) client.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	m, err := c.Receive(ctx)
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	return m
}

// metric returns the value of the counter or gauge name{label=value}
// (label "" for an unlabelled metric).
func metric(t *testing.T, r *testRouter, name, label, value string) float64 {
	t.Helper()
	mfs, err := r.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" || hasLabel(m, label, value) {
				switch {
				case m.Counter != nil:
					return m.Counter.GetValue()
				case m.Gauge != nil:
					return m.Gauge.GetValue()
				}
			}
		}
	}
	return 0
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// eventually polls cond for up to 15 s (generous: the machine may be loaded).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newCapsule(desc string) (*routertest.Capsule, error) { return routertest.NewCapsule(desc) }
