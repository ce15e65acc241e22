package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/gdpnet/gdpnet/certs"
)

// demoPKI is what the certs stage leaves in demoEnv.Shared for later stages.
//
// Shared keys set by this stage:
//
//	"certs.pki"      *demoPKI         everything below, plus helpers
//	"certs.keystore" *certs.Keystore  d.Dir/keys; aliases demo-domain, edge1, store1, alice, alice-writer
//	"certs.domain"   *certs.Identity  trust domain "demo-domain"
//	"certs.router"   *certs.Identity  router "edge1", member of the domain
//	"certs.member"   *certs.Cert      edge1's membership (valid 24h)
//	"certs.server"   *certs.Identity  capsule server "store1"
//	"certs.rtcert"   *certs.Cert      store1 -> edge1 (valid 1h)
//	"certs.owner"    *certs.Identity  "alice", owner of the demo capsule
//	"certs.writer"   *certs.Identity  "alice-writer", the capsule's writer key
//	"certs.capsule"  *certs.Metadata  the demo capsule
//	"certs.adcert"   *certs.Cert      alice: store1 may host the capsule (valid 24h)
//	"certs.chain"    *certs.Chain     the capsule's route chain at edge1
//	"certs.verifier" *certs.Verifier  trusts demo-domain
type demoPKI struct {
	KS       *certs.Keystore
	Domain   *certs.Identity
	Router   *certs.Identity
	Member   *certs.Cert
	Server   *certs.Identity
	RtCert   *certs.Cert
	Owner    *certs.Identity
	Writer   *certs.Identity
	Capsule  *certs.Metadata
	AdCert   *certs.Cert
	Chain    *certs.Chain
	Verifier *certs.Verifier
}

// NewNode creates and stores a node identity (router, server, client,
// agent, resolver) and makes it a member of the demo domain for ttl.
func (p *demoPKI) NewNode(kind certs.Kind, alias string, ttl time.Duration) (*certs.Identity, *certs.Cert, error) {
	id, err := certs.NewIdentity(kind, "demo "+alias)
	if err != nil {
		return nil, nil, err
	}
	if err := p.KS.Save(alias, id); err != nil {
		return nil, nil, err
	}
	now := time.Now()
	m, err := certs.IssueMember(p.Domain, id.Name, now.Add(-time.Minute), now.Add(ttl))
	if err != nil {
		return nil, nil, err
	}
	return id, m, nil
}

// SelfChain returns the chain for endpoint's own name at router (which
// holds routerMember), valid for ttl.
func (p *demoPKI) SelfChain(endpoint, router *certs.Identity, routerMember *certs.Cert, ttl time.Duration) (*certs.Chain, error) {
	now := time.Now()
	rt, err := certs.IssueRtCert(endpoint, router.Name, now.Add(-time.Minute), now.Add(ttl))
	if err != nil {
		return nil, err
	}
	return &certs.Chain{Target: endpoint.Meta, Endpoint: endpoint.Meta, RtCert: rt,
		Router: router.Meta, Member: routerMember, Domain: p.Domain.Meta}, nil
}

func init() {
	addDemoStage(10, "Identities and certificates: a trust domain, a router, a server and a capsule", demoCerts)
}

