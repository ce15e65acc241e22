package store

import (
	"encoding/binary"

	"github.com/gdpnet/gdpnet/pdu"
)

// Key layout. Every key starts with a one-byte table and the 32-byte
// capsule name, so one capsule's data is contiguous; integers are
// big-endian so byte order is numeric order.
//
//	'm' c                      capsule metadata (writer key, metadata bytes)
//	'r' c seqno                entry (record or hole), wire form
//	'x' c hash                 entry hash -> seqno (ReadByHash)
//	'n' c position             Merkle interior node (level >= 1), 32 bytes
//	'H' c seqno                heartbeat held at that seqno, wire form
//	'a' c epoch seqno          abandoned-branch entry
//	'A' c epoch                heartbeat of an abandoned branch
//	'e' c counter              equivocation evidence
//	'b' c                      bytes of the entries stored (Bytes), 8 bytes
const (
	tMeta      = 'm'
	tEntry     = 'r'
	tHash      = 'x'
	tNode      = 'n'
	tHeartbeat = 'H'
	tAbandoned = 'a'
	tAbandonHB = 'A'
	tEvidence  = 'e'
	tBytes     = 'b'
)

func key(t byte, c pdu.Name, tail ...uint64) []byte {
	k := make([]byte, 33, 33+8*len(tail))
	k[0] = t
	copy(k[1:], c[:])
	for _, v := range tail {
		k = binary.BigEndian.AppendUint64(k, v)
	}
	return k
}

// nodeKey keys interior node (level, index) by its in-order position in
// the tree, (index << (level+1)) + (1 << level) - 1: a node sits between its
// two subtrees, so the low siblings on any leaf's proof path lie within a
// few hundred bytes of each other and a cold proof reads a few blocks, not
// one per level. Positions of interior nodes are odd (leaves, not stored
// here, would take the even ones).
func nodeKey(c pdu.Name, level uint8, index uint64) []byte {
	return nodePosKey(c, nodePos(level, index))
}

func nodePos(level uint8, index uint64) uint64 { return index<<(level+1) + (1 << level) - 1 }

func nodePosKey(c pdu.Name, pos uint64) []byte {
	k := make([]byte, 0, 41)
	k = append(k, tNode)
	k = append(k, c[:]...)
	return binary.BigEndian.AppendUint64(k, pos)
}

func hashKey(c pdu.Name, h [32]byte) []byte {
	k := make([]byte, 0, 65)
	k = append(k, tHash)
	k = append(k, c[:]...)
	return append(k, h[:]...)
}

// prefixEnd is the smallest key greater than every key starting with p.
func prefixEnd(p []byte) []byte {
	e := append([]byte(nil), p...)
	for i := len(e) - 1; i >= 0; i-- {
		if e[i] < 0xff {
			e[i]++
			return e[:i+1]
		}
	}
	return nil
}

func u64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }
