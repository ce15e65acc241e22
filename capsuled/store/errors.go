package store

import "errors"

// Sentinel errors of the store. Verification failures wrap the capsule
// package's sentinels (capsule.ErrBadSignature, capsule.ErrGap, ...).
var (
	// ErrUnknownCapsule: the capsule was never created on this store.
	ErrUnknownCapsule = errors.New("unknown capsule")
	// ErrCapsuleExists: Create with a different writer key for an existing name.
	ErrCapsuleExists = errors.New("capsule exists with other metadata")
	// ErrNotFound: no entry, heartbeat or hash as asked.
	ErrNotFound = errors.New("not found")
	// ErrOutOfRange: a seqno range beyond the capsule's head.
	ErrOutOfRange = errors.New("seqno out of range")
	// ErrClosed: the store is closed.
	ErrClosed = errors.New("store closed")
	// ErrWriterConflict: a writer's batch does not extend the held log:
	// another writer with the same key got there first.
	ErrWriterConflict = errors.New("another writer is active")
	// ErrDiverged: a peer's segment (AppendFromPeer) rewrites held entries
	// of the same epoch: the two replicas hold different lines of the log.
	ErrDiverged = errors.New("the peer holds another line of the log")
	// ErrNothingToAdopt: Adopt was given a batch that agrees with the held
	// log at the seqno it should replace from.
	ErrNothingToAdopt = errors.New("nothing to adopt")
	// ErrDiskFull: the file system holding the store has less free space
	// than Options.MinFreeBytes; writes are refused (nothing stored) until
	// space is freed, so the engine never meets ENOSPC in its log (pebble
	// stops the process when a log write fails).
	ErrDiskFull = errors.New("disk nearly full: writes refused")
	// ErrFailed: a durable write failed; the store refuses writes until reopened.
	ErrFailed = errors.New("store failed")
)
