package router_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/gdpnet/gdpnet/advert"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/router"
	"github.com/gdpnet/gdpnet/router/routertest"
)

// TestForeignDomainAdvertRate (Session 13): each identity has its own
// budget of names verified per second (advertise.rate, three signature
// checks a name), and another domain's operator mints identities at will,
// so 50 identities of one domain had 50 budgets of the router's CPU. Their
// verifications are now bounded together (advertise.domain_rate): 50
// identities × 10 names with a domain budget of 25 get 25 verified, the
// rest refused rate_limited and counted domain_rate; an identity of a
// third domain and one of the router's own get all theirs verified.
func TestForeignDomainAdvertRate(t *testing.T) {
	w := newWorld(t)
	flood, err := routertest.NewDomain("flooding domain")
	if err != nil {
		t.Fatal(err)
	}
	third, err := routertest.NewDomain("third domain")
	if err != nil {
		t.Fatal(err)
	}
	// face.max_per_domain 1,024: a floor of 25/1,024 names is none.
	dr := newDomainRateRouter(t, w, router.Config{Advertise: router.AdvertiseConfig{Rate: 0.001, Burst: 10, DomainRate: 0.001, DomainBurst: 25}}, flood, third)
	total, refused := 0, 0
	for range 50 {
		ok, dr := dr.verified(dr.attach(flood.ID.Name), 10)
		total, refused = total+ok, refused+dr
	}
	if total != 25 || refused != 475 {
		t.Fatalf("50 identities of one domain × 10 names: %d verified, %d refused for the domain; want 25, 475", total, refused)
	}
	if got := metric(t, dr.r, "gdp_router_quota_refusals_total", "reason", "domain_rate"); got != 475 {
		t.Fatalf("quota_refusals_total{domain_rate} = %v, want 475", got)
	}
	if ok, _ := dr.verified(dr.attach(third.ID.Name), 10); ok != 10 {
		t.Fatalf("an identity of a third domain: %d of 10 names verified", ok)
	}
	if ok, _ := dr.verified(dr.attach(pdu.Name{}), 10); ok != 10 {
		t.Fatalf("an identity of the router's own domain: %d of 10 names verified", ok)
	}
}

// TestForeignDomainAdvertRateFloor: one member of a domain spends the
// domain's budget (25) and more; another member of that domain still has
// its floor verified (25 / face.max_per_domain 5 = 5 names), and the
// flooder no more than the budget plus its own floor.
func TestForeignDomainAdvertRateFloor(t *testing.T) {
	w := newWorld(t)
	dom, err := routertest.NewDomain("partner")
	if err != nil {
		t.Fatal(err)
	}
	dr := newDomainRateRouter(t, w, router.Config{Face: router.FaceConfig{MaxPerDomain: 5},
		Advertise: router.AdvertiseConfig{Rate: 0.001, Burst: 40, DomainRate: 0.001, DomainBurst: 25}}, dom)
	if ok, refused := dr.verified(dr.attach(dom.ID.Name), 40); ok != 30 || refused != 10 {
		t.Fatalf("the flooding member: %d verified, %d refused for the domain; want 25 + its floor 5, 10", ok, refused)
	}
	if ok, _ := dr.verified(dr.attach(dom.ID.Name), 5); ok != 5 {
		t.Fatalf("another member of the domain: %d of 5 names verified, want its floor of 5", ok)
	}
}

// domainRateRouter is a router of w's domain that trusts the domains doms
// too, for the advertisement budget tests.
type domainRateRouter struct {
	t   *testing.T
	r   *testRouter
	ctx context.Context
}

func newDomainRateRouter(t *testing.T, w *world, cfg router.Config, doms ...*routertest.Domain) *domainRateRouter {
	rc, err := w.dom.NewRouter("r")
	if err != nil {
		t.Fatal(err)
	}
	trusted := []*certs.Metadata{w.dom.ID.Meta}
	for _, d := range doms {
		trusted = append(trusted, d.ID.Meta)
	}
	cfg.Listen, cfg.FIBSize = "127.0.0.1:9", 10_000
	rr, err := router.New(cfg, router.Deps{Identity: rc.ID, Member: rc.Member, Domain: rc.Domain, Verifier: certs.NewVerifier(trusted...),
		Resolver: w.res, Logger: zaptest.NewLogger(t).Named("r")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rr.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return &domainRateRouter{t: t, r: &testRouter{Router: rr, creds: rc}, ctx: ctx}
}

// attach connects a fresh identity, a member of dom, over an in-memory link.
func (d *domainRateRouter) attach(dom pdu.Name) *client.Client {
	t := d.t
	id, err := certs.NewIdentity(certs.KindServer, "member")
	if err != nil {
		t.Fatal(err)
	}
	mine, theirs := routertest.Pipe(id.Name, d.r.Name(), 4096)
	if _, err := d.r.Attach(theirs, router.FaceEndpoint, dom, "mem"); err != nil {
		t.Fatal(err)
	}
	theirs.Start(func(l *routertest.Link, p []byte) { d.r.HandlePDU(l, p) })
	c := client.New(id, mine, client.Options{RequestTimeout: 10 * time.Second})
	mine.Start(func(_ *routertest.Link, p []byte) { c.HandlePDU(p) })
	t.Cleanup(func() { _ = c.Close(); mine.Wait() })
	return c
}

// verified advertises n self-minted names from c: how many were verified,
// and how many refused for the domain's budget.
func (d *domainRateRouter) verified(c *client.Client, n int) (ok, domainRate int) {
	t := d.t
	t.Helper()
	res, err := c.Advertise(d.ctx, selfMinted(t, c.Name(), n)...)
	if err != nil && !errors.Is(err, client.ErrRefused) {
		t.Fatal(err)
	}
	for _, nr := range res {
		switch {
		case nr.Status == advert.StatusOK:
			ok++
		case nr.Status == advert.StatusRateLimited && strings.Contains(nr.Detail, "limit for another domain"):
			domainRate++
		default:
			t.Fatalf("name refused %s (%s)", nr.Status, nr.Detail)
		}
	}
	return ok, domainRate
}
