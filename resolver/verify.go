package resolver

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	wallclock "github.com/gdpnet/gdpnet/internal/clock"
	"github.com/gdpnet/gdpnet/pdu"
)

// Verifier decides whether a record may be stored or believed. It is what
// the DHT's record validator, Static and Cache run on every record.
type Verifier struct {
	// Certs holds the trusted domains and the clock. Required.
	Certs *certs.Verifier
	// Kind is the only kind accepted. Zero means KindLocation.
	Kind Kind
	// Domain, when set, is the only domain whose routers may publish
	// (a domain DHT refuses routers of other domains, even trusted ones).
	Domain pdu.Name
	// trust, when set, replaces Certs: the trusted domains a reload
	// (DHT.Reload, Service.Reload) swaps in.
	trust *atomic.Pointer[certs.Verifier]
}

// certs is the trust in force: the reloaded one, else Certs.
func (v *Verifier) certs() *certs.Verifier {
	if v.trust != nil {
		if c := v.trust.Load(); c != nil {
			return c
		}
	}
	return v.Certs
}

func (v *Verifier) now() time.Time {
	if c := v.certs(); c != nil && c.Now != nil {
		return c.Now()
	}
	return wallclock.Now()
}

// Verify checks r completely: kind, signature, the chain for r.Name at
// r.Router() against the trusted domains, the domain restriction, the
// border router's membership (KindBorder), and expiry. It returns when the
// record stops being valid.
func (v *Verifier) Verify(r *Record) (time.Time, error) {
	if err := r.checkShape(); err != nil {
		return time.Time{}, fmt.Errorf("verify record for %s: %w", r.Name, err)
	}
	if err := r.checkSignature(); err != nil {
		return time.Time{}, fmt.Errorf("verify record for %s: %w", r.Name, err)
	}
	return v.verifyParsed(r)
}

// verifyParsed is Verify for a record whose shape and signature were
// checked already (by ParseRecord).
func (v *Verifier) verifyParsed(r *Record) (time.Time, error) {
	want := v.Kind
	if want == 0 {
		want = KindLocation
	}
	if r.Kind != want {
		return time.Time{}, fmt.Errorf("verify record for %s: %w: %s, want %s", r.Name, ErrWrongKind, r.Kind, want)
	}
	cv := v.certs()
	if cv == nil {
		return time.Time{}, fmt.Errorf("verify record for %s: %w: no trusted domains configured", r.Name, ErrBadChain)
	}
	exp, err := cv.VerifyRoute(r.Chain, r.Name, r.Router())
	if err != nil {
		if errors.Is(err, certs.ErrUntrustedDomain) {
			return time.Time{}, fmt.Errorf("verify record for %s: %w: %w", r.Name, ErrNotMember, err)
		}
		if errors.Is(err, certs.ErrExpired) {
			return time.Time{}, fmt.Errorf("verify record for %s: %w: %w", r.Name, ErrExpired, err)
		}
		return time.Time{}, fmt.Errorf("verify record for %s: %w: %w", r.Name, ErrBadChain, err)
	}
	dom := r.Domain()
	if !v.Domain.IsZero() && dom != v.Domain {
		return time.Time{}, fmt.Errorf("verify record for %s: %w: router %s is in domain %s, not %s",
			r.Name, ErrNotMember, r.Router(), dom, v.Domain)
	}
	if r.Kind == KindBorder {
		bdom, bexp, err := cv.VerifyMember(r.Border, r.BorderMember, r.Chain.Domain)
		if err != nil {
			return time.Time{}, fmt.Errorf("verify record for %s: border router: %w: %w", r.Name, ErrNotMember, err)
		}
		if bdom != dom {
			return time.Time{}, fmt.Errorf("verify record for %s: %w: border router is in domain %s, name in %s",
				r.Name, ErrNotMember, bdom, dom)
		}
		if bexp.Before(exp) {
			exp = bexp
		}
	}
	if r.Expiry.Before(exp) {
		exp = r.Expiry
	}
	if !v.now().Before(exp) {
		return time.Time{}, fmt.Errorf("verify record for %s: %w at %s", r.Name, ErrExpired, exp.Format(time.RFC3339))
	}
	return exp, nil
}

// plausible is the part of Verify that needs no signature: kind, domain
// and expiry. Select uses it on values kad-dht has already validated.
func (v *Verifier) plausible(r *Record) bool {
	want := v.Kind
	if want == 0 {
		want = KindLocation
	}
	if r.Kind != want || (!v.Domain.IsZero() && r.Domain() != v.Domain) {
		return false
	}
	return v.now().Before(r.EffectiveExpiry())
}
