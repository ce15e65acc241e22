package capsuled

import (
	"errors"

	"github.com/gdpnet/gdpnet/pdu"
)

// Each requester's share of this server's disk (placement.
// max_bytes_per_requester): the bytes of records held for the capsules it
// placed (placement.creator), summed from the store's per-capsule counts
// at each write. Without it one member's writers could fill the disk up
// to min_free_bytes, which then refuses every member's appends.

// errStorageShare: the capsule's creator holds its share of this server's
// storage (503, as a full disk is).
var errStorageShare = errors.New("storage share used")

// refuseStorage is the reason logged for a write the share refused.
const refuseStorage = "requester_bytes"

// storageUsed reports how many bytes of records this server holds for the
// capsules p's creator placed here, and whether that is its share or more.
// A placement without a known creator (stored before Session 13) is never
// over.
func (s *Server) storageUsed(p *placement) (uint64, bool) {
	limit := s.pol.Load().placement.MaxBytesPerRequester
	if limit < 0 || p == nil || p.creator == (pdu.Name{}) {
		return 0, false
	}
	var n uint64
	for _, c := range s.places.createdBy(p.creator) {
		if b, err := s.st.Bytes(c); err == nil {
			n += b
		}
	}
	return n, n >= uint64(limit)
}
