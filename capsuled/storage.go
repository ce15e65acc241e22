package capsuled

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

// Each requester's share of this server's disk (placement.
// max_bytes_per_requester): the bytes of records held for the capsules it
// placed (placement.who.share), summed from the store's per-capsule
// counts; and each other domain's, and the unproven requesters' pool
// (placement.max_bytes_per_domain, who.group, Session 14). Without them
// one member's (or one domain's) writers could fill the disk up to
// min_free_bytes, which then refuses every member's appends.

// errStorageShare: the capsule's creator holds its share of this server's
// storage (503, as a full disk is).
var errStorageShare = errors.New("storage share used")

// refuseStorage is the reason logged for a write the share refused.
const refuseStorage = "requester_bytes"

// Shares a write may be refused by (the storage_refused_total share label).
const (
	shareRequester = "requester"
	shareDomain    = "domain"
	shareUnproven  = "unproven"
)

// storageResum is how long a sum is used before it is summed again from
// the store: a sum is a pass over the share's capsules (up to
// max_per_requester of them, or max_per_domain), too much for every
// APPEND of a busy writer. In between, the APPENDs stored are added to it;
// what anti-entropy pulls and deletes give back shows at the next sum.
const storageResum = time.Second

// storageSums caches each share's sum (storageResum).
type storageSums struct {
	mu sync.Mutex
	m  map[pdu.Name]*storageSum
}

type storageSum struct {
	bytes uint64
	at    time.Time
}

// used is k's sum, cached or taken again from the store over caps.
func (ss *storageSums) used(s *Server, k pdu.Name, caps func(pdu.Name) []pdu.Name, now time.Time) uint64 {
	ss.mu.Lock()
	sum := ss.m[k]
	if sum != nil && now.Sub(sum.at) < storageResum {
		n := sum.bytes
		ss.mu.Unlock()
		return n
	}
	ss.mu.Unlock()
	var n uint64
	cs := caps(k)
	for _, c := range cs {
		if b, err := s.st.Bytes(c); err == nil {
			n += b
		}
	}
	ss.mu.Lock()
	if ss.m == nil {
		ss.m = map[pdu.Name]*storageSum{}
	}
	if len(cs) == 0 {
		delete(ss.m, k)
	} else {
		ss.m[k] = &storageSum{bytes: n, at: now}
	}
	ss.mu.Unlock()
	return n
}

// add adds n bytes just stored to k's cached sum.
func (ss *storageSums) add(k pdu.Name, n uint64) {
	ss.mu.Lock()
	if sum := ss.m[k]; sum != nil {
		sum.bytes += n
	}
	ss.mu.Unlock()
}

// storageUsed reports whether a write to a capsule of placement p is over
// a share: the bytes this server holds for the capsules of p's requester,
// or of its group (another domain, the unproven pool), and which share
// (shareRequester, shareDomain, shareUnproven; "" when none is used up),
// with the bytes of that share (none used up: the requester's). A
// placement stored before Session 13 is never over.
func (s *Server) storageUsed(p *placement) (uint64, string) {
	if p == nil {
		return 0, ""
	}
	pol := s.pol.Load().placement
	now := time.Now()
	var mine uint64
	if limit := pol.MaxBytesPerRequester; limit >= 0 && p.who.share != (pdu.Name{}) {
		if mine = s.storage.used(s, p.who.share, s.places.heldBy, now); mine >= uint64(limit) {
			return mine, shareRequester
		}
	}
	if limit := pol.MaxBytesPerDomain; limit >= 0 && s.places.limitedGroup(p.who.group) {
		if n := s.groupStorage.used(s, p.who.group, s.places.heldByGroup, now); n >= uint64(limit) {
			if p.who.group == unprovenGroup {
				return n, shareUnproven
			}
			return n, shareDomain
		}
	}
	return mine, ""
}

// storageAdded adds n bytes just stored for a capsule of p to its
// requester's and its group's cached sums.
func (s *Server) storageAdded(p *placement, n uint64) {
	if p == nil {
		return
	}
	if p.who.share != (pdu.Name{}) {
		s.storage.add(p.who.share, n)
	}
	if p.who.group != (pdu.Name{}) {
		s.groupStorage.add(p.who.group, n)
	}
}

// storageRefusal logs (at most one line per share every 10 s) and returns
// the error an APPEND over share is answered with.
func (s *Server) storageRefusal(r request, p *placement, used uint64, share string) error {
	switch share {
	case shareRequester:
		s.logLim.Warn(s.log, refuseStorage+" "+p.who.share.String(), "append refused: the requester that placed the capsule holds its share of this server's storage (max_bytes_per_requester)",
			logging.Capsule(p.name), logging.Src(r.from), logging.Peer(p.creator), logging.Reason(refuseStorage), zap.Uint64("bytes", used))
		return fmt.Errorf("append to %s: %w: %s, which placed it, holds %d bytes of records here, its most (max_bytes_per_requester)",
			p.name, errStorageShare, p.creator, used)
	case shareUnproven:
		s.logLim.Warn(s.log, "unproven_bytes", "append refused: the requesters that proved no identity hold their pool's share of this server's storage (max_bytes_per_domain)",
			logging.Capsule(p.name), logging.Src(r.from), logging.Peer(p.creator), logging.Reason("unproven_bytes"), zap.Uint64("bytes", used))
		return fmt.Errorf("append to %s: %w: the requesters that proved no identity (%s placed it) hold %d bytes of records here together, their most (max_bytes_per_domain)",
			p.name, errStorageShare, p.creator, used)
	}
	s.logLim.Warn(s.log, "domain_bytes "+p.who.group.String(), "append refused: the members of another domain hold its share of this server's storage (max_bytes_per_domain)",
		logging.Capsule(p.name), logging.Src(r.from), logging.Peer(p.creator), zap.Stringer("domain", p.who.group), logging.Reason("domain_bytes"), zap.Uint64("bytes", used))
	return fmt.Errorf("append to %s: %w: the members of domain %s (%s placed it) hold %d bytes of records here together, their most (max_bytes_per_domain)",
		p.name, errStorageShare, p.who.group, p.creator, used)
}
