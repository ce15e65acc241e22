package capsule

import "errors"

// Sentinel errors callers branch on. Every error returned by this package
// wraps one of these with the detail of what and where.
var (
	// ErrMalformed: the bytes do not decode as the canonical encoding.
	ErrMalformed = errors.New("malformed")
	// ErrTooLarge: a record's data or a heartbeat exceeds a configured bound.
	ErrTooLarge = errors.New("too large")
	// ErrBadSignature: a heartbeat signature does not verify with the writer key.
	ErrBadSignature = errors.New("bad heartbeat signature")
	// ErrWrongCapsule: an object names a different capsule than expected.
	ErrWrongCapsule = errors.New("wrong capsule")
	// ErrBadDataHash: a record's data does not hash to its data hash.
	ErrBadDataHash = errors.New("data hash mismatch")
	// ErrBrokenChain: a record's previous-record hash does not match its predecessor.
	ErrBrokenChain = errors.New("broken hash chain")
	// ErrGap: a seqno is missing and no heartbeat declares it a hole.
	ErrGap = errors.New("gap without a declared hole")
	// ErrRootMismatch: the records do not produce the heartbeat's Merkle root.
	ErrRootMismatch = errors.New("merkle root mismatch")
	// ErrBadProof: an inclusion or consistency proof does not verify.
	ErrBadProof = errors.New("proof does not verify")
	// ErrStale: a heartbeat older than the one held (a replay).
	ErrStale = errors.New("stale heartbeat")
	// ErrEquivocation: two writer-signed heartbeats disagree about the log.
	ErrEquivocation = errors.New("writer equivocation")
	// ErrBadTime: a record's timestamp goes backwards.
	ErrBadTime = errors.New("timestamp goes backwards")
)
