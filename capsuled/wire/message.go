package wire

import (
	"encoding/binary"
	"fmt"

	"github.com/gdpnet/gdpnet/pdu"
)

// Op says what a message asks for or answers.
type Op uint8

// Operations (docs/PROTOCOL.md §8.2).
const (
	OpCreate      Op = 1  // place a capsule on a server
	OpAppend      Op = 2  // store a batch of records and one heartbeat
	OpRead        Op = 3  // entries by seqno range, time or hash, with a proof
	OpSubscribe   Op = 4  // push new entries and heartbeats from a seqno on
	OpUnsubscribe Op = 5  // end a subscription
	OpMetadata    Op = 6  // capsule metadata, placement and head heartbeat
	OpProof       Op = 7  // an inclusion or consistency proof
	OpEvent       Op = 8  // a subscription push (server to subscriber)
	OpSync        Op = 9  // replica catch-up: whole writer batches with their heartbeats
	OpDelete      Op = 10 // remove a placement and its data (owner-signed)
)

var opNames = [...]string{"", "CREATE", "APPEND", "READ", "SUBSCRIBE", "UNSUBSCRIBE", "METADATA", "PROOF", "EVENT", "SYNC", "DELETE"}

func (o Op) String() string {
	if int(o) < len(opNames) && o != 0 {
		return opNames[o]
	}
	return fmt.Sprintf("OP(%d)", uint8(o))
}

// Valid reports whether o is a known operation.
func (o Op) Valid() bool { return o >= OpCreate && o <= OpDelete }

// Message is every capsule command, response and push. Which fields an
// operation uses is listed in docs/PROTOCOL.md §8.3; unused ones stay zero
// and are not encoded. A message with Status 0 is a request (or, for
// OpEvent, a push); a non-zero Status makes it a response.
type Message struct {
	Op     Op     `cbor:"1,keyasint"`
	ID     uint64 `cbor:"2,keyasint"`
	Status Status `cbor:"3,keyasint,omitempty"`
	// Capsule is the capsule's 32-byte name.
	Capsule []byte `cbor:"4,keyasint,omitempty"`
	// Error is a human-readable reason on a failure status.
	Error string `cbor:"5,keyasint,omitempty"`
	// Records are entries in wire form (capsule.Record.Marshal), ascending.
	Records [][]byte `cbor:"6,keyasint,omitempty"`
	// Heartbeat is a COSE_Sign1 heartbeat (capsule.Heartbeat.Marshal).
	Heartbeat []byte `cbor:"7,keyasint,omitempty"`
	// From and To bound a seqno range (inclusive).
	From uint64 `cbor:"8,keyasint,omitempty"`
	To   uint64 `cbor:"9,keyasint,omitempty"`
	// Time selects the first record at or after it (unix nanoseconds).
	Time uint64 `cbor:"10,keyasint,omitempty"`
	// Hash selects an entry by its 32-byte entry hash. In a SYNC request
	// it is the asker's fresh random challenge (Nonce) for the answer's
	// Possession tag: a key every replica's decoder knows, so an older one
	// ignores it rather than refuse the request (§8.3).
	Hash []byte `cbor:"11,keyasint,omitempty"`
	// Size is a tree size: the newest heartbeat a reader holds, or the
	// new size of a consistency proof.
	Size uint64 `cbor:"12,keyasint,omitempty"`
	// Proof is an inclusion proof (capsule.InclusionProof.Marshal). In a
	// CREATE request (Session 14) it is the requester's proof of its
	// identity and domain instead (Requester.Marshal): a key every
	// version's decoder knows and no older server reads in a CREATE.
	Proof []byte `cbor:"13,keyasint,omitempty"`
	// Consistency is a consistency proof (capsule.ConsistencyProof.Marshal).
	Consistency []byte `cbor:"14,keyasint,omitempty"`
	// Metadata is the capsule's canonical metadata (certs.Metadata.Marshal).
	Metadata []byte `cbor:"15,keyasint,omitempty"`
	// AdCert is the owner's AdCert for the server (certs.Cert.Marshal).
	AdCert []byte `cbor:"16,keyasint,omitempty"`
	// Replicas are the 32-byte names of the servers holding the capsule.
	Replicas [][]byte `cbor:"17,keyasint,omitempty"`
	// W is how many replicas must hold a record before the writer calls it
	// durable.
	W uint64 `cbor:"18,keyasint,omitempty"`
	// Head is the server's durable head seqno.
	Head uint64 `cbor:"19,keyasint,omitempty"`
	// More says a paginated answer continues after its last entry.
	More bool `cbor:"20,keyasint,omitempty"`
	// Segments are whole writer batches, each ending at its heartbeat.
	Segments []Segment `cbor:"21,keyasint,omitempty"`
	// Evidence is equivocation evidence (capsule.Evidence.Marshal).
	Evidence []byte `cbor:"22,keyasint,omitempty"`
	// Lease is a subscription's lifetime in milliseconds.
	Lease uint64 `cbor:"23,keyasint,omitempty"`
	// Limit caps the entries one answer carries. In a SYNC with a nonce
	// (Hash) it is the count of entries the possession tag is to sample
	// (PossessionSamples), and in the answer the count its tag sampled;
	// absent, the one-entry tag (PossessionTag). Key 24 because every
	// version's decoder knows it: an older answerer ignores it in a SYNC
	// (a new key would have it refuse the request as malformed, §8.1).
	Limit uint64 `cbor:"24,keyasint,omitempty"`
	// Frontier is the head's Merkle frontier (complete-subtree roots,
	// largest first): what a writer that lost its state resumes from.
	Frontier [][]byte `cbor:"25,keyasint,omitempty"`
	// Placement is the owner-signed placement record
	// (capsule.Placement.Marshal): on CREATE, and on a METADATA answer.
	Placement []byte `cbor:"26,keyasint,omitempty"`
	// Receipt is the server's signed durability receipt
	// (capsule.Receipt.Marshal) on a successful APPEND answer.
	Receipt []byte `cbor:"27,keyasint,omitempty"`
	// Server is the answering server's own metadata
	// (certs.Metadata.Marshal): with AdCert, how a writer learns the key
	// its receipts are signed with.
	Server []byte `cbor:"28,keyasint,omitempty"`
	// Signature is the owner's ed25519 signature of a DELETE
	// (DeleteSigned).
	Signature []byte `cbor:"29,keyasint,omitempty"`
	// Possession is a SYNC answer's proof that the answering replica
	// holds the head it claims: PossessionSampledTag over the request's
	// nonce (key 11), its head entry and the samples Limit states, or
	// PossessionTag over two of its entries when the request stated none.
	// Only in answer to a SYNC that carried a nonce (an older asker never
	// gets the key).
	Possession []byte `cbor:"30,keyasint,omitempty"`
}

