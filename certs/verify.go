package certs

import (
	"time"

	"github.com/gdpnet/gdpnet/internal/clock"
)

// Verifier checks chains against a set of trusted domains. It holds no
// cache: every call checks every signature. Safe for concurrent use if
// Trusted is not modified meanwhile.
type Verifier struct {
	Trusted map[Name]*Metadata // trust-domain metadata by domain name
	Now     func() time.Time   // nil = clock.Now (time.Now unless a fault test skews it)
	// Skew is the clock skew tolerated between the issuer and this node: a
	// certificate whose NotBefore is at most Skew ahead of now is taken
	// (the issuer's clock runs ahead, or this one behind). NotAfter stays
	// strict: nothing is believed after its issuer said it ends. 0: none.
	// NewVerifier sets DefaultClockSkew; the daemons' clock_skew sets it.
	Skew time.Duration
}

// SessionOfExtra is the metadata attribute that marks a capsule-kind name
// as an attachment's session name (PROTOCOL.md §5.8); its value is the
// node's printable name. VerifyRoute takes such a name only hosted by that
// node (Session 16): a capsule server counts a request from a session
// name as its node's once the node's membership is shown (PROTOCOL.md
// §8.3), so no other identity may hold one — else a member could hold
// session names of node keys it mints, each with a forged membership
// whose check the server must pay for.
const SessionOfExtra = "gdp.session-of"

// DefaultClockSkew is the default Verifier.Skew, and the tolerance of
// VerifyAdCert: 5 minutes, the same as the routers' advertisement clock
// window and capsuled's DeleteWindow, so one bound says how far apart two
// nodes' clocks may be (docs/OPERATIONS.md, "Clocks").
const DefaultClockSkew = 5 * time.Minute

// NewVerifier returns a Verifier trusting the given domains.
func NewVerifier(domains ...*Metadata) *Verifier {
	v := &Verifier{Trusted: make(map[Name]*Metadata, len(domains)), Skew: DefaultClockSkew}
	for _, d := range domains {
		v.Trusted[d.Name()] = d
	}
	return v
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return clock.Now()
}

