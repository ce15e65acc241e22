package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
)

func init() {
	addDemoStage(40, "Resolvers: two trust domains, each with its own DHT, a name resolved across them through the global tier", demoResolver)
}

// demoResolverNode is one DHT node of the demo federation.
type demoResolverNode struct {
	alias string
	svc   *resolver.Service
}

// demoResolver builds domain A (the certs stage's demo-domain) and a new
// domain B, three resolver nodes each on loopback, the first of each a
// border that also joins the global DHT. It publishes the demo capsule's
// location record (at router edge1, domain A) in A and resolves it from a
// node of B.
//
// Shared keys set by this stage:
//
//	"resolver.domainB" *certs.Identity  the second trust domain
func demoResolver(ctx context.Context, d *demoEnv) error {
	p, ok := d.Shared["certs.pki"].(*demoPKI)
	if !ok {
		return errors.New("needs the certificates stage (certs.pki)")
	}
	d.Showed("a location record published in one domain's DHT and resolved from another domain")
	domB, err := certs.NewIdentity(certs.KindDomain, "demo domain B")
	if err != nil {
		return err
	}
	if err := p.KS.Save("demo-domain-b", domB); err != nil {
		return err
	}
	d.Shared["resolver.domainB"] = domB
	d.Say("second trust domain %q: %s; both domains trust each other's metadata (a federation)", "demo-domain-b", domB.Name)
	trust := certs.NewVerifier(p.Domain.Meta, domB.Meta)

	// node starts one resolver node of domain dom.
	node := func(dom *certs.Identity, kind certs.Kind, alias string, cfg resolver.Config) (*demoResolverNode, error) {
		id, err := certs.NewIdentity(kind, "demo "+alias)
		if err != nil {
			return nil, err
		}
		if err := p.KS.Save(alias, id); err != nil {
			return nil, err
		}
		now := time.Now()
		m, err := certs.IssueMember(dom, id.Name, now.Add(-time.Minute), now.Add(24*time.Hour))
		if err != nil {
			return nil, err
		}
		cfg.Mode = "dht"
		cfg.Listen = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
		if cfg.Global != nil {
			cfg.Global.Listen = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
		}
		svc, err := resolver.Open(ctx, cfg, resolver.NodeCredentials{Identity: id, Member: m, Domain: dom.Meta, Certs: trust}, zap.NewNop(), nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", alias, err)
		}
		d.Defer(func() { _ = svc.Close() })
		return &demoResolverNode{alias: alias, svc: svc}, nil
	}

	// Each domain: a border (a router: other domains send traffic to it),
	// then two resolvers that bootstrap from it and use it as their border.
	var globalBoot []string
	domain := func(dom *certs.Identity, tag string, borderPort int) ([]*demoResolverNode, error) {
		border, err := node(dom, certs.KindRouter, "border-"+tag, resolver.Config{Global: &resolver.GlobalConfig{
			Bootstrap: globalBoot, BorderAddrs: []string{fmt.Sprintf("127.0.0.1:%d", borderPort)}}})
		if err != nil {
			return nil, err
		}
		if globalBoot == nil {
			globalBoot = border.svc.Global.Addrs()
		}
		nodes := []*demoResolverNode{border}
		for i := 1; i <= 2; i++ {
			n, err := node(dom, certs.KindResolver, fmt.Sprintf("resolver-%s%d", tag, i), resolver.Config{
				Bootstrap: border.svc.Local.Addrs(), Borders: border.svc.Local.Addrs()})
			if err != nil {
				return nil, err
			}
			nodes = append(nodes, n)
		}
		d.Say("domain %s: DHT /gdp/d/%s… with %s (border, also on /gdp/global), %s, %s",
			tag, dom.Name.String()[:8], nodes[0].alias, nodes[1].alias, nodes[2].alias)
		return nodes, nil
	}
	a, err := domain(p.Domain, "a", 18009)
	if err != nil {
		return err
	}
	b, err := domain(domB, "b", 19009)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for _, n := range append(append([]*demoResolverNode{}, a...), b...) {
		if err := n.svc.Local.WaitPeers(wctx, 2); err != nil {
			return fmt.Errorf("%s: %w", n.alias, err)
		}
	}
	if err := b[0].svc.Global.WaitPeers(wctx, 1); err != nil {
		return fmt.Errorf("global tier: %w", err)
	}
	d.Say("every node proved its membership to its peers (a node without one is disconnected); the two borders met on the global DHT")

	// edge1 (domain A) publishes the demo capsule's location record.
	capName := p.Capsule.Name()
	edge1Addr := "127.0.0.1:8009"
	if n, ok := d.Shared["router.edge1"].(*router.Node); ok {
		edge1Addr = n.Addr()
	}
	rec, err := resolver.NewLocation(p.Router.Key, capName, p.Chain, []string{edge1Addr}, resolver.NextSequence(), time.Time{})
	if err != nil {
		return err
	}
	raw, _ := rec.Marshal()
	start := time.Now()
	if err := a[1].svc.Publish(wctx, rec); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	published := time.Since(start).Round(time.Microsecond)
	d.Say("%s publishes capsule %s at router edge1: a %d-byte record signed by edge1, carrying the whole chain (%s)",
		a[1].alias, capName, len(raw), published)
	d.Figure("location record published", "%d bytes in %s", len(raw), published)
	d.Say("each DHT node that stored it verified it first; %s also exported it to border-a, which announced it globally", a[1].alias)

	// Domain B's own DHT refuses it: edge1 is not a member of domain B.
	if err := b[2].svc.Local.Publish(wctx, rec); !errors.Is(err, resolver.ErrNotMember) {
		return fmt.Errorf("domain B's DHT accepted a record of domain A's router (err %v)", err)
	}
	d.Say("domain B's DHT refuses the same record (%v)", resolver.ErrNotMember)

	// Resolve from every node: A finds the location, B the border record.
	for _, n := range a {
		got, err := n.svc.Lookup(wctx, capName)
		if err != nil {
			return fmt.Errorf("%s: %w", n.alias, err)
		}
		if got.Kind != resolver.KindLocation || got.Router() != p.Router.Name {
			return fmt.Errorf("%s: got a %s record at %s", n.alias, got.Kind, got.Router())
		}
	}
	d.Say("from every node of domain A: location record, router edge1 at %v", rec.Addrs)
	start = time.Now()
	got, err := b[2].svc.Lookup(wctx, capName)
	if err != nil {
		return fmt.Errorf("cross-domain lookup from %s: %w", b[2].alias, err)
	}
	took := time.Since(start)
	if got.Kind != resolver.KindBorder || got.Domain() != p.Domain.Name || got.Border.Name() != a[0].svc.Global.Name() {
		return fmt.Errorf("cross-domain lookup: got a %s record in domain %s", got.Kind, got.Domain())
	}
	d.Say("from %s (domain B): not in B's DHT, so asked border-b, which found it on the global DHT (%s):", b[2].alias, took.Round(time.Microsecond))
	d.Figure("cross-domain lookup", "%s", took.Round(time.Microsecond))
	d.Say("  %s is in domain A via border-a at %v, until %s", capName, got.Addrs, got.EffectiveExpiry().Format(time.RFC3339))
	d.Say("  (%v is the border router address border-a announces; in a deployment domain B's routers send the capsule's PDUs there)", got.Addrs)
	d.Say("%s verified the border record itself: border-a's signature and membership in A, and edge1's whole chain", b[2].alias)
	start = time.Now()
	if _, err := b[2].svc.Lookup(wctx, capName); err != nil {
		return err
	}
	cached := time.Since(start).Round(time.Nanosecond)
	d.Say("asked again: answered from the cache in %s", cached)
	d.Figure("the same lookup, cached", "%s", cached)
	return nil
}
