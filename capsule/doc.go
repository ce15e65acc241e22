// Package capsule defines the DataCapsule formats of docs/PROTOCOL.md §7 and
// verifies them: records hash-linked by their previous-record hash, holes a
// writer declares, writer-signed heartbeats that commit to an RFC 9162 Merkle
// tree over every record hash so far, inclusion and consistency proofs, and
// equivocation evidence.
//
// The package is used by every side: a writer (Writer) builds records and
// signs heartbeats; a server verifies a batch against its stored head
// before storing it (CheckBatch, Head.Apply); a reader verifies what a
// server returned against a heartbeat (VerifyRange) and moves from one
// heartbeat to the next only with a consistency proof (Follower). It does
// no I/O: the Merkle tree's complete subtree hashes come from a NodeSource
// the caller supplies, so a store can keep millions of them on disk while
// only the tree's right frontier (Tree) stays in memory.
//
// Record and heartbeat bodies are deterministic CBOR (RFC 8949 §4.2.1) with
// small integer map keys; heartbeats are COSE_Sign1 objects signed like the
// certificates of package certs. The encoders are written by hand because
// they sit on every append's path; the tests check that they produce exactly
// what github.com/fxamacker/cbor/v2's deterministic mode produces, and the
// decoders refuse anything that does not re-encode to the same bytes.
package capsule
