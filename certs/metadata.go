package certs

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"sort"
	"time"
	"unicode/utf8"
)

// Limits on metadata fields.
const (
	MaxDescription = 1024 // bytes of UTF-8
	MaxExtra       = 16   // extra key/value pairs
	MaxExtraKey    = 64
	MaxExtraValue  = 256
	// maxUnix is 9999-12-31T23:59:59Z, the last second we encode.
	maxUnix = 253402300799
)

// Metadata describes a principal. Its canonical encoding (Marshal) is the
// preimage of the principal's name.
type Metadata struct {
	Kind        Kind
	Key         ed25519.PublicKey // the principal's key; for a capsule, the OWNER key
	WriterKey   ed25519.PublicKey // capsule only: the key that signs records and heartbeats
	Created     time.Time         // second precision (sub-seconds are dropped)
	Nonce       [16]byte          // random: two principals with one key still get two names
	Description string
	// Extra holds optional free-form attributes (e.g. "site": "berlin-1").
	// They are part of the name like everything else.
	Extra map[string]string
}

// Wire keys of the metadata map (docs/PROTOCOL.md §2).
const (
	mkKind    = 1
	mkKey     = 2
	mkWriter  = 3
	mkCreated = 4
	mkNonce   = 5
	mkDesc    = 6
	mkExtra   = 7
)

// metaWire is the decoding shape; field presence rules are enforced by
// re-encoding.
type metaWire struct {
	Kind    uint64            `cbor:"1,keyasint"`
	Key     []byte            `cbor:"2,keyasint"`
	Writer  []byte            `cbor:"3,keyasint,omitempty"`
	Created uint64            `cbor:"4,keyasint"`
	Nonce   []byte            `cbor:"5,keyasint"`
	Desc    string            `cbor:"6,keyasint"`
	Extra   map[string]string `cbor:"7,keyasint,omitempty"`
}

