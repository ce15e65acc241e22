package wire

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"

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

// Sampled proof of possession (docs/PROTOCOL.md §8.3, Session 11): the
// tag above covers one entry the nonce picks, so a replica holding a
// fraction f of the log passes a challenge with probability f. An asker
// that states a sample count s (key 24, limit, in a SYNC with a nonce: a
// key every version's decoder knows, so an older answerer ignores it and
// answers the one-entry tag) gets a tag over the head entry and min(s,
// head) distinct entries the nonce picks (PossessionSamples), and the
// answer states the s it used (key 24); a replica holding a fraction f
// passes with probability at most f^s.

// MaxPossessionSamples bounds the entries one sampled tag covers: an
// answerer asked for more covers this many and says so (the asker decides
// whether that is enough); an asker never asks for more.
const MaxPossessionSamples = 64

const (
	possessionSamplesContext    = "gdp sync possession samples v2\x00"
	possessionSampledTagContext = "gdp sync possession v2\x00"
)

// PossessionSamples are the entries a sampled tag covers besides the head,
// for a replica of capsule c whose head is head challenged with nonce and
// s samples: min(s, head) distinct seqnos in [1, head], ascending, drawn by
// Floyd's algorithm — for j from head − n + 1 to head (n = min(s, head)),
// t_j = 1 + (the first 8 bytes of SHA-256(context ‖ c ‖ nonce ‖ head ‖ j),
// big-endian) mod j, head and j 8 bytes big-endian; t_j is taken unless
// taken already, then j is. Every set of n entries is as likely, and
// exactly n hashes are computed whatever the nonce. None for head 0 or s 0.
func PossessionSamples(c pdu.Name, nonce []byte, head, s uint64) []uint64 {
	n := min(s, head)
	if n == 0 {
		return nil
	}
	taken := make(map[uint64]bool, n)
	out := make([]uint64, 0, n)
	buf := make([]byte, 0, len(possessionSamplesContext)+pdu.NameLen+len(nonce)+16)
	var sum [sha256.Size]byte
	for j := head - n + 1; j <= head && j != 0; j++ {
		buf = append(buf[:0], possessionSamplesContext...)
		buf = append(buf, c[:]...)
		buf = append(buf, nonce...)
		buf = binary.BigEndian.AppendUint64(buf, head)
		buf = binary.BigEndian.AppendUint64(buf, j)
		sum = sha256.Sum256(buf)
		t := 1 + binary.BigEndian.Uint64(sum[:8])%j
		if taken[t] {
			t = j
		}
		taken[t] = true
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// PossessionSampledTag is the tag a replica named server whose head is
// head answers to nonce and s samples for capsule c: SHA-256(context ‖ c ‖
// server ‖ nonce ‖ head ‖ s ‖ headEntry ‖ entries…), head and s 8 bytes
// big-endian, headEntry the §7.1 wire form of entry head and entries those
// of PossessionSamples(c, nonce, head, s) in that (ascending) order. s
// itself is covered: an answer cannot state another count than its tag's.
func PossessionSampledTag(c, server pdu.Name, nonce []byte, head, s uint64, headEntry []byte, entries [][]byte) []byte {
	h := sha256.New()
	h.Write([]byte(possessionSampledTagContext))
	h.Write(c[:])
	h.Write(server[:])
	h.Write(nonce)
	h.Write(binary.BigEndian.AppendUint64(nil, head))
	h.Write(binary.BigEndian.AppendUint64(nil, s))
	h.Write(headEntry)
	for _, e := range entries {
		h.Write(e)
	}
	return h.Sum(nil)
}