// deleteContext separates DELETE signatures from every other use of an
// owner key.
const deleteContext = "gdp capsule delete v1\x00"

// DeleteSigned is what a capsule's owner signs to delete its placement on
// server at time t (unix nanoseconds, the message's Time): the context
// string, the capsule's name, the server's name, t as 8 bytes big-endian.
func DeleteSigned(c, server pdu.Name, t uint64) []byte {
	b := make([]byte, 0, len(deleteContext)+2*pdu.NameLen+8)
	b = append(b, deleteContext...)
	b = append(b, c[:]...)
	b = append(b, server[:]...)
	return binary.BigEndian.AppendUint64(b, t)
}

// Segment is one writer batch as a replica stored it: its data records
// (holes are declared by the heartbeat, not sent) and the heartbeat.
type Segment struct {
	Records   [][]byte `cbor:"1,keyasint,omitempty"`
	Heartbeat []byte   `cbor:"2,keyasint"`
}

// IsResponse reports whether m answers a request.
func (m *Message) IsResponse() bool { return m.Status != 0 }

// CapsuleName returns the capsule name (zero when absent).
func (m *Message) CapsuleName() pdu.Name {
	var n pdu.Name
	copy(n[:], m.Capsule)
	return n
}

// ReplicaNames returns the replica names.
func (m *Message) ReplicaNames() []pdu.Name {
	out := make([]pdu.Name, len(m.Replicas))
	for i, r := range m.Replicas {
		copy(out[i][:], r)
	}
	return out
}

// NameBytes returns names as the byte strings Replicas holds.
func NameBytes(names []pdu.Name) [][]byte {
	out := make([][]byte, len(names))
	for i := range names {
		out[i] = append([]byte(nil), names[i][:]...)
	}
	return out
}

// Reply starts the response to m with status s.
func (m *Message) Reply(s Status) *Message {
	return &Message{Op: m.Op, ID: m.ID, Status: s, Capsule: m.Capsule}
}
