package capsuled

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/router/routertest"
)

// TestOwnDomainReplacedOnReload (Session 17, review10): a reload that
// replaces the server's domain (a leaked domain key replaced: gdp
// capsuled's domain file, SIGHUP, client.Endpoint.Reload) makes the new
// domain the one whose members' placements are not limited per domain
// (placement.max_per_domain, max_bytes_per_domain), and the old one a
// domain like another. Before, the placements kept the domain the server
// started with: its own members, proven under the new key, counted
// together as another domain's against max_per_domain.
func TestOwnDomainReplacedOnReload(t *testing.T) {
	domA, err := routertest.NewDomain("A")
	if err != nil {
		t.Fatal(err)
	}
	domB, err := routertest.NewDomain("A, its key replaced")
	if err != nil {
		t.Fatal(err)
	}
	id, err := certs.NewIdentity(certs.KindServer, "s")
	if err != nil {
		t.Fatal(err)
	}
	memA, err := domA.Member(id)
	if err != nil {
		t.Fatal(err)
	}
	memB, err := domB.Member(id)
	if err != nil {
		t.Fatal(err)
	}
	net := &peerNet{self: id.Name, done: make(chan struct{})}
	net.c = client.New(id, net, client.Options{RequestTimeout: 20 * time.Millisecond, Attempts: 1})
	if err := net.c.SetQUICCredentials(memA, domA.ID.Meta, certs.NewVerifier(domA.ID.Meta)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := New(ctx, Config{Dir: t.TempDir(), PublishWait: 50 * time.Millisecond}, Deps{Identity: id, Client: net.c, Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(); _ = net.Close() })
	if s.places.limitedGroup(domA.ID.Name) || !s.places.limitedGroup(domB.ID.Name) || !s.places.limitedGroup(unprovenGroup) {
		t.Fatal("before the reload: want A (own) not limited per domain, B and the unproven pool limited")
	}

	vB := certs.NewVerifier(domB.ID.Meta)
	if err := net.c.SetQUICCredentials(memB, domB.ID.Meta, vB); err != nil {
		t.Fatal(err)
	}
	s.ReloadTrust(vB)
	if s.places.limitedGroup(domB.ID.Name) {
		t.Fatal("after the domain's key was replaced, its members' placements are limited per domain, as another domain's")
	}
	if !s.places.limitedGroup(domA.ID.Name) {
		t.Fatal("after the domain's key was replaced, the old domain's placements are still unlimited per domain")
	}
	if !s.places.limitedGroup(unprovenGroup) {
		t.Fatal("the unproven pool is not limited per domain")
	}
}
