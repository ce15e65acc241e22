package router

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/gdpnet/gdpnet/pdu"
)

// An identity is the verified principal on the far side of one or more
// faces: the tunnel peer's name, proven by its certificate. Limits that
// every user shares (FIB names, tunnels, the advertisement verification
// budget, the publish queue) are given out per identity, so that one member
// opening several tunnels gets one share, not one per tunnel.
//
// Identities of another domain (one the policy allows) are also counted
// per domain (Session 12): that domain's operator mints identities at
// will, each with a fresh per-identity share, so per-identity shares alone
// do not bound what the domain takes. Its faces (face.max_per_domain)
// bound every per-identity share it can hold at once (a share lives only
// while its identity has a face); its names (advertise.
// max_names_per_domain) bound its part of the FIB. The router's own
// domain has no such bound: its operator admits each member.

// idShare is one identity's use of the shared limits. It lives while the
// identity has a face.
type idShare struct {
	peer  pdu.Name
	faces int          // attached faces; guarded by identities.mu
	names atomic.Int64 // local names its faces hold, plus reservations in flight
	// dom is the share of the identity's domain when that is not the
	// router's own (nil otherwise): its names are counted there too.
	dom *domShare
	// adverts is the identity's budget of names verified per second (three
	// signature checks each), shared by all its faces.
	adverts *tokenBucket
	// floor is, for an identity of another domain, its guaranteed share
	// of the domain's verification budget (advertise.domain_rate and
	// domain_burst over face.max_per_domain), used once the domain's own
	// bucket is empty, so one member flooding does not shut its domain's
	// other members out; nil: no floor.
	floor *tokenBucket
	// waits counts the identity's ADVERTISEs whose results wait for their
	// location records (advertise.max_publish_waits_per_identity).
	waits atomic.Int64
}

// takeName reserves one name within maxID for the identity and maxDom for
// its domain (0 or negative: unbounded). It reports the quota that bit,
// reserving nothing, when one is reached. The identity's first floor names
// are never refused for its domain's total (domainNameFloor): one member
// filling its domain's allowance does not shut the others out.
func (s *idShare) takeName(maxID, maxDom, floor int) (quotaReason, bool) {
	n := s.names.Add(1)
	if n > int64(maxID) && maxID > 0 {
		s.names.Add(-1)
		return quotaNames, false
	}
	if d := s.dom; d != nil && d.names.Add(1) > int64(maxDom) && maxDom > 0 && n > int64(floor) {
		d.names.Add(-1)
		s.names.Add(-1)
		return quotaDomainNames, false
	}
	return 0, true
}

// domainNameFloor is the share of another domain's name allowance each of
// its identities is guaranteed: the allowance over the faces the domain
// may hold. Identities are at most its faces, so the domain's total stays
// within twice its allowance. None when either is unbounded.
func domainNameFloor(maxDom, maxFaces int) int {
	if maxDom <= 0 || maxFaces <= 0 {
		return 0
	}
	return maxDom / maxFaces
}

// domainRateFloor is the bucket of each identity's guaranteed share of
// its domain's verification budget: the budget over the faces the domain
// may hold, so the domain verifies at most twice its budget. Nil (no
// floor) when the budget or the faces are unbounded or the share of the
// burst is under one name.
func domainRateFloor(rate float64, burst, maxFaces int) *tokenBucket {
	if rate <= 0 || maxFaces <= 0 || burst/maxFaces < 1 {
		return nil
	}
	return newTokenBucket(rate/float64(maxFaces), burst/maxFaces)
}

func (s *idShare) giveName(n int) {
	s.names.Add(-int64(n))
	if s.dom != nil {
		s.dom.names.Add(-int64(n))
	}
}

// allowDomain takes one name from the budget of the identity's domain, or,
// with that empty, from the identity's floor (the router's own domain: no
// domain budget).
func (s *idShare) allowDomain() bool {
	if s.dom == nil || s.dom.adverts.allow() {
		return true
	}
	return s.floor != nil && s.floor.allow()
}

