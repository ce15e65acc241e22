package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/router"
)

// TestRouterDomainReloadAllOrNothing (review10): a `gdp router` whose
// resolver runs a DHT node is given a membership of another domain (its
// domain key replaced: domain and member_cert files rewritten, the watcher
// reloads). The DHT node keeps the domain it started with (its key space
// is that domain's), so the reload is refused — and refused whole: the
// router keeps its domain too. Before, the router took the new domain and
// membership, then the resolver refused them, and the log said the running
// configuration was kept. A later valid reload (the old domain's
// membership renewed) goes through, so the refused one was seen.
func TestRouterDomainReloadAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	ksDir := filepath.Join(dir, "keys")
	ks, err := certs.OpenKeystore(ksDir)
	if err != nil {
		t.Fatal(err)
	}
	domA, _ := certs.NewIdentity(certs.KindDomain, "domain A")
	domB, _ := certs.NewIdentity(certs.KindDomain, "domain A, its key replaced")
	id, _ := certs.NewIdentity(certs.KindRouter, "router")
	if err := ks.Save("r", id); err != nil {
		t.Fatal(err)
	}
	domainPath, memberPath := filepath.Join(dir, "domain.meta"), filepath.Join(dir, "r.member")
	now := time.Now()
	member := func(dom *certs.Identity, life time.Duration) *certs.Cert {
		m, err := certs.IssueMember(dom, id.Name, now.Add(-time.Minute), now.Add(life))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	writePEM(t, domainPath, certs.PEMMetadata, domA.Meta.Marshal())
	writePEM(t, memberPath, certs.PEMCert, member(domA, time.Hour).Marshal())
	d := &routerDaemon{admin: adminPort(t), name: id.Name}
	cfg := fmt.Sprintf(`listen: "127.0.0.1:0"
keystore: %s
identity: r
member_cert: %s
domain: %s
admin: %q
drain_timeout: 1s
log: {level: error}
resolver:
  mode: dht
  listen: [/ip4/127.0.0.1/udp/0/quic-v1]
  min_puts: 1
  handshake_timeout: 10s
`, ksDir, memberPath, domainPath, d.admin)
	cfgPath := filepath.Join(dir, "router.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if s := d.run(t, cfgPath); s.Domain != domA.Name {
		t.Fatalf("router up in domain %s, want A %s", s.Domain, domA.Name)
	}
	status := func() router.Summary {
		var s router.Summary
		if !d.getJSON("/v1/status", &s) {
			t.Fatal("no router status")
		}
		return s
	}

	// Domain B's files: the watcher reloads within its debounce (1 s).
	writePEM(t, memberPath, certs.PEMCert, member(domB, time.Hour).Marshal())
	writePEM(t, domainPath, certs.PEMMetadata, domB.Meta.Marshal())
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if s := status(); s.Domain != domA.Name {
			t.Fatalf("the router took domain %s from a reload its resolver refused (a half-done reload)", s.Domain)
		}
	}

	// Back to A, its membership renewed: that reload goes through.
	renewed := member(domA, 2*time.Hour)
	writePEM(t, domainPath, certs.PEMMetadata, domA.Meta.Marshal())
	writePEM(t, memberPath, certs.PEMCert, renewed.Marshal())
	waitFor(t, "the renewed membership in force", func() bool {
		s := status()
		if s.Domain != domA.Name {
			t.Fatalf("the router is in domain %s", s.Domain)
		}
		return s.MemberExpiry.Equal(renewed.NotAfter)
	})
}