// VerifyRoute checks the whole chain for name at router (DESIGN.md §3):
//
//  1. metadata(Target) hashes to name;
//  2. owner(Target) signed AdCert(Target -> Endpoint), or, with no AdCert,
//     the target is the endpoint itself (self-advertisement);
//  3. Endpoint signed RtCert(Endpoint -> router), and metadata(Router)
//     hashes to router;
//  4. router holds a membership cert from a domain in v.Trusted;
//  5. every certificate is valid now: NotBefore <= now < NotAfter;
//  6. a session name (a capsule whose metadata has SessionOfExtra) is
//     hosted only by the node it names (Session 16).
//
// It returns the earliest NotAfter in the chain (when the route must be
// dropped unless renewed), or a *ChainError naming the failing link.
// Cheap checks run first; the three signatures last.
func (v *Verifier) VerifyRoute(c *Chain, name, router Name) (time.Time, error) {
	now := v.now()
	if c == nil {
		return time.Time{}, linkErr(LinkChain, ErrMalformed, "no chain")
	}
	if c.Target == nil {
		return time.Time{}, linkErr(LinkTarget, ErrMalformed, "missing target metadata")
	}
	if err := c.Target.Validate(); err != nil {
		return time.Time{}, linkErr(LinkTarget, ErrMalformed, "%v", err)
	}
	if got := c.Target.Name(); got != name {
		return time.Time{}, linkErr(LinkTarget, ErrNameMismatch, "metadata hashes to %s, route is for %s", got, name)
	}
	ep := c.Endpoint
	var epName Name
	if c.AdCert == nil {
		if ep != nil && ep != c.Target && !ep.Equal(c.Target) {
			return time.Time{}, linkErr(LinkEndpoint, ErrNameMismatch, "no adcert, so the endpoint must be the target %s", name)
		}
		ep, epName = c.Target, name
		if !ep.Kind.canEndpoint() {
			return time.Time{}, linkErr(LinkTarget, ErrWrongKind, "a %s cannot advertise itself; it needs an adcert", ep.Kind)
		}
	} else {
		if c.Target.Kind != KindCapsule {
			return time.Time{}, linkErr(LinkTarget, ErrWrongKind, "adcerts are for capsules, target is a %s", c.Target.Kind)
		}
		if ep == nil {
			return time.Time{}, linkErr(LinkEndpoint, ErrMalformed, "missing endpoint metadata")
		}
		if err := ep.Validate(); err != nil {
			return time.Time{}, linkErr(LinkEndpoint, ErrMalformed, "%v", err)
		}
		if !ep.Kind.canEndpoint() {
			return time.Time{}, linkErr(LinkEndpoint, ErrWrongKind, "a %s cannot host names", ep.Kind)
		}
		epName = ep.Name()
		if err := checkCert(c.AdCert, LinkAdCert, KindAdCert, name, epName, now, v.Skew); err != nil {
			return time.Time{}, err
		}
		if of, ok := c.Target.Extra[SessionOfExtra]; ok && of != epName.String() {
			return time.Time{}, linkErr(LinkAdCert, ErrWrongSubject, "session name of %s hosted by %s: only the node it names may hold a session name", of, epName)
		}
	}
	if c.Router == nil {
		return time.Time{}, linkErr(LinkRouter, ErrMalformed, "missing router metadata")
	}
	if err := c.Router.Validate(); err != nil {
		return time.Time{}, linkErr(LinkRouter, ErrMalformed, "%v", err)
	}
	if got := c.Router.Name(); got != router {
		return time.Time{}, linkErr(LinkRouter, ErrNameMismatch, "metadata hashes to %s, route is at router %s", got, router)
	}
	if c.Router.Kind != KindRouter {
		return time.Time{}, linkErr(LinkRouter, ErrWrongKind, "a %s, not a router", c.Router.Kind)
	}
	if err := checkCert(c.RtCert, LinkRtCert, KindRtCert, epName, router, now, v.Skew); err != nil {
		return time.Time{}, err
	}
	domain, err := v.checkMember(c.Member, c.Domain, router, now)
	if err != nil {
		return time.Time{}, err
	}

	if c.AdCert != nil && !c.AdCert.checkSignature(c.Target.Key) {
		return time.Time{}, linkErr(LinkAdCert, ErrBadSignature, "not signed by the owner of %s", name)
	}
	if !c.RtCert.checkSignature(ep.Key) {
		return time.Time{}, linkErr(LinkRtCert, ErrBadSignature, "not signed by endpoint %s", epName)
	}
	if !c.Member.checkSignature(domain.Key) {
		return time.Time{}, linkErr(LinkMember, ErrBadSignature, "not signed by domain %s", c.Member.Issuer)
	}

	exp := c.RtCert.NotAfter
	if c.Member.NotAfter.Before(exp) {
		exp = c.Member.NotAfter
	}
	if c.AdCert != nil && c.AdCert.NotAfter.Before(exp) {
		exp = c.AdCert.NotAfter
	}
	return exp, nil
}

// VerifyMember checks that meta (a node) belongs to a trusted domain through
// member, issued by domain (which may be nil: the trusted copy is used). It
// returns the DOMAIN's name and the membership's NotAfter.
func (v *Verifier) VerifyMember(meta *Metadata, member *Cert, domain *Metadata) (Name, time.Time, error) {
	now := v.now()
	if meta == nil {
		return Name{}, time.Time{}, linkErr(LinkNode, ErrMalformed, "missing member metadata")
	}
	if err := meta.Validate(); err != nil {
		return Name{}, time.Time{}, linkErr(LinkNode, ErrMalformed, "%v", err)
	}
	if meta.Kind == KindCapsule || meta.Kind == KindDomain {
		return Name{}, time.Time{}, linkErr(LinkNode, ErrWrongKind, "a %s cannot be a domain member", meta.Kind)
	}
	d, err := v.checkMember(member, domain, meta.Name(), now)
	if err != nil {
		return Name{}, time.Time{}, err
	}
	if !member.checkSignature(d.Key) {
		return Name{}, time.Time{}, linkErr(LinkMember, ErrBadSignature, "not signed by domain %s", member.Issuer)
	}
	return member.Issuer, member.NotAfter, nil
}

