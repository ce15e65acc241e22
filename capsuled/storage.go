package capsuled

import (
	"errors"
	"sync"
	"time"

	"github.com/gdpnet/gdpnet/pdu"
)

// Each requester's share of this server's disk (placement.
// max_bytes_per_requester): the bytes of records held for the capsules it
// placed (placement.creator), summed from the store's per-capsule counts.
// Without it one member's writers could fill the disk up to
// min_free_bytes, which then refuses every member's appends.

// errStorageShare: the capsule's creator holds its share of this server's
// storage (503, as a full disk is).
var errStorageShare = errors.New("storage share used")

// refuseStorage is the reason logged for a write the share refused.
const refuseStorage = "requester_bytes"

// storageResum is how long a creator's sum is used before it is summed
// again from the store: a sum is a pass over the creator's capsules (up to
// max_per_requester of them), too much for every APPEND of a busy writer.
// In between, the creator's own APPENDs are added to it as they are
// stored; what anti-entropy pulls and deletes give back shows at the next
// sum.
const storageResum = time.Second

// storageSums caches each creator's sum (storageResum).
type storageSums struct {
	mu sync.Mutex
	m  map[pdu.Name]*storageSum
}

type storageSum struct {
	bytes uint64
	at    time.Time
}

// storageUsed reports how many bytes of records this server holds for the
// capsules p's creator placed here, and whether that is its share or more.
// A placement without a known creator (stored before Session 13) is never
// over.
func (s *Server) storageUsed(p *placement) (uint64, bool) {
	limit := s.pol.Load().placement.MaxBytesPerRequester
	if limit < 0 || p == nil || p.creator == (pdu.Name{}) {
		return 0, false
	}
	now := time.Now()
	ss := &s.storage
	ss.mu.Lock()
	sum := ss.m[p.creator]
	if sum != nil && now.Sub(sum.at) < storageResum {
		n := sum.bytes
		ss.mu.Unlock()
		return n, n >= uint64(limit)
	}
	ss.mu.Unlock()
	var n uint64
	caps := s.places.createdBy(p.creator)
	for _, c := range caps {
		if b, err := s.st.Bytes(c); err == nil {
			n += b
		}
	}
	ss.mu.Lock()
	if ss.m == nil {
		ss.m = map[pdu.Name]*storageSum{}
	}
	if len(caps) == 0 {
		delete(ss.m, p.creator)
	} else {
		ss.m[p.creator] = &storageSum{bytes: n, at: now}
	}
	ss.mu.Unlock()
	return n, n >= uint64(limit)
}

// storageAdded adds n bytes just stored for a capsule of p's creator to
// its cached sum.
func (s *Server) storageAdded(p *placement, n uint64) {
	if p == nil || p.creator == (pdu.Name{}) {
		return
	}
	s.storage.mu.Lock()
	if sum := s.storage.m[p.creator]; sum != nil {
		sum.bytes += n
	}
	s.storage.mu.Unlock()
}
