package certs

import (
	"errors"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/internal/clock"
)

func TestVerifyRouteAccepts(t *testing.T) {
	f := newFixture(t)
	exp, err := f.v.VerifyRoute(f.chain, f.capsule.Name(), f.router.Name)
	if err != nil {
		t.Fatal(err)
	}
	// AdCert 24h, RtCert 12h, Member 72h: the RtCert expires first.
	if want := t0.Add(12 * time.Hour); !exp.Equal(want) {
		t.Errorf("expiry %s, want %s (earliest in the chain)", exp, want)
	}
	exp, err = f.v.VerifyRoute(f.self, f.client.Name, f.router.Name)
	if err != nil {
		t.Fatalf("self-advertisement: %v", err)
	}
	if want := t0.Add(6 * time.Hour); !exp.Equal(want) {
		t.Errorf("self expiry %s, want %s", exp, want)
	}
	// A self-advertisement may also leave Endpoint nil.
	c := *f.self
	c.Endpoint = nil
	if _, err := f.v.VerifyRoute(&c, f.client.Name, f.router.Name); err != nil {
		t.Errorf("self-advertisement, nil endpoint: %v", err)
	}
	// A session name hosted by the node it names (Session 16).
	s := sessionOf(t, f, f.server.Name)
	ad, err := IssueAdCert(f.owner, s.Name(), f.server.Name, t0, t0.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	sc := *f.chain
	sc.Target, sc.AdCert = s, ad
	if _, err := f.v.VerifyRoute(&sc, s.Name(), f.router.Name); err != nil {
		t.Errorf("a session name hosted by its node: %v", err)
	}
	// The domain metadata may be left out: the verifier has the trusted copy.
	c = *f.chain
	c.Domain = nil
	if _, err := f.v.VerifyRoute(&c, f.capsule.Name(), f.router.Name); err != nil {
		t.Errorf("no domain metadata in chain: %v", err)
	}
}

// TestVerifyRouteRejects breaks each link on purpose and checks the error
// names that link and the reason.
func TestVerifyRouteRejects(t *testing.T) {
	f := newFixture(t)
	other := fixedIdentity(t, KindServer, "other server")
	otherRouter := fixedIdentity(t, KindRouter, "other router")
	otherDomain := fixedIdentity(t, KindDomain, "other domain")
	stranger := seedKey("stranger")
	day := 24 * time.Hour
	cert := func(c *Cert, err error) *Cert {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// forge copies a cert and changes a field after signing.
	forge := func(c *Cert, mut func(*Cert)) *Cert {
		cp := *c
		mut(&cp)
		return &cp
	}
	tests := []struct {
		name     string
		mut      func(c *Chain)
		target   Name // zero: the capsule
		router   Name // zero: f.router
		now      time.Time
		wantLink string
		wantErr  error
	}{
		{name: "nil target", mut: func(c *Chain) { c.Target = nil }, wantLink: LinkTarget, wantErr: ErrMalformed},
		{name: "target metadata of another name", mut: func(c *Chain) { c.Target = f.server.Meta }, wantLink: LinkTarget, wantErr: ErrNameMismatch},
		{name: "route asked for another name", target: f.server.Name, wantLink: LinkTarget, wantErr: ErrNameMismatch},
		{name: "target metadata altered", mut: func(c *Chain) {
			m := *f.capsule
			m.Description = "evil"
			c.Target = &m
		}, wantLink: LinkTarget, wantErr: ErrNameMismatch},
		{name: "target invalid key", mut: func(c *Chain) {
			m := *f.capsule
			m.Key = m.Key[:31]
			c.Target = &m
		}, wantLink: LinkTarget, wantErr: ErrMalformed},
		{name: "capsule without adcert", mut: func(c *Chain) { c.AdCert = nil; c.Endpoint = nil }, wantLink: LinkTarget, wantErr: ErrWrongKind},
		{name: "adcert signed by a stranger", mut: func(c *Chain) {
			c.AdCert = cert(IssueAdCert(stranger, f.capsule.Name(), f.server.Name, t0, t0.Add(day)))
		}, wantLink: LinkAdCert, wantErr: ErrBadSignature},
		{name: "adcert signed by the writer key", mut: func(c *Chain) {
			c.AdCert = cert(IssueAdCert(seedKey("writer"), f.capsule.Name(), f.server.Name, t0, t0.Add(day)))
		}, wantLink: LinkAdCert, wantErr: ErrBadSignature},
		{name: "adcert window stretched after signing", mut: func(c *Chain) {
			c.AdCert = forge(f.ad, func(x *Cert) { x.NotAfter = x.NotAfter.Add(time.Hour) })
		}, wantLink: LinkAdCert, wantErr: ErrBadSignature},
		{name: "adcert for another server", mut: func(c *Chain) {
			c.AdCert = cert(IssueAdCert(f.owner, f.capsule.Name(), other.Name, t0, t0.Add(day)))
		}, wantLink: LinkAdCert, wantErr: ErrWrongSubject},
		{name: "adcert for another capsule", mut: func(c *Chain) {
			c.AdCert = cert(IssueAdCert(f.owner, f.client.Name, f.server.Name, t0, t0.Add(day)))
		}, wantLink: LinkAdCert, wantErr: ErrWrongIssuer},
		{name: "rtcert in the adcert slot", mut: func(c *Chain) { c.AdCert = f.rt }, wantLink: LinkAdCert, wantErr: ErrWrongKind},
		{name: "adcert expired", now: t0.Add(25 * time.Hour), mut: func(c *Chain) {
			c.RtCert = cert(IssueRtCert(f.server, f.router.Name, t0, t0.Add(2*day)))
		}, wantLink: LinkAdCert, wantErr: ErrExpired},
		{name: "adcert not yet valid", mut: func(c *Chain) {
			c.AdCert = cert(IssueAdCert(f.owner, f.capsule.Name(), f.server.Name, t0.Add(2*time.Hour), t0.Add(day)))
		}, wantLink: LinkAdCert, wantErr: ErrNotYetValid},
		{name: "endpoint missing", mut: func(c *Chain) { c.Endpoint = nil }, wantLink: LinkEndpoint, wantErr: ErrMalformed},
		{name: "endpoint is a domain", mut: func(c *Chain) { c.Endpoint = f.domain.Meta }, wantLink: LinkEndpoint, wantErr: ErrWrongKind},
		{name: "endpoint metadata swapped", mut: func(c *Chain) { c.Endpoint = other.Meta }, wantLink: LinkAdCert, wantErr: ErrWrongSubject},
		{name: "self-advertisement with a foreign endpoint", target: f.client.Name, mut: func(c *Chain) {
			*c = *f.self
			c.Endpoint = f.server.Meta
		}, wantLink: LinkEndpoint, wantErr: ErrNameMismatch},
		{name: "rtcert missing", mut: func(c *Chain) { c.RtCert = nil }, wantLink: LinkRtCert, wantErr: ErrMalformed},
		{name: "rtcert by another server", mut: func(c *Chain) {
			c.RtCert = cert(IssueRtCert(other, f.router.Name, t0, t0.Add(day)))
		}, wantLink: LinkRtCert, wantErr: ErrWrongIssuer},
		{name: "rtcert forged issuer", mut: func(c *Chain) {
			c.RtCert = forge(cert(IssueRtCert(other, f.router.Name, t0, t0.Add(day))), func(x *Cert) { x.Issuer = f.server.Name })
		}, wantLink: LinkRtCert, wantErr: ErrBadSignature},
		{name: "rtcert for another router", mut: func(c *Chain) {
			c.RtCert = cert(IssueRtCert(f.server, otherRouter.Name, t0, t0.Add(day)))
		}, wantLink: LinkRtCert, wantErr: ErrWrongSubject},
		{name: "member cert in the rtcert slot", mut: func(c *Chain) { c.RtCert = f.mem }, wantLink: LinkRtCert, wantErr: ErrWrongKind},
		{name: "rtcert expired at its NotAfter", now: t0.Add(12 * time.Hour), wantLink: LinkRtCert, wantErr: ErrExpired},
		{name: "rtcert not yet valid", now: t0.Add(-DefaultClockSkew - time.Second), mut: func(c *Chain) {
			c.AdCert = cert(IssueAdCert(f.owner, f.capsule.Name(), f.server.Name, t0.Add(-time.Hour), t0.Add(day)))
		}, wantLink: LinkRtCert, wantErr: ErrNotYetValid},
		{name: "router metadata missing", mut: func(c *Chain) { c.Router = nil }, wantLink: LinkRouter, wantErr: ErrMalformed},
		{name: "router metadata of another router", mut: func(c *Chain) { c.Router = otherRouter.Meta }, wantLink: LinkRouter, wantErr: ErrNameMismatch},
		{name: "router is a server", router: other.Name, mut: func(c *Chain) {
			c.Router = other.Meta
			c.RtCert = cert(IssueRtCert(f.server, other.Name, t0, t0.Add(day)))
		}, wantLink: LinkRouter, wantErr: ErrWrongKind},
		{name: "member missing", mut: func(c *Chain) { c.Member = nil }, wantLink: LinkMember, wantErr: ErrMalformed},
		{name: "member of an untrusted domain", mut: func(c *Chain) {
			c.Member = cert(IssueMember(otherDomain, f.router.Name, t0, t0.Add(day)))
			c.Domain = otherDomain.Meta
		}, wantLink: LinkMember, wantErr: ErrUntrustedDomain},
		{name: "member for another router", mut: func(c *Chain) {
			c.Member = cert(IssueMember(f.domain, otherRouter.Name, t0, t0.Add(day)))
		}, wantLink: LinkMember, wantErr: ErrWrongSubject},
		{name: "member forged by a stranger", mut: func(c *Chain) {
			fake, err := IdentityFromKey(KindDomain, stranger, "", t0, [16]byte{})
			if err != nil {
				t.Fatal(err)
			}
			m := cert(IssueMember(fake, f.router.Name, t0, t0.Add(day)))
			m.Issuer = f.domain.Name
			c.Member = m
		}, wantLink: LinkMember, wantErr: ErrBadSignature},
		{name: "adcert in the member slot", mut: func(c *Chain) { c.Member = f.ad }, wantLink: LinkMember, wantErr: ErrWrongKind},
		{name: "member expired", now: t0.Add(3 * day), mut: func(c *Chain) {
			c.AdCert = cert(IssueAdCert(f.owner, f.capsule.Name(), f.server.Name, t0, t0.Add(4*day)))
			c.RtCert = cert(IssueRtCert(f.server, f.router.Name, t0, t0.Add(4*day)))
		}, wantLink: LinkMember, wantErr: ErrExpired},
		{name: "member not yet valid", mut: func(c *Chain) {
			c.Member = cert(IssueMember(f.domain, f.router.Name, t0.Add(2*time.Hour), t0.Add(day)))
		}, wantLink: LinkMember, wantErr: ErrNotYetValid},
		{name: "domain metadata of another domain", mut: func(c *Chain) { c.Domain = otherDomain.Meta }, wantLink: LinkDomain, wantErr: ErrNameMismatch},
		{name: "session name of another node (Session 16)", target: sessionOf(t, f, f.client.Name).Name(), mut: func(c *Chain) {
			s := sessionOf(t, f, f.client.Name)
			c.Target, c.AdCert = s, cert(IssueAdCert(f.owner, s.Name(), f.server.Name, t0, t0.Add(day)))
		}, wantLink: LinkAdCert, wantErr: ErrWrongSubject},
		{name: "nil chain", mut: nil, wantLink: LinkChain, wantErr: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := new(Chain)
			*c = *f.chain
			if tt.mut != nil {
				tt.mut(c)
			} else if tt.wantLink == LinkChain {
				c = nil
			}
			target, router := f.capsule.Name(), f.router.Name
			if !tt.target.IsZero() {
				target = tt.target
			}
			if !tt.router.IsZero() {
				router = tt.router
			}
			v := *f.v
			if !tt.now.IsZero() {
				v.Now = func() time.Time { return tt.now }
			}
			_, err := v.VerifyRoute(c, target, router)
			var ce *ChainError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a *ChainError", err)
			}
			if ce.Link != tt.wantLink || ce.Err != tt.wantErr {
				t.Fatalf("got link %q err %q (%v), want link %q err %q", ce.Link, ce.Err, err, tt.wantLink, tt.wantErr)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.wantErr)
			}
		})
	}
}