// checkMember does the signature-free checks of a membership of subject and
// returns the trusted domain metadata whose key must have signed it.
func (v *Verifier) checkMember(member *Cert, domain *Metadata, subject Name, now time.Time) (*Metadata, error) {
	if member == nil {
		return nil, linkErr(LinkMember, ErrMalformed, "missing membership cert")
	}
	if member.Kind != KindMember {
		return nil, linkErr(LinkMember, ErrWrongKind, "a %s where a %s belongs", member.Kind, KindMember)
	}
	trusted := v.Trusted[member.Issuer]
	if trusted == nil {
		return nil, linkErr(LinkMember, ErrUntrustedDomain, "issued by %s, which this verifier does not trust", member.Issuer)
	}
	if err := checkCert(member, LinkMember, KindMember, member.Issuer, subject, now, v.Skew); err != nil {
		return nil, err
	}
	if err := trusted.Validate(); err != nil {
		return nil, linkErr(LinkDomain, ErrMalformed, "trusted metadata: %v", err)
	}
	if got := trusted.Name(); got != member.Issuer {
		return nil, linkErr(LinkDomain, ErrNameMismatch, "trusted metadata for %s hashes to %s", member.Issuer, got)
	}
	if trusted.Kind != KindDomain {
		return nil, linkErr(LinkDomain, ErrWrongKind, "a %s, not a domain", trusted.Kind)
	}
	if domain != nil && domain != trusted && !domain.Equal(trusted) {
		return nil, linkErr(LinkDomain, ErrNameMismatch, "chain's domain metadata hashes to %s, membership issued by %s", domain.Name(), member.Issuer)
	}
	return trusted, nil
}

// checkCert does the signature-free checks of one certificate; a NotBefore
// up to skew ahead of now is tolerated.
func checkCert(c *Cert, link string, kind CertKind, issuer, subject Name, now time.Time, skew time.Duration) error {
	switch {
	case c == nil:
		return linkErr(link, ErrMalformed, "missing %s", kind)
	case c.Kind != kind:
		return linkErr(link, ErrWrongKind, "a %s where a %s belongs", c.Kind, kind)
	case c.Issuer != issuer:
		return linkErr(link, ErrWrongIssuer, "issued by %s, want %s", c.Issuer, issuer)
	case c.Subject != subject:
		return linkErr(link, ErrWrongSubject, "for %s, want %s", c.Subject, subject)
	case !c.NotBefore.Before(c.NotAfter):
		return linkErr(link, ErrMalformed, "empty validity window")
	case now.Add(max(skew, 0)).Before(c.NotBefore):
		return linkErr(link, ErrNotYetValid, "not before %s, now %s (clock skew tolerated: %s)", fmtTime(c.NotBefore), fmtTime(now), max(skew, 0))
	case !now.Before(c.NotAfter):
		return linkErr(link, ErrExpired, "not after %s, now %s", fmtTime(c.NotAfter), fmtTime(now))
	}
	return nil
}

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// VerifyAdCert checks that ad is an AdCert signed by the owner of the
// capsule capsule describes, for server, valid at now: that the capsule's
// owner placed it on that server.
func VerifyAdCert(ad *Cert, capsule *Metadata, server Name, now time.Time) error {
	if capsule == nil || capsule.Kind != KindCapsule {
		return linkErr(LinkTarget, ErrWrongKind, "adcerts are for capsules")
	}
	name := capsule.Name()
	if err := checkCert(ad, LinkAdCert, KindAdCert, name, server, now, DefaultClockSkew); err != nil {
		return err
	}
	if !ad.checkSignature(capsule.Key) {
		return linkErr(LinkAdCert, ErrBadSignature, "not signed by the owner of %s", name)
	}
	return nil
}
