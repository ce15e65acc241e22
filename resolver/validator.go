package resolver

import (
	"errors"
	"fmt"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/gdpnet/gdpnet/pdu"
)

// recordNamespace is the DHT key namespace of location records:
// key = "/gdp/" + the 32 raw bytes of the name.
const recordNamespace = "gdp"

const keyPrefix = "/" + recordNamespace + "/"

// dhtKey is the DHT key under which name's record is stored.
func dhtKey(name pdu.Name) string { return keyPrefix + string(name[:]) }

func nameFromKey(key string) (pdu.Name, error) {
	var n pdu.Name
	if len(key) != len(keyPrefix)+len(n) || key[:len(keyPrefix)] != keyPrefix {
		return n, fmt.Errorf("%w: key %q is not %s<32 bytes>", ErrWrongKey, key, keyPrefix)
	}
	copy(n[:], key[len(keyPrefix):])
	return n, nil
}

// validator is the kad-dht record.Validator for one tier. It sees only a
// key and bytes — never the sender — so it accepts a record only if the
// record proves itself: stored under its own name, signed by its router,
// whole chain valid against the trusted domains, router (or border router)
// in the right domain, not expired.
type validator struct {
	v      *Verifier
	refuse func(reason string) // counts refusals; may be nil
	// parsed remembers records whose bytes parsed and whose own signature
	// verified. Both facts depend on the bytes alone, never on the clock or
	// the trusted domains, so remembering them is sound; the chain, which
	// does depend on the clock, is verified on every Validate.
	parsed *lru.Cache[string, *Record]
}

func newValidator(v *Verifier, refuse func(string)) *validator {
	c, _ := lru.New[string, *Record](4096) // size > 0 never fails
	return &validator{v: v, refuse: refuse, parsed: c}
}

// record parses value (or finds it parsed) and checks it belongs under key.
func (val *validator) record(key string, value []byte) (*Record, error) {
	name, err := nameFromKey(key)
	if err != nil {
		return nil, err
	}
	r, ok := val.parsed.Get(string(value))
	if !ok {
		if r, err = ParseRecord(value); err != nil {
			return nil, err
		}
		val.parsed.Add(string(value), r)
	}
	if r.Name != name {
		return nil, fmt.Errorf("%w: record for %s under key for %s", ErrWrongKey, r.Name, name)
	}
	return r, nil
}

func (val *validator) parse(key string, value []byte) (*Record, time.Time, error) {
	r, err := val.record(key, value)
	if err != nil {
		return nil, time.Time{}, err
	}
	exp, err := val.v.verifyParsed(r)
	if err != nil {
		return nil, time.Time{}, err
	}
	return r, exp, nil
}

// Validate implements record.Validator.
func (val *validator) Validate(key string, value []byte) error {
	_, _, err := val.parse(key, value)
	if err != nil && val.refuse != nil {
		val.refuse(refusalReason(err))
	}
	return err
}

// Select implements record.Validator: the record with the highest
// sequence wins; equal sequences go to the later expiry, then to the
// earlier index. kad-dht validates every value before it selects among
// them (received values, the local copy, a stored record before a put
// replaces it), so Select does not verify the chains' certificate
// signatures again; it does skip values that do not parse, are not signed
// by their router, are of the wrong kind or domain, or have expired.
func (val *validator) Select(key string, values [][]byte) (int, error) {
	best, bestSeq, bestExp := -1, uint64(0), time.Time{}
	for i, b := range values {
		r, err := val.record(key, b)
		if err != nil || !val.v.plausible(r) {
			continue
		}
		exp := r.EffectiveExpiry()
		if best < 0 || r.Sequence > bestSeq || (r.Sequence == bestSeq && exp.After(bestExp)) {
			best, bestSeq, bestExp = i, r.Sequence, exp
		}
	}
	if best < 0 {
		return 0, fmt.Errorf("select: %w: no valid record among %d", ErrBadChain, len(values))
	}
	return best, nil
}

// refusalReason is the metric label for a refused record.
func refusalReason(err error) string {
	for _, c := range []struct {
		err    error
		reason string
	}{
		{ErrWrongKey, "wrong_key"},
		{ErrTooLarge, "too_large"},
		{ErrMalformed, "malformed"},
		{ErrBadSignature, "bad_signature"},
		{ErrWrongKind, "wrong_kind"},
		{ErrNotMember, "not_member"},
		{ErrExpired, "expired"},
		{ErrBadChain, "bad_chain"},
	} {
		if errors.Is(err, c.err) {
			return c.reason
		}
	}
	return "other"
}
