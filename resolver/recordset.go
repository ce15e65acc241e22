package resolver

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/gdpnet/gdpnet/pdu"
)

// A name held by several routers (replicas of a capsule attached to
// different routers) has one record per router. In the DHT the value
// stored under the name's key is a record set (PROTOCOL.md §6.7): a CBOR
// array of 1..MaxSetEntries byte strings, each the exact signed encoding
// of one record (§6.1–6.6), every record for the same name, at most one
// per router, sorted by router name. The set itself carries no signature:
// each entry is self-certifying and is verified on its own. A value that
// is a single record (a CBOR map, what nodes before record sets stored)
// reads as a set of one.

// Limits of a record set.
const (
	MaxSetEntries = 16
	MaxSetSize    = MaxSetEntries*MaxRecordSize + 64
)

// ParseSet decodes a DHT value: a record set, or a single record. Every
// entry is parsed strictly (ParseRecord: canonical, signed by its router);
// entries must share one name and kind, be sorted by router with no router
// twice, and the array must be canonical. It does not check chains or the
// clock.
func ParseSet(b []byte) ([]*Record, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("parse record set: %w: empty", ErrMalformed)
	}
	if b[0]>>5 == 5 { // a CBOR map: one record, the format before sets
		r, err := ParseRecord(b)
		if err != nil {
			return nil, err
		}
		return []*Record{r}, nil
	}
	if len(b) > MaxSetSize {
		return nil, fmt.Errorf("parse record set: %w: %d bytes > %d", ErrTooLarge, len(b), MaxSetSize)
	}
	var raws [][]byte
	if err := codec.Unmarshal(b, &raws); err != nil {
		return nil, fmt.Errorf("parse record set: %w: %v", ErrMalformed, err)
	}
	if len(raws) == 0 || len(raws) > MaxSetEntries {
		return nil, fmt.Errorf("parse record set: %w: %d entries, want 1..%d", ErrMalformed, len(raws), MaxSetEntries)
	}
	out := make([]*Record, 0, len(raws))
	for i, raw := range raws {
		r, err := ParseRecord(raw)
		if err != nil {
			return nil, fmt.Errorf("parse record set entry %d: %w", i, err)
		}
		if i > 0 {
			prev := out[i-1]
			if r.Name != prev.Name || r.Kind != prev.Kind {
				return nil, fmt.Errorf("parse record set: %w: entries for different names or kinds", ErrMalformed)
			}
			if pr, rr := prev.Router(), r.Router(); bytes.Compare(pr[:], rr[:]) >= 0 {
				return nil, fmt.Errorf("parse record set: %w: entries not sorted by router, or a router twice", ErrMalformed)
			}
		}
		out = append(out, r)
	}
	enc, err := MarshalSet(out)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(enc, b) {
		return nil, fmt.Errorf("parse record set: %w: not in canonical encoding", ErrMalformed)
	}
	return out, nil
}

// MarshalSet encodes signed records (one per router, any order) as a
// record set, sorted by router.
func MarshalSet(recs []*Record) ([]byte, error) {
	if len(recs) == 0 || len(recs) > MaxSetEntries {
		return nil, fmt.Errorf("marshal record set: %w: %d entries, want 1..%d", ErrMalformed, len(recs), MaxSetEntries)
	}
	sorted := slices.Clone(recs)
	sortByRouter(sorted)
	raws := make([][]byte, len(sorted))
	for i, r := range sorted {
		if r.raw == nil {
			return nil, fmt.Errorf("marshal record set: %w: entry for %s not signed", ErrMalformed, r.Router())
		}
		if i > 0 && sorted[i-1].Router() == r.Router() {
			return nil, fmt.Errorf("marshal record set: %w: router %s twice", ErrMalformed, r.Router())
		}
		raws[i] = r.raw
	}
	b, err := codec.Marshal(raws)
	if err != nil {
		return nil, fmt.Errorf("marshal record set: %w: %v", ErrMalformed, err)
	}
	if len(b) > MaxSetSize {
		return nil, fmt.Errorf("marshal record set: %w: %d bytes > %d", ErrTooLarge, len(b), MaxSetSize)
	}
	return b, nil
}

func sortByRouter(recs []*Record) {
	slices.SortFunc(recs, func(a, b *Record) int {
		ar, br := a.Router(), b.Router()
		return bytes.Compare(ar[:], br[:])
	})
}

// newer reports whether a beats b as the record of one router: higher
// sequence, then later expiry.
func newer(a, b *Record) bool {
	if a.Sequence != b.Sequence {
		return a.Sequence > b.Sequence
	}
	return a.EffectiveExpiry().After(b.EffectiveExpiry())
}

// mergeSets keeps, per router, the newest record among sets, drops records
// that have expired at now, and bounds the result to MaxSetEntries (live
// records first, newest first; tombstones fill what is left). The result
// is sorted by router.
func mergeSets(now time.Time, sets ...[]*Record) []*Record {
	best := map[pdu.Name]*Record{}
	for _, set := range sets {
		for _, r := range set {
			if r == nil || !now.Before(r.EffectiveExpiry()) {
				continue
			}
			if old := best[r.Router()]; old == nil || newer(r, old) {
				best[r.Router()] = r
			}
		}
	}
	out := make([]*Record, 0, len(best))
	for _, r := range best {
		out = append(out, r)
	}
	if len(out) > MaxSetEntries {
		slices.SortFunc(out, func(a, b *Record) int {
			if a.Withdrawn != b.Withdrawn {
				if a.Withdrawn {
					return 1
				}
				return -1
			}
			if newer(a, b) {
				return -1
			}
			if newer(b, a) {
				return 1
			}
			return 0
		})
		out = out[:MaxSetEntries]
	}
	sortByRouter(out)
	return out
}

// liveNewestFirst returns the records of set that are not tombstones and
// have not expired at now, newest first (ties: by router, for a stable
// order).
func liveNewestFirst(now time.Time, set []*Record) []*Record {
	var out []*Record
	for _, r := range set {
		if !r.Withdrawn && now.Before(r.EffectiveExpiry()) {
			out = append(out, r)
		}
	}
	slices.SortStableFunc(out, func(a, b *Record) int {
		switch {
		case a.Sequence > b.Sequence:
			return -1
		case a.Sequence < b.Sequence:
			return 1
		}
		return 0
	})
	return out
}
