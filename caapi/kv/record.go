package kv

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"

	"github.com/gdpnet/gdpnet/internal/detcbor"
)

// Record kinds (docs/PROTOCOL.md §10).
const (
	OpPut        = 1
	OpDelete     = 2
	OpCheckpoint = 3
)

// Limits of one record. The capsule bounds a record's data (56,000 bytes on
// the wire, capsuled/wire.MaxRecordData); a put's key and value share it.
const (
	// MaxKey bounds a key (bytes).
	MaxKey = 1024
	// MaxValue bounds a value: what is left of a record's data after the
	// largest key and the map's framing.
	MaxValue = 56000 - MaxKey - 64
	// maxPartBytes bounds the entries of one checkpoint record.
	maxPartBytes = 48 << 10
	// maxPartEntries bounds the entries of one checkpoint record.
	maxPartEntries = 4096
)

// Errors callers branch on.
var (
	// ErrNotFound: the key has no value at the point asked (never written,
	// or deleted).
	ErrNotFound = errors.New("kv: key not found")
	// ErrMalformed: a record that is not a canonical KV record.
	ErrMalformed = errors.New("kv: malformed record")
	// ErrBadCheckpoint: a checkpoint whose entries do not match its digest
	// or the state the log before it leads to.
	ErrBadCheckpoint = errors.New("kv: checkpoint does not match the log")
	// ErrNotIndexed: the point asked lies outside what the index holds
	// (beyond its head, or before the checkpoint it started from).
	ErrNotIndexed = errors.New("kv: not in the local index")
	// ErrTooLarge: a key or value over its limit.
	ErrTooLarge = errors.New("kv: too large")
	// ErrChain: a page that does not continue the hash chain the index holds.
	ErrChain = errors.New("kv: page does not continue the indexed log")
)

var codec = detcbor.Must(detcbor.Limits{MaxArrayElements: maxPartEntries, MaxMapPairs: 16, MaxNestedLevels: 4})

// Op is one decoded KV record.
type Op struct {
	Kind  uint64 `cbor:"1,keyasint"`
	Key   []byte `cbor:"2,keyasint,omitempty"`
	Value []byte `cbor:"3,keyasint,omitempty"`
	// Ckpt is the seqno of the first record of the newest complete
	// checkpoint before this record (0: none).
	Ckpt uint64 `cbor:"4,keyasint,omitempty"`
	// The checkpoint fields: the state as of seqno Base (whose record time
	// is BaseTime), part Part of Parts, the digest of the whole state
	// (StateDigest) and this part's entries in key order.
	Base     uint64  `cbor:"5,keyasint,omitempty"`
	BaseTime uint64  `cbor:"6,keyasint,omitempty"`
	Part     uint64  `cbor:"7,keyasint,omitempty"`
	Parts    uint64  `cbor:"8,keyasint,omitempty"`
	Digest   []byte  `cbor:"9,keyasint,omitempty"`
	Entries  []Entry `cbor:"10,keyasint,omitempty"`
}

// Entry is one live key in a checkpoint: its value and the seqno and time
// of the put that set it.
type Entry struct {
	_     struct{} `cbor:",toarray"`
	Key   []byte
	Value []byte
	Seqno uint64
	Time  uint64
}

// Marshal encodes the op canonically.
func (o *Op) Marshal() ([]byte, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	b, err := codec.Marshal(o)
	if err != nil {
		return nil, fmt.Errorf("kv record: %w", err)
	}
	return b, nil
}

// UnmarshalOp decodes a record's data: the canonical encoding only, with
// the fields its kind needs and no others.
func UnmarshalOp(b []byte) (*Op, error) {
	var o Op
	if err := codec.UnmarshalStrict(b, &o); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	return &o, nil
}

func (o *Op) check() error {
	switch o.Kind {
	case OpPut, OpDelete:
		if len(o.Key) == 0 {
			return fmt.Errorf("%w: empty key", ErrMalformed)
		}
		if len(o.Key) > MaxKey {
			return fmt.Errorf("%w: key of %d bytes (max %d)", ErrTooLarge, len(o.Key), MaxKey)
		}
		if len(o.Value) > MaxValue {
			return fmt.Errorf("%w: value of %d bytes (max %d)", ErrTooLarge, len(o.Value), MaxValue)
		}
		if o.Kind == OpDelete && len(o.Value) > 0 {
			return fmt.Errorf("%w: a delete carries a value", ErrMalformed)
		}
		if o.Base != 0 || o.BaseTime != 0 || o.Part != 0 || o.Parts != 0 || o.Digest != nil || o.Entries != nil {
			return fmt.Errorf("%w: a put or delete carries checkpoint fields", ErrMalformed)
		}
	case OpCheckpoint:
		if o.Key != nil || o.Value != nil {
			return fmt.Errorf("%w: a checkpoint carries a key or value", ErrMalformed)
		}
		if o.Parts == 0 || o.Part >= o.Parts || len(o.Digest) != sha256.Size {
			return fmt.Errorf("%w: checkpoint part %d of %d, digest of %d bytes", ErrMalformed, o.Part, o.Parts, len(o.Digest))
		}
		if o.Ckpt >= o.Base+1 && o.Ckpt != 0 {
			return fmt.Errorf("%w: checkpoint at %d names a later checkpoint %d", ErrMalformed, o.Base, o.Ckpt)
		}
		for i, e := range o.Entries {
			if len(e.Key) > MaxKey || len(e.Value) > MaxValue || e.Seqno == 0 || e.Seqno > o.Base || e.Time > o.BaseTime || o.BaseTime > 1<<63-1 {
				return fmt.Errorf("%w: checkpoint entry %d out of range", ErrMalformed, i)
			}
			if i > 0 && string(o.Entries[i-1].Key) >= string(e.Key) {
				return fmt.Errorf("%w: checkpoint entries not in key order", ErrMalformed)
			}
		}
	default:
		return fmt.Errorf("%w: kind %d", ErrMalformed, o.Kind)
	}
	return nil
}

// stateDigestPrefix separates the state digest from every other hash.
const stateDigestPrefix = "gdpnet kv state v1\x00"

// digester computes the digest of a state: SHA-256 over the prefix and, for
// each live key in byte order, the CBOR array [key, value, seqno, time].
type digester struct {
	s   hash.Hash
	buf []byte
}

func newDigester() *digester {
	d := &digester{s: sha256.New()}
	_, _ = d.s.Write([]byte(stateDigestPrefix))
	return d
}

func (d *digester) add(key, value []byte, seqno uint64, t int64) {
	b := d.buf[:0]
	b = detcbor.AppendHead(b, 4, 4)
	b = detcbor.AppendHead(b, 2, uint64(len(key)))
	b = append(b, key...)
	b = detcbor.AppendHead(b, 2, uint64(len(value)))
	b = append(b, value...)
	b = detcbor.AppendHead(b, 0, seqno)
	b = detcbor.AppendHead(b, 0, uint64(t))
	_, _ = d.s.Write(b)
	d.buf = b
}

func (d *digester) sum() []byte { return d.s.Sum(nil) }

func (d *digester) clone() *digester {
	c, err := d.s.(hash.Cloner).Clone()
	if err != nil {
		panic(err) // SHA-256 always clones
	}
	return &digester{s: c}
}
