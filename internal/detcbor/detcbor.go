package detcbor

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// ErrNotCanonical: the bytes decode, but are not the deterministic
// encoding of what they decode to.
var ErrNotCanonical = errors.New("not the canonical encoding")

// encMode is built from static options, so it cannot fail.
var encMode = func() cbor.EncMode {
	m, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err) // static options: a programming error
	}
	return m
}()

// Limits bound what one decoded object may hold. A zero field keeps the
// library's default for that bound.
type Limits struct {
	MaxArrayElements int // elements of one array
	MaxMapPairs      int // pairs of one map
	MaxNestedLevels  int // depth of arrays and maps
}

// DecOptions returns the strict decoding options with l applied, for a
// format that needs an option beyond them.
func DecOptions(l Limits) cbor.DecOptions {
	return cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		UTF8:              cbor.UTF8RejectInvalid,
		IntDec:            cbor.IntDecConvertNone,
		MaxArrayElements:  l.MaxArrayElements,
		MaxMapPairs:       l.MaxMapPairs,
		MaxNestedLevels:   l.MaxNestedLevels,
	}
}

// Codec pairs the deterministic encoder with a strict decoder.
type Codec struct {
	dec cbor.DecMode
}

// New returns a Codec whose decoder enforces l. It fails only for limits
// the library refuses (for example a negative or oversized bound).
func New(l Limits) (Codec, error) {
	dec, err := DecOptions(l).DecMode()
	if err != nil {
		return Codec{}, fmt.Errorf("detcbor: limits %+v: %w", l, err)
	}
	return Codec{dec: dec}, nil
}

// Must is New for limits fixed at compile time; it panics on an error,
// which can only be a programming error.
func Must(l Limits) Codec {
	c, err := New(l)
	if err != nil {
		panic(err)
	}
	return c
}

// Marshal encodes v deterministically.
func Marshal(v any) ([]byte, error) { return encMode.Marshal(v) }

// Marshal encodes v deterministically.
func (Codec) Marshal(v any) ([]byte, error) { return encMode.Marshal(v) }

// Unmarshal decodes b into v strictly, without the canonical check: for
// formats that check canonical form themselves, after converting.
func (c Codec) Unmarshal(b []byte, v any) error { return c.dec.Unmarshal(b, v) }

// UnmarshalStrict decodes b into v and refuses, with ErrNotCanonical, any
// encoding other than the one v re-encodes to.
func (c Codec) UnmarshalStrict(b []byte, v any) error {
	if err := c.dec.Unmarshal(b, v); err != nil {
		return err
	}
	again, err := encMode.Marshal(v)
	if err != nil || !bytes.Equal(again, b) {
		return ErrNotCanonical
	}
	return nil
}
