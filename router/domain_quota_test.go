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

// TestForeignDomainQuota: another domain the router's policy allows mints
// identities at will, each with fresh per-identity shares. Its identities
// together hold at most advertise.max_names_per_domain names and
// face.max_per_domain faces (counted domain_quota and tunnels_per_domain);
// names withdrawn, and faces detached, are given back; the router's own
// domain is not bounded by either.
func TestForeignDomainQuota(t *testing.T) {
	w := newWorld(t)
	other, err := routertest.NewDomain("other domain")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := w.dom.NewRouter("r")
	if err != nil {
		t.Fatal(err)
	}
	rr, err := router.New(router.Config{Listen: "127.0.0.1:9", FIBSize: 1000,
		Face:      router.FaceConfig{MaxPerDomain: 3},
		Advertise: router.AdvertiseConfig{MaxNamesPerIdentity: 40, MaxNamesPerDomain: 50}},
		router.Deps{Identity: rc.ID, Member: rc.Member, Domain: rc.Domain, Verifier: certs.NewVerifier(w.dom.ID.Meta, other.ID.Meta),
			Resolver: w.res, Logger: zaptest.NewLogger(t).Named("r")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rr.Close() })
	r := &testRouter{Router: rr, creds: rc}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// attach connects a fresh identity, a member of dom, over an in-memory
	// link; nil when the router refuses the face.
	attach := func(dom pdu.Name) (*client.Client, *routertest.Link, error) {
		id, err := certs.NewIdentity(certs.KindServer, "member")
		if err != nil {
			t.Fatal(err)
		}
		mine, theirs := routertest.Pipe(id.Name, r.Name(), 4096)
		if _, err := r.Attach(theirs, router.FaceEndpoint, dom, "mem"); err != nil {
			return nil, nil, err
		}
		theirs.Start(func(l *routertest.Link, p []byte) { r.HandlePDU(l, p) })
		c := client.New(id, mine, client.Options{RequestTimeout: 10 * time.Second})
		mine.Start(func(_ *routertest.Link, p []byte) { c.HandlePDU(p) })
		t.Cleanup(func() { _ = c.Close(); mine.Wait() })
		return c, theirs, nil
	}
	count := func(c *client.Client, routes []client.Route) (ok, domainQuota int) {
		t.Helper()
		res, err := c.Advertise(ctx, routes...)
		if err != nil && !errors.Is(err, client.ErrRefused) {
			t.Fatal(err)
		}
		for _, nr := range res {
			switch {
			case nr.Status == advert.StatusOK:
				ok++
			case nr.Status == advert.StatusIdentityQuota && strings.Contains(nr.Detail, "limit for another domain"):
				domainQuota++
			default:
				t.Fatalf("name refused %s (%s), want ok or the domain's quota", nr.Status, nr.Detail)
			}
		}
		return ok, domainQuota
	}

	// Three identities of the other domain, 30 names each: 50 in all.
	var foreign []*client.Client
	var links []*routertest.Link
	var first []client.Route
	accepted, refused := 0, 0
	for i := range 3 {
		c, l, err := attach(other.ID.Name)
		if err != nil {
			t.Fatalf("face %d of the other domain: %v", i, err)
		}
		routes := selfMinted(t, c.Name(), 30)
		if i == 0 {
			first = routes
		}
		ok, dq := count(c, routes)
		accepted, refused = accepted+ok, refused+dq
		foreign, links = append(foreign, c), append(links, l)
	}
	// The first two take the domain's 50 (30 + 20); the third, arriving
	// with the domain full, still gets its guaranteed share, 50/3 = 16
	// (domain allowance over the domain's faces), and no more.
	if accepted != 66 || refused != 24 || r.DomainNames(other.ID.Name) != 66 {
		t.Fatalf("the other domain's 3 identities × 30 names: %d accepted, %d refused, %d held; want 66, 24, 66",
			accepted, refused, r.DomainNames(other.ID.Name))
	}
	if got := metric(t, r, "gdp_router_quota_refusals_total", "reason", "domain_quota"); got != 24 {
		t.Fatalf("quota_refusals_total{domain_quota} = %v, want 24", got)
	}
	// A fourth identity of the other domain gets no face.
	if _, _, err := attach(other.ID.Name); err == nil {
		t.Fatal("a fourth face of the other domain attached, limit 3")
	}
	if got := metric(t, r, "gdp_router_quota_refusals_total", "reason", "tunnels_per_domain"); got != 1 {
		t.Fatalf("quota_refusals_total{tunnels_per_domain} = %v, want 1", got)
	}
	// The router's own domain: four identities attach, and each holds its
	// own 40 names beyond the other domain's 50.
	for i := range 4 {
		c, _, err := attach(pdu.Name{})
		if err != nil {
			t.Fatalf("own-domain face %d: %v", i, err)
		}
		if ok, _ := count(c, selfMinted(t, c.Name(), 40)); ok != 40 {
			t.Fatalf("own-domain identity %d: %d of 40 names accepted", i, ok)
		}
	}
	if r.DomainNames(w.dom.ID.Name) != 0 {
		t.Fatalf("the own domain counted: %d", r.DomainNames(w.dom.ID.Name))
	}
	// Withdrawn names are given back to the domain: with 49 held the
	// second identity (20 held, beyond its floor) gets one more.
	if ok, _ := count(foreign[1], selfMinted(t, foreign[1].Name(), 1)); ok != 0 {
		t.Fatal("a name beyond the identity's floor taken with the domain over its allowance")
	}
	for _, rt := range first[:17] {
		if _, err := foreign[0].Withdraw(ctx, rt.Name); err != nil {
			t.Fatal(err)
		}
	}
	if ok, _ := count(foreign[1], selfMinted(t, foreign[1].Name(), 2)); ok != 1 {
		t.Fatalf("after 17 withdrawals the other domain got %d of 2 names, want 1", ok)
	}
	// A detached face gives its slot and names back.
	_ = links[0].Close()
	eventually(t, "the other domain's freed face slot", func() bool {
		c, _, err := attach(other.ID.Name)
		if err != nil {
			return false
		}
		// 50 - 13 given back = 37 held: a new identity gets its floor (16)
		// though that passes the allowance, and nothing beyond it.
		ok, _ := count(c, selfMinted(t, c.Name(), 29))
		return ok == 16
	})
}
