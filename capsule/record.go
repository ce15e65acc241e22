package capsule

import (
	"crypto/sha256"
	"fmt"

	"github.com/gdpnet/gdpnet/pdu"
)

// DefaultMaxData is the default bound on one record's data (64 KiB).
const DefaultMaxData = 64 << 10

// MaxDataLimit is the hard bound the decoder enforces whatever the
// configuration (16 MiB): no length field can make it allocate more.
const MaxDataLimit = 16 << 20

// Record is one entry of a capsule: either a data record or a hole the writer
// declared. Seqnos start at 1; record n is Merkle leaf n-1.
//
// A data record's hash is SHA-256 of its header (every field but Data, which
// the header binds through DataHash). A hole's hash is SHA-256 of its
// encoding {capsule, seqno, prev}. Prev is the hash of entry seqno-1, all
// zeros for seqno 1, so the chain runs through holes too.
type Record struct {
	Capsule  pdu.Name
	Seqno    uint64
	Hole     bool
	Time     int64 // unix nanoseconds, >= 0; 0 for a hole
	Prev     Hash
	DataHash Hash // SHA-256(Data); zero for a hole
	Data     []byte
}

// NewRecord builds a data record, filling in DataHash.
func NewRecord(capsule pdu.Name, seqno uint64, t int64, prev Hash, data []byte) Record {
	return Record{Capsule: capsule, Seqno: seqno, Time: t, Prev: prev, DataHash: sha256.Sum256(data), Data: data}
}

// NewHole builds the entry for a declared hole at seqno.
func NewHole(capsule pdu.Name, seqno uint64, prev Hash) Record {
	return Record{Capsule: capsule, Seqno: seqno, Hole: true, Prev: prev}
}

// Record map keys (docs/PROTOCOL.md §7.1).
const (
	keyCapsule  = 1
	keySeqno    = 2
	keyTime     = 3
	keyPrev     = 4
	keyDataHash = 5
	keyData     = 6
)

// appendHeaderFields appends the map entries shared by header and wire form.
func (r Record) appendHeaderFields(b []byte) []byte {
	b = appendHead(b, majUint, keyCapsule)
	b = appendHead(b, majBytes, HashLen)
	b = append(b, r.Capsule[:]...)
	b = appendHead(b, majUint, keySeqno)
	b = appendHead(b, majUint, r.Seqno)
	if !r.Hole {
		b = appendHead(b, majUint, keyTime)
		b = appendHead(b, majUint, uint64(r.Time))
	}
	b = appendHead(b, majUint, keyPrev)
	b = appendHead(b, majBytes, HashLen)
	b = append(b, r.Prev[:]...)
	if !r.Hole {
		b = appendHead(b, majUint, keyDataHash)
		b = appendHead(b, majBytes, HashLen)
		b = append(b, r.DataHash[:]...)
	}
	return b
}

// AppendHeader appends the hashed header: for a data record the 5-entry map
// {1 capsule, 2 seqno, 3 time, 4 prev, 5 data hash}; for a hole the 3-entry
// map {1 capsule, 2 seqno, 4 prev}.
func (r Record) AppendHeader(b []byte) []byte {
	if r.Hole {
		b = appendHead(b, majMap, 3)
	} else {
		b = appendHead(b, majMap, 5)
	}
	return r.appendHeaderFields(b)
}

// Hash returns the entry hash: SHA-256 of the header encoding.
func (r Record) Hash() Hash {
	var buf [160]byte
	return sha256.Sum256(r.AppendHeader(buf[:0]))
}

// Append appends the wire form: the header map plus key 6 = data for a data
// record (a 6-entry map), or the 3-entry hole map.
func (r Record) Append(b []byte) []byte {
	if r.Hole {
		return r.AppendHeader(b)
	}
	b = appendHead(b, majMap, 6)
	b = r.appendHeaderFields(b)
	b = appendHead(b, majUint, keyData)
	b = appendHead(b, majBytes, uint64(len(r.Data)))
	return append(b, r.Data...)
}

// Marshal returns the wire form.
func (r Record) Marshal() []byte { return r.Append(make([]byte, 0, 160+len(r.Data))) }

// EncodedLen is the length of the wire form.
func (r Record) EncodedLen() int {
	n := len(r.AppendHeader(make([]byte, 0, 160)))
	if !r.Hole {
		n += 1 + len(appendHead(nil, majBytes, uint64(len(r.Data)))) + len(r.Data)
	}
	return n
}

