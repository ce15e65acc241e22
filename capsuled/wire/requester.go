package wire

import (
	"errors"
	"fmt"
)

// Requester is what a CREATE carries (key 13, proof: docs/PROTOCOL.md
// §8.3) to prove who asks, so that a capsule server can count the
// placement in the share of the requester's identity and domain instead
// of its source name (of which one member may hold thousands). The
// requester signs nothing here: its router vouches that the sender holds
// the PDU's source name, and the proof ties that name to one identity key
// and one domain.
//
// Key 13 because every version's decoder knows it (as a bstr) and no
// server before Session 14 reads it in a CREATE: an older server places
// the capsule as before, where a new key would have it drop the request as
// malformed with no answer (§8.1) — and a client could then not tell an
// old server from a lost PDU.
type Requester struct {
	// Credentials are the requester's node metadata, membership and
	// domain metadata in the form its tunnels show them
	// (tunnel.EncodeCredentials, PROTOCOL.md §4.2).
	Credentials []byte `cbor:"1,keyasint"`
	// Source is the canonical metadata of the PDU's source name when that
	// is not the requester's own name: a capsule-kind name (its session
	// name, §5.8) whose owner key is the requester's key. Absent when the
	// source is the requester's own name.
	Source []byte `cbor:"2,keyasint,omitempty"`
}

// MaxRequester bounds an encoded Requester: three metadata and a
// certificate with room to spare.
const MaxRequester = 4096

// ErrRequester: a CREATE's proof (key 13) is not a Requester.
var ErrRequester = errors.New("malformed requester proof")

// Marshal encodes r canonically.
func (r *Requester) Marshal() ([]byte, error) {
	if len(r.Credentials) == 0 {
		return nil, fmt.Errorf("%w: no credentials", ErrRequester)
	}
	b, err := codec.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRequester, err)
	}
	if len(b) > MaxRequester {
		return nil, fmt.Errorf("%w: %d bytes (max %d)", ErrRequester, len(b), MaxRequester)
	}
	return b, nil
}

// UnmarshalRequester is the strict inverse of Marshal: one canonical map,
// no unknown keys, credentials present.
func UnmarshalRequester(b []byte) (*Requester, error) {
	if len(b) > MaxRequester {
		return nil, fmt.Errorf("%w: %d bytes (max %d)", ErrRequester, len(b), MaxRequester)
	}
	r := new(Requester)
	if err := codec.UnmarshalStrict(b, r); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRequester, err)
	}
	if len(r.Credentials) == 0 {
		return nil, fmt.Errorf("%w: no credentials", ErrRequester)
	}
	return r, nil
}
