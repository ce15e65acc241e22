package wire

import (
	"errors"
	"fmt"

	"github.com/gdpnet/gdpnet/internal/detcbor"
	"github.com/gdpnet/gdpnet/pdu"
)

// Limits of one message.
const (
	// MaxMessage is the largest encoded message: a PDU payload.
	MaxMessage = pdu.MaxPayload
	// MaxRecords bounds the records of one message (and of one segment).
	MaxRecords = 4096
	// MaxSegments bounds the segments of one SYNC answer.
	MaxSegments = 1024
	// MaxReplicas bounds a placement.
	MaxReplicas = 16
	// Budget is how many bytes of records and heartbeats a sender puts in
	// one message: MaxMessage less room for the envelope, a proof of up to
	// 64 hashes and a consistency proof.
	Budget = MaxMessage - 6*1024
	// MaxRecordData is the largest record data a server accepts by
	// default: one record with its heartbeat always fits one APPEND.
	MaxRecordData = 56000
)

// ErrMalformed: the bytes are not one canonical message.
var ErrMalformed = errors.New("malformed capsule message")

// ErrTooLarge: the message exceeds MaxMessage.
var ErrTooLarge = errors.New("capsule message too large")

// codec encodes deterministically and decodes strictly within the limits
// of one message.
var codec = detcbor.Must(detcbor.Limits{
	MaxArrayElements: MaxRecords + MaxSegments,
	MaxMapPairs:      32,
	MaxNestedLevels:  6,
})

// Marshal encodes m canonically. It fails for an invalid message or one
// longer than MaxMessage.
func (m *Message) Marshal() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b, err := codec.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(b) > MaxMessage {
		return nil, fmt.Errorf("%s message of %d bytes: %w (max %d)", m.Op, len(b), ErrTooLarge, MaxMessage)
	}
	return b, nil
}

// Unmarshal decodes one canonical message and validates its fields.
func Unmarshal(b []byte) (*Message, error) {
	if len(b) > MaxMessage {
		return nil, fmt.Errorf("message of %d bytes: %w", len(b), ErrTooLarge)
	}
	m := new(Message)
	if err := codec.UnmarshalStrict(b, m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// Validate checks the field shapes every operation shares: a known op,
// 32-byte names and hashes, bounded lists. Records, heartbeats, proofs and
// certificates are decoded and verified by their own packages.
func (m *Message) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrMalformed, m.Op, fmt.Sprintf(format, a...))
	}
	switch {
	case !m.Op.Valid():
		return bad("unknown operation")
	case m.Capsule != nil && len(m.Capsule) != 32:
		return bad("capsule name of %d bytes", len(m.Capsule))
	case m.Hash != nil && len(m.Hash) != 32:
		return bad("hash of %d bytes", len(m.Hash))
	case len(m.Records) > MaxRecords:
		return bad("%d records (max %d)", len(m.Records), MaxRecords)
	case len(m.Segments) > MaxSegments:
		return bad("%d segments (max %d)", len(m.Segments), MaxSegments)
	case len(m.Replicas) > MaxReplicas:
		return bad("%d replicas (max %d)", len(m.Replicas), MaxReplicas)
	case m.Status != 0 && (m.Status < 100 || m.Status > 599):
		return bad("status %d", m.Status)
	case m.Time > 1<<63-1:
		return bad("time out of range")
	case len(m.Error) > 1024:
		return bad("error text of %d bytes", len(m.Error))
	case m.Signature != nil && len(m.Signature) != 64:
		return bad("signature of %d bytes", len(m.Signature))
	case m.Possession != nil && len(m.Possession) != PossessionLen:
		return bad("possession tag of %d bytes", len(m.Possession))
	}
	for i, r := range m.Replicas {
		if len(r) != 32 {
			return bad("replica %d of %d bytes", i, len(r))
		}
	}
	if m.W > uint64(max(len(m.Replicas), MaxReplicas)) {
		return bad("w %d above the replica count", m.W)
	}
	if len(m.Frontier) > 64 {
		return bad("frontier of %d hashes", len(m.Frontier))
	}
	for i, h := range m.Frontier {
		if len(h) != 32 {
			return bad("frontier hash %d of %d bytes", i, len(h))
		}
	}
	for i, s := range m.Segments {
		if len(s.Records) > MaxRecords {
			return bad("segment %d: %d records", i, len(s.Records))
		}
		if len(s.Heartbeat) == 0 {
			return bad("segment %d without a heartbeat", i)
		}
	}
	if m.Status == 0 && m.Op != OpEvent && m.Op != OpCreate && len(m.Capsule) == 0 && m.Op != OpUnsubscribe {
		return bad("request without a capsule")
	}
	return nil
}