// TestValidityBoundaries: a certificate is valid for NotBefore <= now <
// NotAfter, at both edges, in every link.
func TestValidityBoundaries(t *testing.T) {
	f := newFixture(t)
	nb, na := t0.Add(10*time.Hour), t0.Add(20*time.Hour)
	tests := []struct {
		name    string
		now     time.Time
		wantErr error
	}{
		{"one second before NotBefore", nb.Add(-time.Second), ErrNotYetValid},
		{"one nanosecond before NotBefore", nb.Add(-time.Nanosecond), ErrNotYetValid},
		{"exactly NotBefore", nb, nil},
		{"middle", nb.Add(5 * time.Hour), nil},
		{"one nanosecond before NotAfter", na.Add(-time.Nanosecond), nil},
		{"exactly NotAfter", na, ErrExpired},
		{"one second after NotAfter", na.Add(time.Second), ErrExpired},
	}
	links := []string{LinkAdCert, LinkRtCert, LinkMember}
	for _, link := range links {
		// The link under test gets the window [nb, na); the others a wide one.
		wide := func() (time.Time, time.Time) { return t0.Add(-100 * time.Hour), t0.Add(100 * time.Hour) }
		win := func(l string) (time.Time, time.Time) {
			if l == link {
				return nb, na
			}
			return wide()
		}
		c := *f.chain
		var err error
		a, b := win(LinkAdCert)
		if c.AdCert, err = IssueAdCert(f.owner, f.capsule.Name(), f.server.Name, a, b); err != nil {
			t.Fatal(err)
		}
		a, b = win(LinkRtCert)
		if c.RtCert, err = IssueRtCert(f.server, f.router.Name, a, b); err != nil {
			t.Fatal(err)
		}
		a, b = win(LinkMember)
		if c.Member, err = IssueMember(f.domain, f.router.Name, a, b); err != nil {
			t.Fatal(err)
		}
		for _, tt := range tests {
			t.Run(link+"/"+tt.name, func(t *testing.T) {
				v := NewVerifier(f.domain.Meta)
				v.Now = func() time.Time { return tt.now }
				v.Skew = 0 // the exact boundaries; TestClockSkew has the tolerance
				exp, err := v.VerifyRoute(&c, f.capsule.Name(), f.router.Name)
				if tt.wantErr == nil {
					if err != nil {
						t.Fatal(err)
					}
					if !exp.Equal(na) {
						t.Errorf("expiry %s, want %s", exp, na)
					}
					return
				}
				var ce *ChainError
				if !errors.As(err, &ce) || ce.Err != tt.wantErr || ce.Link != link {
					t.Fatalf("got %v, want link %s: %v", err, link, tt.wantErr)
				}
			})
		}
	}
}

