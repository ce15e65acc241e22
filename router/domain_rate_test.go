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
	rc, err := w.dom.NewRouter("r")
	if err != nil {
		t.Fatal(err)
	}
	rr, err := router.New(router.Config{Listen: "127.0.0.1:9", FIBSize: 10_000,
		Advertise: router.AdvertiseConfig{Rate: 0.001, Burst: 10, DomainRate: 0.001, DomainBurst: 25}},
		router.Deps{Identity: rc.ID, Member: rc.Member, Domain: rc.Domain, Verifier: certs.NewVerifier(w.dom.ID.Meta, flood.ID.Meta, third.ID.Meta),
			Resolver: w.res, Logger: zaptest.NewLogger(t).Named("r")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rr.Close() })
	r := &testRouter{Router: rr, creds: rc}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	attach := func(dom pdu.Name) *client.Client {
		id, err := certs.NewIdentity(certs.KindServer, "member")
		if err != nil {
			t.Fatal(err)
		}
		mine, theirs := routertest.Pipe(id.Name, r.Name(), 4096)
		if _, err := r.Attach(theirs, router.FaceEndpoint, dom, "mem"); err != nil {
			t.Fatal(err)
		}
		theirs.Start(func(l *routertest.Link, p []byte) { r.HandlePDU(l, p) })
		c := client.New(id, mine, client.Options{RequestTimeout: 10 * time.Second})
		mine.Start(func(_ *routertest.Link, p []byte) { c.HandlePDU(p) })
		t.Cleanup(func() { _ = c.Close(); mine.Wait() })
		return c
	}
	// verified advertises 10 self-minted names from c: how many were
	// verified, and how many refused for the domain's budget.
	verified := func(c *client.Client) (ok, domainRate int) {
		t.Helper()
		res, err := c.Advertise(ctx, selfMinted(t, c.Name(), 10)...)
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
	total, refused := 0, 0
	for range 50 {
		ok, dr := verified(attach(flood.ID.Name))
		total, refused = total+ok, refused+dr
	}
	if total != 25 || refused != 475 {
		t.Fatalf("50 identities of one domain × 10 names: %d verified, %d refused for the domain; want 25, 475", total, refused)
	}
	if got := metric(t, r, "gdp_router_quota_refusals_total", "reason", "domain_rate"); got != 475 {
		t.Fatalf("quota_refusals_total{domain_rate} = %v, want 475", got)
	}
	if ok, _ := verified(attach(third.ID.Name)); ok != 10 {
		t.Fatalf("an identity of a third domain: %d of 10 names verified", ok)
	}
	if ok, _ := verified(attach(pdu.Name{})); ok != 10 {
		t.Fatalf("an identity of the router's own domain: %d of 10 names verified", ok)
	}
}
