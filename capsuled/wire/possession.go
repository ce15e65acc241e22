package wire

import (
	"crypto/sha256"
	"encoding/binary"

	"github.com/gdpnet/gdpnet/pdu"
)

// Proof of possession on SYNC (docs/PROTOCOL.md §8.3): the asker sends a
// fresh random nonce (key 11, NonceLen bytes); the answering replica
// returns, beside the writer's heartbeat of its head, a tag over two of its
// entries that only a replica holding them can compute: the head entry and
// the entry at PossessionSeqno. An asker that holds those entries itself
// recomputes the tag; only then does the peer's head count for its
// replication-lag figures. The heartbeat alone is public (any reader gets
// it), so it cannot show that the peer holds the log it ends.

// NonceLen is the length of a SYNC request's possession nonce (key 11).
const NonceLen = 32

// PossessionLen is the length of a SYNC answer's possession tag (key 30).
const PossessionLen = sha256.Size

const (
	possessionSeqnoContext = "gdp sync possession seqno v1\x00"
	possessionTagContext   = "gdp sync possession v1\x00"
)

// PossessionSeqno is the second entry a possession tag covers, for a
// replica of capsule c whose head is head (at least 1), challenged with
// nonce: 1 + (the first 8 bytes of SHA-256(context ‖ c ‖ nonce ‖ head as
// 8 bytes big-endian), big-endian) mod head. Any entry of the log is as
// likely; a replica that holds a fraction f of its entries answers a
// challenge at random with probability f at most.
func PossessionSeqno(c pdu.Name, nonce []byte, head uint64) uint64 {
	if head == 0 {
		return 0
	}
	h := sha256.New()
	h.Write([]byte(possessionSeqnoContext))
	h.Write(c[:])
	h.Write(nonce)
	h.Write(binary.BigEndian.AppendUint64(nil, head))
	var sum [sha256.Size]byte
	return 1 + binary.BigEndian.Uint64(h.Sum(sum[:0])[:8])%head
}

// PossessionTag is the tag a replica named server whose head is head
// answers to nonce for capsule c: SHA-256(context ‖ c ‖ server ‖ nonce ‖
// head as 8 bytes big-endian ‖ headEntry ‖ entry), headEntry and entry
// being the §7.1 wire forms (canonical CBOR, so self-delimiting) of entry
// head and of entry PossessionSeqno(c, nonce, head), a record with its data
// or a hole. The server's name binds the tag to the replica asked: an
// answer relayed from another replica does not verify.
func PossessionTag(c, server pdu.Name, nonce []byte, head uint64, headEntry, entry []byte) []byte {
	h := sha256.New()
	h.Write([]byte(possessionTagContext))
	h.Write(c[:])
	h.Write(server[:])
	h.Write(nonce)
	h.Write(binary.BigEndian.AppendUint64(nil, head))
	h.Write(headEntry)
	h.Write(entry)
	return h.Sum(nil)
}
