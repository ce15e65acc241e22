package certs

import (
	"crypto/ed25519"
	"crypto/sha256"
	"testing"
	"time"
)

// t0 is the fixed creation time of every test identity, and the start of
// every test certificate's validity window.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// seedKey derives a fixed Ed25519 key from a label, so the golden vectors
// are reproducible: seed = SHA-256("gdpnet test seed " + label).
func seedKey(label string) ed25519.PrivateKey {
	h := sha256.Sum256([]byte("gdpnet test seed " + label))
	return ed25519.NewKeyFromSeed(h[:])
}

// seedNonce is the first 16 bytes of SHA-256("gdpnet test nonce " + label).
func seedNonce(label string) [16]byte {
	h := sha256.Sum256([]byte("gdpnet test nonce " + label))
	var n [16]byte
	copy(n[:], h[:])
	return n
}

func fixedIdentity(t testing.TB, kind Kind, label string) *Identity {
	t.Helper()
	id, err := IdentityFromKey(kind, seedKey(label), "test "+label, t0, seedNonce(label))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// fixture is a complete, valid set of principals and certificates:
// capsule C (owner key "owner", writer key "writer") hosted by server S,
// which attaches to router R, a member of domain D.
type fixture struct {
	domain, router, server, client *Identity
	owner                          ed25519.PrivateKey
	capsule                        *Metadata
	ad, rt, mem                    *Cert
	selfRt                         *Cert  // client -> router, for a self-advertisement
	chain, self                    *Chain // capsule chain; client's own name
	v                              *Verifier
	now                            time.Time
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{
		domain: fixedIdentity(t, KindDomain, "domain"),
		router: fixedIdentity(t, KindRouter, "router"),
		server: fixedIdentity(t, KindServer, "server"),
		client: fixedIdentity(t, KindClient, "client"),
		owner:  seedKey("owner"),
		now:    t0.Add(time.Hour),
	}
	f.capsule = &Metadata{Kind: KindCapsule, Key: f.owner.Public().(ed25519.PublicKey),
		WriterKey: seedKey("writer").Public().(ed25519.PublicKey), Created: t0,
		Nonce: seedNonce("capsule"), Description: "test capsule",
		Extra: map[string]string{"site": "lab", "app": "sensor"}}
	var err error
	must := func(c *Cert, e error) *Cert {
		t.Helper()
		if e != nil {
			t.Fatal(e)
		}
		return c
	}
	f.ad = must(IssueAdCert(f.owner, f.capsule.Name(), f.server.Name, t0, t0.Add(24*time.Hour)))
	f.rt = must(IssueRtCert(f.server, f.router.Name, t0, t0.Add(12*time.Hour)))
	f.mem = must(IssueMember(f.domain, f.router.Name, t0, t0.Add(72*time.Hour)))
	f.selfRt = must(IssueRtCert(f.client, f.router.Name, t0, t0.Add(6*time.Hour)))
	_ = err
	f.chain = &Chain{Target: f.capsule, AdCert: f.ad, Endpoint: f.server.Meta, RtCert: f.rt,
		Router: f.router.Meta, Member: f.mem, Domain: f.domain.Meta}
	f.self = &Chain{Target: f.client.Meta, Endpoint: f.client.Meta, RtCert: f.selfRt,
		Router: f.router.Meta, Member: f.mem, Domain: f.domain.Meta}
	f.v = NewVerifier(f.domain.Meta)
	f.v.Now = func() time.Time { return f.now }
	return f
}
