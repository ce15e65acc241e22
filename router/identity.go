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

// idShare is one identity's use of the shared limits. It lives while the
// identity has a face.
type idShare struct {
	peer  pdu.Name
	faces int          // attached faces; guarded by identities.mu
	names atomic.Int64 // local names its faces hold, plus reservations in flight
	// adverts is the identity's budget of names verified per second (three
	// signature checks each), shared by all its faces.
	adverts *tokenBucket
	// waits counts the identity's ADVERTISEs whose results wait for their
	// location records (advertise.max_publish_waits_per_identity).
	waits atomic.Int64
}

// takeName reserves one name within max (0: unbounded). It reports false,
// reserving nothing, when the identity holds max names already.
func (s *idShare) takeName(max int) bool {
	if s.names.Add(1) > int64(max) && max > 0 {
		s.names.Add(-1)
		return false
	}
	return true
}

func (s *idShare) giveName(n int) { s.names.Add(-int64(n)) }

// identities maps each attached identity to its share.
type identities struct {
	mu sync.Mutex
	m  map[pdu.Name]*idShare
}

// errTunnelQuota: the identity has its maximum number of faces already.
var errTunnelQuota = fmt.Errorf("router: identity has its maximum number of tunnels")

// acquire counts one more face for peer, within maxFaces (0: unbounded).
func (ids *identities) acquire(peer pdu.Name, maxFaces int, newBucket func() *tokenBucket) (*idShare, error) {
	ids.mu.Lock()
	defer ids.mu.Unlock()
	s := ids.m[peer]
	if s == nil {
		s = &idShare{peer: peer, adverts: newBucket()}
		ids.m[peer] = s
	}
	if maxFaces > 0 && s.faces >= maxFaces {
		return nil, fmt.Errorf("%w (%d): %s", errTunnelQuota, maxFaces, peer)
	}
	s.faces++
	return s, nil
}

// release counts one face fewer; the share is forgotten with the last one.
func (ids *identities) release(s *idShare) {
	ids.mu.Lock()
	defer ids.mu.Unlock()
	if s.faces--; s.faces <= 0 && ids.m[s.peer] == s {
		delete(ids.m, s.peer)
	}
}

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
