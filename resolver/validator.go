package resolver

import (
	"errors"
	"fmt"

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
// key and bytes — never the sender — so it accepts a value (a record set,
// see ParseSet) only if every entry proves itself: stored under its own
// name, signed by its router, whole chain valid against the trusted
// domains, router (or border router) in the right domain. An entry that
// has expired is ignored (a router that vanished leaves its entry behind
// until the next merge drops it); any other bad entry makes the whole
// value invalid, and so does a value with no unexpired entry.
type validator struct {
	v      *Verifier
	refuse func(reason string) // counts refusals; may be nil
	// parsed remembers values whose bytes parsed and whose entries' own
	// signatures verified. Both facts depend on the bytes alone, never on
	// the clock or the trusted domains, so remembering them is sound; the
	// chains, which do depend on the clock, are verified on every Validate.
	parsed *lru.Cache[string, []*Record]
}

// maxCachedValue bounds the values the parse cache keeps (a few records'
// worth), so the cache holds at most 4,096 × 24 KiB whatever peers send.
const maxCachedValue = 3 * MaxRecordSize

func newValidator(v *Verifier, refuse func(string)) *validator {
	c, _ := lru.New[string, []*Record](4096) // size > 0 never fails
	return &validator{v: v, refuse: refuse, parsed: c}
}

// set parses value (or finds it parsed) and checks it belongs under key.
func (val *validator) set(key string, value []byte) ([]*Record, error) {
	name, err := nameFromKey(key)
	if err != nil {
		return nil, err
	}
	set, ok := val.parsed.Get(string(value))
	if !ok {
		if set, err = ParseSet(value); err != nil {
			return nil, err
		}
		if len(value) <= maxCachedValue {
			val.parsed.Add(string(value), set)
		}
	}
	if set[0].Name != name { // ParseSet checked that all entries share a name
		return nil, fmt.Errorf("%w: record for %s under key for %s", ErrWrongKey, set[0].Name, name)
	}
	return set, nil
}

// parse returns value's entries that are valid now (at least one).
func (val *validator) parse(key string, value []byte) ([]*Record, error) {
	set, err := val.set(key, value)
	if err != nil {
		return nil, err
	}
	valid := make([]*Record, 0, len(set))
	var expired error
	for _, r := range set {
		if _, err := val.v.verifyParsed(r); err != nil {
			if errors.Is(err, ErrExpired) {
				expired = err
				continue
			}
			return nil, err
		}
		valid = append(valid, r)
	}
	if len(valid) == 0 {
		return nil, expired
	}
	return valid, nil
}

// Validate implements record.Validator.
func (val *validator) Validate(key string, value []byte) error {
	_, err := val.parse(key, value)
	if err != nil && val.refuse != nil {
		val.refuse(refusalReason(err))
	}
	return err
}

// Select implements record.Validator for record sets. For each router
// named in any value, the newest entry (sequence, then expiry) among all
// values is the one that counts; a value scores one point per router for
// which it holds that entry. The highest score wins, then the earlier
// index: a set that is the superset-and-newest of the others always wins,
// and of two concurrent updates that each added one router (neither a
// superset), the incoming one (index 0 when a storage node compares a put
// with what it holds) is kept — the publisher whose entry was lost puts it
// back, merged, at its next republish. kad-dht validates every value
// before it selects among them, so Select does not verify certificate
// signatures again; it skips values that do not parse and entries that
// are of the wrong kind or domain or have expired.
func (val *validator) Select(key string, values [][]byte) (int, error) {
	sets := make([][]*Record, len(values))
	newest := map[pdu.Name]*Record{}
	for i, b := range values {
		set, err := val.set(key, b)
		if err != nil {
			continue
		}
		for _, r := range set {
			if !val.v.plausible(r) {
				continue
			}
			sets[i] = append(sets[i], r)
			if old := newest[r.Router()]; old == nil || newer(r, old) {
				newest[r.Router()] = r
			}
		}
	}
	best, bestScore := -1, -1
	for i, set := range sets {
		if len(set) == 0 {
			continue
		}
		score := 0
		for _, r := range set {
			if n := newest[r.Router()]; !newer(n, r) {
				score++
			}
		}
		if score > bestScore {
			best, bestScore = i, score
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