// UnmarshalRecord decodes a wire-form record or hole. It accepts only the
// canonical encoding (so decode then encode gives the same bytes) and data up
// to MaxDataLimit; r.Data aliases b. It checks structure only: use Verify
// to check the data hash.
func UnmarshalRecord(b []byte) (Record, error) {
	var r Record
	maj, n, off, err := readHead(b, 0)
	if err != nil {
		return Record{}, fmt.Errorf("record: %w", err)
	}
	if maj != majMap || (n != 3 && n != 6) {
		return Record{}, fmt.Errorf("record: %w: want a map of 3 (hole) or 6 (record) entries", ErrMalformed)
	}
	r.Hole = n == 3
	if off, err = expectKey(b, off, keyCapsule); err != nil {
		return Record{}, fmt.Errorf("record: %w", err)
	}
	if off, err = readHash(b, off, (*[HashLen]byte)(&r.Capsule)); err != nil {
		return Record{}, fmt.Errorf("record capsule: %w", err)
	}
	if off, err = expectKey(b, off, keySeqno); err != nil {
		return Record{}, fmt.Errorf("record: %w", err)
	}
	if r.Seqno, off, err = readUint(b, off); err != nil {
		return Record{}, fmt.Errorf("record seqno: %w", err)
	}
	if r.Seqno == 0 {
		return Record{}, fmt.Errorf("record: %w: seqno 0 (seqnos start at 1)", ErrMalformed)
	}
	if !r.Hole {
		if off, err = expectKey(b, off, keyTime); err != nil {
			return Record{}, fmt.Errorf("record: %w", err)
		}
		var t uint64
		if t, off, err = readUint(b, off); err != nil {
			return Record{}, fmt.Errorf("record time: %w", err)
		}
		if t > 1<<63-1 {
			return Record{}, fmt.Errorf("record time: %w: out of range", ErrMalformed)
		}
		r.Time = int64(t)
	}
	if off, err = expectKey(b, off, keyPrev); err != nil {
		return Record{}, fmt.Errorf("record: %w", err)
	}
	if off, err = readHash(b, off, (*[HashLen]byte)(&r.Prev)); err != nil {
		return Record{}, fmt.Errorf("record prev: %w", err)
	}
	if !r.Hole {
		if off, err = expectKey(b, off, keyDataHash); err != nil {
			return Record{}, fmt.Errorf("record: %w", err)
		}
		if off, err = readHash(b, off, (*[HashLen]byte)(&r.DataHash)); err != nil {
			return Record{}, fmt.Errorf("record data hash: %w", err)
		}
		if off, err = expectKey(b, off, keyData); err != nil {
			return Record{}, fmt.Errorf("record: %w", err)
		}
		if r.Data, off, err = readBytes(b, off, MaxDataLimit); err != nil {
			return Record{}, fmt.Errorf("record data: %w", err)
		}
	}
	if off != len(b) {
		return Record{}, fmt.Errorf("record: %w: %d trailing bytes", ErrMalformed, len(b)-off)
	}
	return r, nil
}

// Verify checks what a record can check about itself: a data record's data
// hashes to DataHash and fits maxData (0 means DefaultMaxData); a hole
// carries no time or data. It returns the entry hash.
func (r Record) Verify(maxData int) (Hash, error) {
	if maxData <= 0 {
		maxData = DefaultMaxData
	}
	if r.Seqno == 0 {
		return Hash{}, fmt.Errorf("record: %w: seqno 0", ErrMalformed)
	}
	if r.Hole {
		if r.Time != 0 || !r.DataHash.IsZero() || len(r.Data) != 0 {
			return Hash{}, fmt.Errorf("hole %d: %w: carries time or data", r.Seqno, ErrMalformed)
		}
		return r.Hash(), nil
	}
	if r.Time < 0 {
		return Hash{}, fmt.Errorf("record %d: %w: negative time", r.Seqno, ErrMalformed)
	}
	if len(r.Data) > maxData {
		return Hash{}, fmt.Errorf("record %d: %w: %d bytes of data, limit %d", r.Seqno, ErrTooLarge, len(r.Data), maxData)
	}
	if Hash(sha256.Sum256(r.Data)) != r.DataHash {
		return Hash{}, fmt.Errorf("record %d: %w", r.Seqno, ErrBadDataHash)
	}
	return r.Hash(), nil
}
