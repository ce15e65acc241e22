package capsule

import (
	"crypto/sha256"
	"encoding/hex"
)

// HashLen is the length of every hash in this package (SHA-256).
const HashLen = 32

// Hash is a SHA-256 output: a record hash, a data hash or a Merkle node.
type Hash [HashLen]byte

// String returns the hash in lower-case hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// IsZero reports whether h is all zeros.
func (h Hash) IsZero() bool { return h == Hash{} }

// RFC 9162 §2.1.1 domain separation: leaves and interior nodes hash under
// different one-byte prefixes so a leaf can never pass for a node.
const (
	leafPrefix = 0x00
	nodePrefix = 0x01
)

// LeafHash is the Merkle leaf hash of an entry hash: SHA-256(0x00 || entry).
func LeafHash(entry Hash) Hash {
	var b [1 + HashLen]byte
	b[0] = leafPrefix
	copy(b[1:], entry[:])
	return sha256.Sum256(b[:])
}

// NodeHash is the Merkle interior node hash: SHA-256(0x01 || left || right).
func NodeHash(left, right Hash) Hash {
	var b [1 + 2*HashLen]byte
	b[0] = nodePrefix
	copy(b[1:], left[:])
	copy(b[1+HashLen:], right[:])
	return sha256.Sum256(b[:])
}

// EmptyRoot is the root of the empty tree, SHA-256 of the empty string.
var EmptyRoot = Hash(sha256.Sum256(nil))