func demoCerts(_ context.Context, d *demoEnv) error {
	ks, err := certs.OpenKeystore(filepath.Join(d.Dir, "keys"))
	if err != nil {
		return err
	}
	p := &demoPKI{KS: ks}
	d.Showed("a certificate chain verifies; tampered, forged and expired ones are refused")
	now := time.Now()
	mk := func(kind certs.Kind, alias string) (*certs.Identity, error) {
		id, err := certs.NewIdentity(kind, "demo "+alias)
		if err != nil {
			return nil, err
		}
		return id, ks.Save(alias, id)
	}

	if p.Domain, err = mk(certs.KindDomain, "demo-domain"); err != nil {
		return err
	}
	d.Say("trust domain %q: name %s (SHA-256 of its metadata; key in %s, mode 0600)", "demo-domain", p.Domain.Name, ks.Dir())

	if p.Router, err = mk(certs.KindRouter, "edge1"); err != nil {
		return err
	}
	if p.Member, err = certs.IssueMember(p.Domain, p.Router.Name, now.Add(-time.Minute), now.Add(24*time.Hour)); err != nil {
		return err
	}
	d.Say("router edge1 %s joins the domain: membership cert signed by demo-domain, valid 24h", p.Router.Name)

	if p.Server, err = mk(certs.KindServer, "store1"); err != nil {
		return err
	}
	if p.RtCert, err = certs.IssueRtCert(p.Server, p.Router.Name, now.Add(-time.Minute), now.Add(time.Hour)); err != nil {
		return err
	}
	d.Say("capsule server store1 %s attaches to edge1: RtCert signed by store1, valid 1h", p.Server.Name)

	if p.Owner, err = mk(certs.KindClient, "alice"); err != nil {
		return err
	}
	if p.Writer, err = mk(certs.KindClient, "alice-writer"); err != nil {
		return err
	}
	if p.Capsule, err = certs.NewCapsule(p.Owner.Key, p.Writer.Public(), "demo capsule: temperature, lab 3"); err != nil {
		return err
	}
	capName := p.Capsule.Name()
	if p.AdCert, err = certs.IssueAdCert(p.Owner.Key, capName, p.Server.Name, now.Add(-time.Minute), now.Add(24*time.Hour)); err != nil {
		return err
	}
	d.Say("alice creates capsule %s (owner key alice, writer key alice-writer)", capName)
	d.Say("alice signs an AdCert: store1 may host and advertise the capsule, valid 24h")

	p.Chain = &certs.Chain{Target: p.Capsule, AdCert: p.AdCert, Endpoint: p.Server.Meta, RtCert: p.RtCert,
		Router: p.Router.Meta, Member: p.Member, Domain: p.Domain.Meta}
	enc := p.Chain.Marshal()
	parsed, err := certs.ParseChain(enc)
	if err != nil {
		return fmt.Errorf("parse own chain: %w", err)
	}
	p.Verifier = certs.NewVerifier(p.Domain.Meta)
	exp, err := p.Verifier.VerifyRoute(parsed, capName, p.Router.Name)
	if err != nil {
		return fmt.Errorf("verify own chain: %w", err)
	}
	d.Say("route chain (%d bytes: capsule -> adcert -> store1 -> rtcert -> edge1 -> member -> domain) verifies;", len(enc))
	d.Say("  the route expires %s, with the RtCert, the earliest certificate in the chain", exp.Format(time.RFC3339))
	d.Figure("route chain", "%d bytes, verified", len(enc))
	refused := 0

	// A tampered chain: one byte of the RtCert's signature changed.
	rt := p.RtCert.Marshal()
	i := bytes.Index(enc, rt)
	if i < 0 {
		return errors.New("rtcert not found in the encoded chain")
	}
	bad := bytes.Clone(enc)
	bad[i+len(rt)-1] ^= 0x01
	if err := expectRefused(p.Verifier, bad, capName, p.Router.Name, certs.LinkRtCert, certs.ErrBadSignature); err != nil {
		return err
	}
	refused++
	d.Say("one byte of the RtCert flipped: refused at link %q (%v)", certs.LinkRtCert, certs.ErrBadSignature)

	// A server the owner never authorised signs its own AdCert.
	rogue, err := certs.NewIdentity(certs.KindServer, "rogue")
	if err != nil {
		return err
	}
	fakeAd, err := certs.IssueAdCert(rogue.Key, capName, rogue.Name, now.Add(-time.Minute), now.Add(time.Hour))
	if err != nil {
		return err
	}
	fakeRt, err := certs.IssueRtCert(rogue, p.Router.Name, now.Add(-time.Minute), now.Add(time.Hour))
	if err != nil {
		return err
	}
	black := &certs.Chain{Target: p.Capsule, AdCert: fakeAd, Endpoint: rogue.Meta, RtCert: fakeRt,
		Router: p.Router.Meta, Member: p.Member, Domain: p.Domain.Meta}
	if err := expectRefused(p.Verifier, black.Marshal(), capName, p.Router.Name, certs.LinkAdCert, certs.ErrBadSignature); err != nil {
		return err
	}
	refused++
	d.Say("a rogue server forging an AdCert to attract the capsule's traffic: refused at link %q (%v)", certs.LinkAdCert, certs.ErrBadSignature)

	// Time passes: the short-lived RtCert runs out first.
	later := *p.Verifier
	later.Now = func() time.Time { return now.Add(2 * time.Hour) }
	if _, err := later.VerifyRoute(parsed, capName, p.Router.Name); !isLink(err, certs.LinkRtCert, certs.ErrExpired) {
		return fmt.Errorf("2h later: got %v, want rtcert expired", err)
	}
	refused++
	d.Say("two hours later the same chain is refused at link %q (%v): renew before expiry", certs.LinkRtCert, certs.ErrExpired)
	d.Say("%d of 3 bad chains refused, each at the link that is wrong", refused)
	d.Figure("bad chains refused", "%d of 3", refused)

	d.Shared["certs.pki"] = p
	d.Shared["certs.keystore"] = ks
	d.Shared["certs.domain"] = p.Domain
	d.Shared["certs.router"] = p.Router
	d.Shared["certs.member"] = p.Member
	d.Shared["certs.server"] = p.Server
	d.Shared["certs.rtcert"] = p.RtCert
	d.Shared["certs.owner"] = p.Owner
	d.Shared["certs.writer"] = p.Writer
	d.Shared["certs.capsule"] = p.Capsule
	d.Shared["certs.adcert"] = p.AdCert
	d.Shared["certs.chain"] = p.Chain
	d.Shared["certs.verifier"] = p.Verifier
	return nil
}

func isLink(err error, link string, want error) bool {
	var ce *certs.ChainError
	return errors.As(err, &ce) && ce.Link == link && ce.Err == want
}

// expectRefused parses and verifies enc and fails unless it is refused at
// link with reason want.
func expectRefused(v *certs.Verifier, enc []byte, name, router certs.Name, link string, want error) error {
	c, err := certs.ParseChain(enc)
	if err == nil {
		_, err = v.VerifyRoute(c, name, router)
	}
	if !isLink(err, link, want) {
		return fmt.Errorf("tampered chain: got %v, want refusal at link %s: %v", err, link, want)
	}
	return nil
}