func TestVerifyMember(t *testing.T) {
	f := newFixture(t)
	d, exp, err := f.v.VerifyMember(f.router.Meta, f.mem, f.domain.Meta)
	if err != nil {
		t.Fatal(err)
	}
	if d != f.domain.Name || !exp.Equal(t0.Add(72*time.Hour)) {
		t.Errorf("got domain %s expiry %s", d, exp)
	}
	if _, _, err := f.v.VerifyMember(f.router.Meta, f.mem, nil); err != nil {
		t.Errorf("nil domain metadata: %v", err)
	}
	tests := []struct {
		name    string
		meta    *Metadata
		member  *Cert
		domain  *Metadata
		wantErr error
	}{
		{"another node", f.server.Meta, f.mem, nil, ErrWrongSubject},
		{"no member cert", f.router.Meta, nil, nil, ErrMalformed},
		{"rtcert instead", f.router.Meta, f.rt, nil, ErrWrongKind},
		{"capsule as member", f.capsule, f.mem, nil, ErrWrongKind},
		{"wrong domain metadata", f.router.Meta, f.mem, f.server.Meta, ErrNameMismatch},
		{"untrusted", f.router.Meta, func() *Cert {
			od := fixedIdentity(t, KindDomain, "other domain")
			c, _ := IssueMember(od, f.router.Name, t0, t0.Add(time.Hour*2))
			return c
		}(), nil, ErrUntrustedDomain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := f.v.VerifyMember(tt.meta, tt.member, tt.domain)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestTrustedMapMustHash: a Trusted entry filed under the wrong name is
// not believed.
func TestTrustedMapMustHash(t *testing.T) {
	f := newFixture(t)
	impostor := fixedIdentity(t, KindDomain, "impostor")
	m, err := IssueMember(impostor, f.router.Name, t0, t0.Add(time.Hour*24))
	if err != nil {
		t.Fatal(err)
	}
	m.Issuer = f.domain.Name // signature now fails too, but the map check comes first
	v := &Verifier{Trusted: map[Name]*Metadata{f.domain.Name: impostor.Meta}, Now: f.v.Now}
	c := *f.chain
	c.Member = m
	c.Domain = nil
	_, err = v.VerifyRoute(&c, f.capsule.Name(), f.router.Name)
	var ce *ChainError
	if !errors.As(err, &ce) || ce.Link != LinkDomain || ce.Err != ErrNameMismatch {
		t.Fatalf("got %v, want domain name mismatch", err)
	}
}

// TestDomainSeparation: one key signs two kinds of certificate with the same
// issuer, subject and window; the signatures are not interchangeable.
func TestDomainSeparation(t *testing.T) {
	f := newFixture(t)
	d := f.domain
	// A domain key also used (wrongly) as an endpoint key: its RtCert
	// signature must not pass as a membership signature.
	ep, err := IdentityFromKey(KindServer, d.Key, "same key", t0, [16]byte{})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := IssueRtCert(ep, f.router.Name, t0, t0.Add(time.Hour*2))
	if err != nil {
		t.Fatal(err)
	}
	mem, err := IssueMember(d, f.router.Name, t0, t0.Add(time.Hour*2))
	if err != nil {
		t.Fatal(err)
	}
	swapped := *mem
	swapped.sig = rt.sig
	if swapped.checkSignature(d.Public()) {
		t.Fatal("an rtcert signature verified as a membership signature")
	}
	if !mem.checkSignature(d.Public()) {
		t.Fatal("genuine membership signature refused")
	}
	// Same payload fields, different kind byte: different signature input.
	if string(sigStructure(KindRtCert, nil)) == string(sigStructure(KindMember, nil)) {
		t.Fatal("signature inputs of two kinds are equal")
	}
}

// TestClockSkew: a NotBefore up to Skew ahead of the verifier's clock is
// taken (the issuer's clock runs ahead, or this one behind: by default 5
// minutes, certs.DefaultClockSkew); beyond it the certificate is not yet
// valid; NotAfter is never stretched. A verifier without Now reads the
// process clock (internal/clock), so a node whose clock the fault suite
// sets 10 minutes back refuses certificates issued a minute ago.
func TestClockSkew(t *testing.T) {
	f := newFixture(t)
	nb := t0.Add(10 * time.Hour)
	member, err := IssueMember(f.domain, f.router.Name, nb, nb.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		now  time.Time
		skew time.Duration
		want error
	}{
		{"2 minutes early, default skew", nb.Add(-2 * time.Minute), DefaultClockSkew, nil},
		{"5 minutes early, default skew", nb.Add(-5 * time.Minute), DefaultClockSkew, nil},
		{"10 minutes early, default skew", nb.Add(-10 * time.Minute), DefaultClockSkew, ErrNotYetValid},
		{"2 minutes early, no skew", nb.Add(-2 * time.Minute), 0, ErrNotYetValid},
		{"2 minutes early, negative skew", nb.Add(-2 * time.Minute), -time.Hour, ErrNotYetValid},
		{"a second after NotAfter", nb.Add(time.Hour + time.Second), DefaultClockSkew, ErrExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := NewVerifier(f.domain.Meta)
			v.Now = func() time.Time { return tc.now }
			v.Skew = tc.skew
			_, _, err := v.VerifyMember(f.router.Meta, member, nil)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if v := NewVerifier(f.domain.Meta); v.Skew != DefaultClockSkew {
		t.Fatalf("NewVerifier's skew %s, want %s", v.Skew, DefaultClockSkew)
	}

	// no Now: the process clock, skewed as the fault suite skews a daemon
	now := time.Now()
	fresh, err := IssueMember(f.domain, f.router.Name, now.Add(-time.Minute), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	v := NewVerifier(f.domain.Meta)
	if _, _, err := v.VerifyMember(f.router.Meta, fresh, nil); err != nil {
		t.Fatalf("unskewed: %v", err)
	}
	defer clock.SetOffset(clock.SetOffset(-3 * time.Minute))
	if _, _, err := v.VerifyMember(f.router.Meta, fresh, nil); err != nil {
		t.Fatalf("3 minutes behind (within the skew): %v", err)
	}
	clock.SetOffset(-10 * time.Minute)
	if _, _, err := v.VerifyMember(f.router.Meta, fresh, nil); !errors.Is(err, ErrNotYetValid) {
		t.Fatalf("10 minutes behind: %v, want not yet valid", err)
	}
	clock.SetOffset(2 * time.Hour)
	if _, _, err := v.VerifyMember(f.router.Meta, fresh, nil); !errors.Is(err, ErrExpired) {
		t.Fatalf("2 hours ahead: %v, want expired", err)
	}
}

// sessionOf is f's capsule metadata marked as node's session name.
func sessionOf(t *testing.T, f *fixture, node Name) *Metadata {
	t.Helper()
	m := *f.capsule
	m.Extra = map[string]string{SessionOfExtra: node.String()}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	return &m
}
