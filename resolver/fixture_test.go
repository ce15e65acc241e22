package resolver

import (
	"crypto/ed25519"
	"crypto/sha256"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
)

// testKey derives a deterministic Ed25519 key from a label, so that test
// vectors are reproducible.
func testKey(label string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("gdpnet resolver test key: " + label))
	return ed25519.NewKeyFromSeed(seed[:])
}

func testIdentity(t testing.TB, kind certs.Kind, label string, created time.Time) *certs.Identity {
	t.Helper()
	var nonce [16]byte
	copy(nonce[:], label)
	id, err := certs.IdentityFromKey(kind, testKey(label), label, created, nonce)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// clock is a settable clock for verifiers: real time plus an offset, or a
// fixed instant.
type clock struct{ off atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// world is a set of trust domains with routers, endpoints and capsules.
type world struct {
	t     testing.TB
	base  time.Time // NotBefore of every certificate
	valid time.Duration
}

type domainFx struct {
	id *certs.Identity
}

type routerFx struct {
	id     *certs.Identity
	member *certs.Cert
	domain *certs.Identity
}

func newWorld(t testing.TB, base time.Time) *world {
	return &world{t: t, base: base.UTC().Truncate(time.Second), valid: 24 * time.Hour}
}

func (w *world) domain(label string) *certs.Identity {
	return testIdentity(w.t, certs.KindDomain, "domain "+label, w.base)
}

// node makes a router or resolver identity with a membership in d valid
// for w.valid.
func (w *world) node(d *certs.Identity, kind certs.Kind, label string) *routerFx {
	w.t.Helper()
	id := testIdentity(w.t, kind, label, w.base)
	m, err := certs.IssueMember(d, id.Name, w.base, w.base.Add(w.valid))
	if err != nil {
		w.t.Fatal(err)
	}
	return &routerFx{id: id, member: m, domain: d}
}

func (w *world) router(d *certs.Identity, label string) *routerFx {
	return w.node(d, certs.KindRouter, label)
}

// capsuleAt returns a capsule name and the full chain that puts it at r
// (owner -> AdCert -> server -> RtCert -> r -> membership), each cert valid
// for validity from w.base.
func (w *world) capsuleAt(r *routerFx, label string, validity time.Duration) (pdu.Name, *certs.Chain) {
	w.t.Helper()
	owner := testKey("owner " + label)
	writer := testKey("writer " + label)
	var nonce [16]byte
	copy(nonce[:], label)
	capMeta := &certs.Metadata{Kind: certs.KindCapsule, Key: owner.Public().(ed25519.PublicKey),
		WriterKey: writer.Public().(ed25519.PublicKey), Created: w.base, Nonce: nonce, Description: "capsule " + label}
	srv := testIdentity(w.t, certs.KindServer, "server "+label, w.base)
	na := w.base.Add(validity)
	ad, err := certs.IssueAdCert(owner, capMeta.Name(), srv.Name, w.base, na)
	if err != nil {
		w.t.Fatal(err)
	}
	rt, err := certs.IssueRtCert(srv, r.id.Name, w.base, na)
	if err != nil {
		w.t.Fatal(err)
	}
	return capMeta.Name(), &certs.Chain{Target: capMeta, AdCert: ad, Endpoint: srv.Meta, RtCert: rt,
		Router: r.id.Meta, Member: r.member, Domain: r.domain.Meta}
}

// selfAt is the chain of a server advertising its own name at r.
func (w *world) selfAt(r *routerFx, label string) (pdu.Name, *certs.Chain) {
	w.t.Helper()
	srv := testIdentity(w.t, certs.KindServer, "server "+label, w.base)
	rt, err := certs.IssueRtCert(srv, r.id.Name, w.base, w.base.Add(w.valid))
	if err != nil {
		w.t.Fatal(err)
	}
	return srv.Name, &certs.Chain{Target: srv.Meta, RtCert: rt, Router: r.id.Meta, Member: r.member, Domain: r.domain.Meta}
}

func (w *world) location(r *routerFx, name pdu.Name, chain *certs.Chain, seq uint64, addrs ...string) *Record {
	w.t.Helper()
	if len(addrs) == 0 {
		addrs = []string{"127.0.0.1:4433", "[::1]:4433"}
	}
	rec, err := NewLocation(r.id.Key, name, chain, addrs, seq, time.Time{})
	if err != nil {
		w.t.Fatal(err)
	}
	return rec
}

func fixedVerifier(now time.Time, domains ...*certs.Identity) *certs.Verifier {
	v := &certs.Verifier{Trusted: map[pdu.Name]*certs.Metadata{}, Now: func() time.Time { return now }}
	for _, d := range domains {
		v.Trusted[d.Name] = d.Meta
	}
	return v
}

func mustPub(t testing.TB, r *routerFx) crypto.PubKey {
	t.Helper()
	pub, err := crypto.UnmarshalEd25519PublicKey(r.id.Meta.Key)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}
