package resolver

import (
	"bytes"
	"fmt"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/internal/detcbor"
)

// signContext separates record signatures from every other signature a
// router key makes (certificates, tunnel handshakes).
const signContext = "gdpnet location record v1\x00"

// wireRecord is the CBOR form (PROTOCOL.md §6): a map with small integer
// keys, deterministic encoding (RFC 8949 §4.2.1), optional fields omitted.
type wireRecord struct {
	Kind         uint8    `cbor:"1,keyasint"`
	Name         []byte   `cbor:"2,keyasint"`
	Addrs        []string `cbor:"3,keyasint,omitempty"`
	Chain        []byte   `cbor:"4,keyasint"`
	Sequence     uint64   `cbor:"5,keyasint"`
	Expiry       int64    `cbor:"6,keyasint"`
	Flags        uint64   `cbor:"7,keyasint,omitempty"`
	Border       []byte   `cbor:"8,keyasint,omitempty"`
	BorderMember []byte   `cbor:"9,keyasint,omitempty"`
	Signature    []byte   `cbor:"10,keyasint,omitempty"`
}

const flagWithdrawn = 1

// codec encodes records and border messages deterministically and decodes
// them strictly. ParseRecord checks canonical form itself, after rebuilding
// the record, so it uses the plain strict Unmarshal.
var codec = detcbor.Must(detcbor.Limits{
	MaxArrayElements: 64,
	MaxMapPairs:      64,
	MaxNestedLevels:  4,
})

func (r *Record) wire(withSig bool) wireRecord {
	w := wireRecord{
		Kind:     uint8(r.Kind),
		Name:     r.Name[:],
		Addrs:    r.Addrs,
		Sequence: r.Sequence,
		Expiry:   r.Expiry.Unix(),
	}
	if r.Chain != nil {
		w.Chain = r.Chain.Marshal()
	}
	if r.Withdrawn {
		w.Flags |= flagWithdrawn
	}
	if r.Border != nil {
		w.Border = r.Border.Marshal()
	}
	if r.BorderMember != nil {
		w.BorderMember = r.BorderMember.Marshal()
	}
	if withSig {
		w.Signature = r.Signature
	}
	return w
}

// signedBytes is what the signature covers: the context string, then the
// record's encoding without key 10.
func (r *Record) signedBytes() ([]byte, error) {
	b, err := codec.Marshal(r.wire(false))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return append([]byte(signContext), b...), nil
}

func (r *Record) encode() ([]byte, error) {
	b, err := codec.Marshal(r.wire(true))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return b, nil
}

// Marshal returns the signed encoding. It fails on an unsigned record.
func (r *Record) Marshal() ([]byte, error) {
	if r.raw == nil {
		return nil, fmt.Errorf("marshal record for %s: %w: not signed", r.Name, ErrMalformed)
	}
	return bytes.Clone(r.raw), nil
}

// ParseRecord decodes a record strictly: size bound, canonical CBOR only
// (re-encoding must give the same bytes), no unknown keys, well-formed
// chain, and a signature by the signer's key. It does not check the chain
// against trusted domains or the clock; Verifier.Verify does.
func ParseRecord(b []byte) (*Record, error) {
	if len(b) > MaxRecordSize {
		return nil, fmt.Errorf("parse record: %w: %d bytes > %d", ErrTooLarge, len(b), MaxRecordSize)
	}
	var w wireRecord
	if err := codec.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("parse record: %w: %v", ErrMalformed, err)
	}
	if len(w.Name) != len(certs.Name{}) {
		return nil, fmt.Errorf("parse record: %w: name of %d bytes", ErrMalformed, len(w.Name))
	}
	if w.Flags&^flagWithdrawn != 0 {
		return nil, fmt.Errorf("parse record: %w: unknown flags %#x", ErrMalformed, w.Flags)
	}
	r := &Record{
		Kind:      Kind(w.Kind),
		Addrs:     w.Addrs,
		Sequence:  w.Sequence,
		Expiry:    time.Unix(w.Expiry, 0).UTC(),
		Withdrawn: w.Flags&flagWithdrawn != 0,
		Signature: w.Signature,
	}
	copy(r.Name[:], w.Name)
	var err error
	if r.Chain, err = certs.ParseChain(w.Chain); err != nil {
		return nil, fmt.Errorf("parse record for %s: %w: chain: %w", r.Name, ErrMalformed, err)
	}
	if w.Border != nil {
		if r.Border, err = certs.ParseMetadata(w.Border); err != nil {
			return nil, fmt.Errorf("parse record for %s: %w: border metadata: %w", r.Name, ErrMalformed, err)
		}
	}
	if w.BorderMember != nil {
		if r.BorderMember, err = certs.ParseCert(w.BorderMember); err != nil {
			return nil, fmt.Errorf("parse record for %s: %w: border membership: %w", r.Name, ErrMalformed, err)
		}
	}
	if err := r.checkShape(); err != nil {
		return nil, fmt.Errorf("parse record for %s: %w", r.Name, err)
	}
	raw, err := r.encode()
	if err != nil {
		return nil, fmt.Errorf("parse record for %s: %w", r.Name, err)
	}
	if !bytes.Equal(raw, b) {
		return nil, fmt.Errorf("parse record for %s: %w: not in canonical encoding", r.Name, ErrMalformed)
	}
	if err := r.checkSignature(); err != nil {
		return nil, fmt.Errorf("parse record for %s: %w", r.Name, err)
	}
	r.raw = raw
	return r, nil
}