// NewMetadata returns metadata for a principal of kind with public key key,
// created now with a fresh random nonce. For a capsule use NewCapsule.
func NewMetadata(kind Kind, key ed25519.PublicKey, description string) (*Metadata, error) {
	m := &Metadata{Kind: kind, Key: key, Created: time.Now().UTC().Truncate(time.Second), Description: description}
	if _, err := rand.Read(m.Nonce[:]); err != nil {
		return nil, fmt.Errorf("metadata nonce: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// NewCapsule returns the metadata of a new capsule owned by owner whose
// records are signed by writer. The owner key signs AdCerts; keep it apart
// from the writer key so a compromised writer cannot move the capsule.
func NewCapsule(owner ed25519.PrivateKey, writer ed25519.PublicKey, description string) (*Metadata, error) {
	if len(owner) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("new capsule: owner key has %d bytes, want %d", len(owner), ed25519.PrivateKeySize)
	}
	m := &Metadata{Kind: KindCapsule, Key: owner.Public().(ed25519.PublicKey), WriterKey: writer,
		Created: time.Now().UTC().Truncate(time.Second), Description: description}
	if _, err := rand.Read(m.Nonce[:]); err != nil {
		return nil, fmt.Errorf("metadata nonce: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("new capsule: %w", err)
	}
	return m, nil
}

// Validate checks the field rules: a known kind, 32-byte keys, a writer key
// exactly for capsules, a representable creation time, UTF-8 text within
// the limits. The error wraps ErrMalformed.
func (m *Metadata) Validate() error {
	switch {
	case !m.Kind.Valid():
		return fmt.Errorf("metadata: %w: unknown kind %d", ErrMalformed, m.Kind)
	case len(m.Key) != ed25519.PublicKeySize:
		return fmt.Errorf("metadata: %w: key has %d bytes, want %d", ErrMalformed, len(m.Key), ed25519.PublicKeySize)
	case m.Kind == KindCapsule && len(m.WriterKey) != ed25519.PublicKeySize:
		return fmt.Errorf("metadata: %w: capsule writer key has %d bytes, want %d", ErrMalformed, len(m.WriterKey), ed25519.PublicKeySize)
	case m.Kind != KindCapsule && len(m.WriterKey) != 0:
		return fmt.Errorf("metadata: %w: a %s has no writer key", ErrMalformed, m.Kind)
	case m.Created.Unix() < 0 || m.Created.Unix() > maxUnix:
		return fmt.Errorf("metadata: %w: creation time %s out of range", ErrMalformed, m.Created)
	case len(m.Description) > MaxDescription:
		return fmt.Errorf("metadata: %w: description has %d bytes, max %d", ErrMalformed, len(m.Description), MaxDescription)
	case !utf8.ValidString(m.Description):
		return fmt.Errorf("metadata: %w: description is not UTF-8", ErrMalformed)
	case len(m.Extra) > MaxExtra:
		return fmt.Errorf("metadata: %w: %d extra attributes, max %d", ErrMalformed, len(m.Extra), MaxExtra)
	}
	for k, v := range m.Extra {
		if k == "" || len(k) > MaxExtraKey || len(v) > MaxExtraValue || !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Errorf("metadata: %w: extra attribute %q: key 1..%d bytes, value up to %d bytes, UTF-8", ErrMalformed, k, MaxExtraKey, MaxExtraValue)
		}
	}
	return nil
}

// Marshal returns the canonical encoding: a deterministic CBOR map with
// integer keys (docs/PROTOCOL.md §2). It encodes whatever the fields hold;
// ParseMetadata and the Verifier apply Validate.
func (m *Metadata) Marshal() []byte {
	return m.appendTo(make([]byte, 0, 128+len(m.Description)))
}

func (m *Metadata) appendTo(b []byte) []byte {
	n := uint64(5)
	if len(m.WriterKey) > 0 {
		n++
	}
	if len(m.Extra) > 0 {
		n++
	}
	b = appendHead(b, majorMap, n)
	b = appendHead(b, majorUint, mkKind)
	b = appendHead(b, majorUint, uint64(m.Kind))
	b = appendHead(b, majorUint, mkKey)
	b = appendBytes(b, m.Key)
	if len(m.WriterKey) > 0 {
		b = appendHead(b, majorUint, mkWriter)
		b = appendBytes(b, m.WriterKey)
	}
	b = appendHead(b, majorUint, mkCreated)
	b = appendHead(b, majorUint, uint64(m.Created.Unix()))
	b = appendHead(b, majorUint, mkNonce)
	b = appendBytes(b, m.Nonce[:])
	b = appendHead(b, majorUint, mkDesc)
	b = appendText(b, m.Description)
	if len(m.Extra) > 0 {
		b = appendHead(b, majorUint, mkExtra)
		b = appendTextMap(b, m.Extra)
	}
	return b
}

// appendTextMap encodes a text->text map with keys in bytewise order of
// their encodings (RFC 8949 §4.2.1).
func appendTextMap(b []byte, kv map[string]string) []byte {
	type ent struct {
		key []byte
		val string
	}
	es := make([]ent, 0, len(kv))
	for k, v := range kv {
		es = append(es, ent{appendText(nil, k), v})
	}
	sort.Slice(es, func(i, j int) bool { return bytes.Compare(es[i].key, es[j].key) < 0 })
	b = appendHead(b, majorMap, uint64(len(es)))
	for _, e := range es {
		b = append(b, e.key...)
		b = appendText(b, e.val)
	}
	return b
}

// Name returns the principal's name: SHA-256 of Marshal().
func (m *Metadata) Name() Name {
	var buf [256]byte
	return sha256.Sum256(m.appendTo(buf[:0]))
}

// ParseMetadata decodes canonical metadata. It refuses any encoding that is
// not byte-for-byte the canonical one, and metadata that fails Validate.
func ParseMetadata(b []byte) (*Metadata, error) {
	var w metaWire
	if err := decMode.Unmarshal(b, &w); err != nil {
		return nil, malformed("metadata", "%v", err)
	}
	if w.Kind > 0xff || w.Created > maxUnix || len(w.Nonce) != 16 {
		return nil, malformed("metadata", "kind, creation time or nonce out of range")
	}
	m := &Metadata{
		Kind:        Kind(w.Kind),
		Key:         ed25519.PublicKey(w.Key),
		Created:     time.Unix(int64(w.Created), 0).UTC(),
		Description: w.Desc,
		Extra:       w.Extra,
	}
	if w.Writer != nil {
		m.WriterKey = ed25519.PublicKey(w.Writer)
	}
	copy(m.Nonce[:], w.Nonce)
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("parse %w", err)
	}
	if !bytes.Equal(m.Marshal(), b) {
		return nil, malformed("metadata", "not the canonical encoding")
	}
	return m, nil
}

// Equal reports whether a and b encode identically (and so have one name).
func (m *Metadata) Equal(o *Metadata) bool {
	if m == nil || o == nil {
		return m == o
	}
	return bytes.Equal(m.Marshal(), o.Marshal())
}
