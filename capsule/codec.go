package capsule

import (
	"fmt"

	"github.com/gdpnet/gdpnet/internal/detcbor"
)

// codec is the CBOR codec for heartbeats, proofs and evidence: RFC 8949
// §4.2.1 core deterministic encoding; decoding refuses duplicate and unknown
// keys, indefinite lengths and anything that does not re-encode to the same
// bytes.
var codec = detcbor.Must(detcbor.Limits{
	MaxArrayElements: MaxHoles + MaxProofLen,
	MaxMapPairs:      16,
	MaxNestedLevels:  8,
})

// decodeCanonical decodes b into v and refuses any encoding other than the
// one v re-encodes to, so every accepted object has exactly one byte form.
func decodeCanonical(b []byte, v any) error {
	if err := codec.UnmarshalStrict(b, v); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return nil
}
