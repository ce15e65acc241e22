package resolver

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
)

// TestReloadTrustedDomains: a reload that adds a trusted domain admits a
// member of it that the gate refused before, at once (the refusal is not
// held against it); a reload that removes the domain disconnects the
// admitted member and refuses it again. The global tier admits members of
// any trusted domain, so it is where the trusted domains decide.
func TestReloadTrustedDomains(t *testing.T) {
	w := newWorld(t, time.Now().Add(-time.Minute))
	da, db := w.domain("reload a"), w.domain("reload b")
	ra, rb := w.router(da, "reload a node"), w.router(db, "reload b node")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := func(r *routerFx, d *certs.Identity, cv *certs.Verifier) *DHT {
		n, err := NewDHT(ctx, DHTConfig{Identity: r.id, Member: r.member, Domain: d.Meta, Certs: cv, Global: true,
			Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}, HandshakeTimeout: 10 * time.Second, MinPuts: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	a := start(ra, da, certs.NewVerifier(da.Meta))
	b := start(rb, db, certs.NewVerifier(da.Meta, db.Meta))

	if err := a.Connect(ctx, b.Addrs()...); err == nil {
		t.Fatal("a node that trusts only its own domain admitted a member of another domain")
	}
	if a.gate.isVerified(b.PeerID()) {
		t.Fatal("b verified at a before the reload")
	}

	// Trust b's domain too: b is admitted at once, though a refused it a
	// moment ago.
	if err := a.Reload(ra.member, certs.NewVerifier(da.Meta, db.Meta)); err != nil {
		t.Fatal(err)
	}
	if err := a.Connect(ctx, b.Addrs()...); err != nil {
		t.Fatalf("after adding b's domain: %v", err)
	}
	if !a.gate.isVerified(b.PeerID()) {
		t.Fatal("b not verified at a after its domain became trusted")
	}

	// Trust only a's domain again: b is forgotten and disconnected, and
	// refused when it comes back.
	if err := a.Reload(ra.member, certs.NewVerifier(da.Meta)); err != nil {
		t.Fatal(err)
	}
	if a.gate.isVerified(b.PeerID()) {
		t.Fatal("b still verified at a after its domain was removed")
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(a.host.Network().ConnsToPeer(b.PeerID())) > 0 && !a.gate.isDenied(b.PeerID()) {
		if time.Now().After(deadline) {
			t.Fatal("b still connected to a after its domain was removed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := a.Connect(ctx, b.Addrs()...); err == nil {
		t.Fatal("a admitted b again after b's domain was removed")
	}

	// A reload under which the node's own membership does not verify is
	// refused, and the trust in force stays.
	if err := a.Reload(ra.member, certs.NewVerifier(db.Meta)); err == nil {
		t.Fatal("reload without the node's own domain accepted")
	}
	if got := a.gate.trust.Load(); got.Trusted[da.Name] == nil || got.Trusted[db.Name] != nil {
		t.Fatal("a refused reload changed the trusted domains")
	}
}

// TestServiceReloadTrust: a static resolver (what a router embeds) stores
// a record of a router in a newly trusted domain only after a reload adds
// the domain, and refuses it again once a reload removes it.
func TestServiceReloadTrust(t *testing.T) {
	w := newWorld(t, time.Now().Add(-time.Minute))
	da, db := w.domain("svc a"), w.domain("svc b")
	self := w.router(da, "svc self")
	rb := w.router(db, "svc b router")
	ctx := context.Background()
	svc, err := Open(ctx, Config{Mode: "static"}, NodeCredentials{Identity: self.id, Member: self.member,
		Domain: da.Meta, Certs: certs.NewVerifier(da.Meta)}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	name, chain := w.capsuleAt(rb, "svc capsule", time.Hour)
	rec := w.location(rb, name, chain, 1)
	if err := svc.Publish(ctx, rec); !errors.Is(err, ErrNotMember) {
		t.Fatalf("record of an untrusted domain: %v, want %v", err, ErrNotMember)
	}
	if err := svc.Reload(self.member, certs.NewVerifier(da.Meta, db.Meta)); err != nil {
		t.Fatal(err)
	}
	if err := svc.Publish(ctx, rec); err != nil {
		t.Fatalf("record of a domain trusted since the reload: %v", err)
	}
	if err := svc.Reload(self.member, certs.NewVerifier(da.Meta)); err != nil {
		t.Fatal(err)
	}
	rec2 := w.location(rb, name, chain, 2)
	if err := svc.Publish(ctx, rec2); !errors.Is(err, ErrNotMember) {
		t.Fatalf("record of a domain no longer trusted: %v, want %v", err, ErrNotMember)
	}
}