// domShare is one other domain's use of the shared limits, across all its
// identities. It lives while the domain has a face.
type domShare struct {
	domain pdu.Name
	faces  int // guarded by identities.mu
	names  atomic.Int64
	// adverts is the domain's budget of names verified per second, shared
	// by all its identities (advertise.domain_rate).
	adverts *tokenBucket
}

// identities maps each attached identity to its share.
type identities struct {
	mu   sync.Mutex
	m    map[pdu.Name]*idShare
	doms map[pdu.Name]*domShare // other domains with a face
}

// errTunnelQuota: the identity has its maximum number of faces already.
var errTunnelQuota = fmt.Errorf("router: identity has its maximum number of tunnels")

// errDomainTunnelQuota: the identity's domain (not the router's own) has
// its maximum number of faces already.
var errDomainTunnelQuota = fmt.Errorf("router: domain has its maximum number of tunnels")

// acquire counts one more face for peer, a member of domain, within
// maxFaces for the identity and, when foreign (domain is not the router's
// own), maxDomFaces for the domain (0: unbounded).
func (ids *identities) acquire(peer, domain pdu.Name, foreign bool, maxFaces, maxDomFaces int, newBucket, newDomBucket, newFloorBucket func() *tokenBucket) (*idShare, error) {
	ids.mu.Lock()
	defer ids.mu.Unlock()
	s := ids.m[peer]
	if maxFaces > 0 && s != nil && s.faces >= maxFaces {
		return nil, fmt.Errorf("%w (%d): %s", errTunnelQuota, maxFaces, peer)
	}
	var d *domShare
	if s != nil {
		d = s.dom // the domain of its first face
	} else if foreign {
		if d = ids.doms[domain]; d == nil {
			d = &domShare{domain: domain, adverts: newDomBucket()}
		}
	}
	if d != nil && maxDomFaces > 0 && d.faces >= maxDomFaces {
		return nil, fmt.Errorf("%w (%d): %s of domain %s", errDomainTunnelQuota, maxDomFaces, peer, d.domain)
	}
	if s == nil {
		s = &idShare{peer: peer, adverts: newBucket(), dom: d}
		if d != nil {
			s.floor = newFloorBucket()
		}
		ids.m[peer] = s
	}
	if d != nil {
		if ids.doms == nil {
			ids.doms = map[pdu.Name]*domShare{}
		}
		ids.doms[d.domain] = d
		d.faces++
	}
	s.faces++
	return s, nil
}

// release counts one face fewer; the share is forgotten with the last one,
// and the domain's with the domain's last.
func (ids *identities) release(s *idShare) {
	ids.mu.Lock()
	defer ids.mu.Unlock()
	if s.faces--; s.faces <= 0 && ids.m[s.peer] == s {
		delete(ids.m, s.peer)
	}
	if d := s.dom; d != nil {
		if d.faces--; d.faces <= 0 && ids.doms[d.domain] == d {
			delete(ids.doms, d.domain)
		}
	}
}

// domainNames returns how many local names the identities of domain hold
// (0 for the router's own domain, which is not counted).
func (ids *identities) domainNames(domain pdu.Name) int {
	ids.mu.Lock()
	defer ids.mu.Unlock()
	if d := ids.doms[domain]; d != nil {
		return int(d.names.Load())
	}
	return 0
}

// DomainNames returns how many local names the identities of another
// domain hold at this router, across all their faces.
func (r *Router) DomainNames(domain pdu.Name) int { return r.ids.domainNames(domain) }

// names returns how many local names peer holds (tests, admin).
func (ids *identities) names(peer pdu.Name) int {
	ids.mu.Lock()
	defer ids.mu.Unlock()
	if s := ids.m[peer]; s != nil {
		return int(s.names.Load())
	}
	return 0
}

// IdentityNames returns how many local names the identity peer holds at
// this router, across all its faces.
func (r *Router) IdentityNames(peer pdu.Name) int { return r.ids.names(peer) }
