package capsule

import (
	"bytes"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// The CBOR modes for heartbeats, proofs and evidence: RFC 8949 §4.2.1 core
// deterministic encoding; decoding refuses duplicate and unknown keys,
// indefinite lengths and anything that does not re-encode to the same bytes.
var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	if encMode, err = cbor.CoreDetEncOptions().EncMode(); err != nil {
		panic(err)
	}
	if decMode, err = (cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		MaxArrayElements:  MaxHoles + MaxProofLen,
		MaxMapPairs:       16,
		MaxNestedLevels:   8,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		TagsMd:            cbor.TagsForbidden,
	}).DecMode(); err != nil {
		panic(err)
	}
}

// decodeCanonical decodes b into v and refuses any encoding other than the
// one v re-encodes to, so every accepted object has exactly one byte form.
func decodeCanonical(b []byte, v any) error {
	if err := decMode.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	again, err := encMode.Marshal(v)
	if err != nil || !bytes.Equal(again, b) {
		return fmt.Errorf("%w: not the canonical encoding", ErrMalformed)
	}
	return nil
}
