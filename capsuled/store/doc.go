// Package store is the capsule server's storage layer: capsules kept in an
// embedded key-value store, every append verified before it is written,
// made durable with a group commit, and readable by seqno range, hash or
// time, with Merkle proofs built from stored subtree hashes.
//
// # Guarantees
//
//   - Append verifies everything (capsule.CheckBatch, then capsule.Head.Apply
//     against the stored head) and writes the batch, its Merkle nodes, its
//     hash index entries and its heartbeat in one atomic engine batch. It
//     returns nil only after the fsync that covers it. Bad input changes
//     nothing.
//   - Group commit: one goroutine takes every batch queued while the
//     previous fsync ran and commits them with one fsync, so concurrent
//     appenders (usually different capsules) share fsyncs, while the costly
//     signature checks run in parallel on the callers' goroutines.
//   - Readers see only durable state (Head, Read, proofs never show an
//     unacknowledged entry).
//   - A crash at any point loses no acknowledged append and leaves nothing
//     half-written (TestCrashRecovery SIGKILLs a child process mid-append on
//     both engines, reopens and checks).
//   - A power loss loses no acknowledged append or create either: the
//     store's directory is fsynced into its parent when created, and
//     TestPowerLoss runs pebble on a strict in-memory file system
//     (vfs.NewStrictMem) that drops everything not fsynced at a cut
//     (ResetToSyncedState), three cuts in a row mid-append. SIGKILL alone
//     cannot show this: the page cache survives a killed process, so an
//     engine that never fsyncs passes the crash test. bbolt writes to the
//     operating system's files directly, with no file-system layer to
//     substitute, so for bbolt only the SIGKILL test runs: its fsync
//     discipline is bbolt's own (NoSync false, the default), which this
//     package does not change.
//   - Retries, also of older batches held as sent, are acknowledged again,
//     replays (an older epoch, an earlier time at the head) refused (capsule.ErrStale),
//     abandoned branches kept aside (Abandoned), equivocation refused with
//     its evidence stored (Evidence), per docs/PROTOCOL.md §7.6.
//
// Appends to one capsule are applied in seqno order under the capsule's
// lock. A writer may pipeline: an append that starts beyond the head waits
// while earlier appends of that capsule are being checked, and for up to
// Options.ReorderWindow, before failing as a gap.
//
// # Engine choice: pebble
//
// BenchmarkStoreEngines runs the same workload on github.com/cockroachdb/pebble
// and go.etcd.io/bbolt in one run: 256-byte records, every append verified
// and acknowledged only after its fsync, on this 2-core machine, which other
// jobs share (figures at load average ≈ 2, then the range seen at 4–11):
//
//	                                  pebble               bbolt
//	append, heartbeat per 256, 8 caps 193k (104k–219k)/s   75k (5.6k–46k)/s
//	  CPU per record                  7–9 µs               12–13 µs
//	append, heartbeat per record, 64  14.4k (7.1k–17.7k)/s 8.2k (1.5k–8.3k)/s
//	  one pipelining writer           17.1k (9.1k–14.5k)/s 11.3k/s
//	verified read, 256 per range      445k (261k–518k)/s   687k (305k–630k)/s
//	inclusion proof, 262,144 entries  31 µs (40–120 µs)    28 µs (71–78 µs)
//	baselines: fsync per record 5.1k/s, per 256 records 329k/s; Ed25519 verify 56 µs
//
// Pebble is the default: appends go to a write-ahead log (one sequential
// write and one fdatasync per group), while bbolt rewrites copy-on-write
// B+tree pages and syncs twice per transaction under a single writer lock;
// pebble appends 1.3–2.6x faster when the machine is quiet and far faster
// under disk contention, where bbolt's rate collapsed. bbolt reads faster,
// but both read well above what is needed, so appends decide. bbolt stays
// selectable (Options.Engine) for comparison and for deployments that
// prefer a single file.
//
// At 10 M entries (BenchmarkStoreProof10M, opt in with -store.big10m: the
// store filled through a hash-only path that writes the same keys, ~180k
// entries/s) a cold inclusion proof of a random entry, plus reading and
// verifying that entry, took 0.5–1.9 ms right after the bulk load, while
// pebble was still compacting: 832-byte proofs, the nodes read from disk
// with only the frontier and a bounded node cache in memory.
//
// A heartbeat per record is bounded by its Ed25519 verify (56 µs of the
// ~90 µs of CPU a record costs): verification runs on the appenders'
// goroutines, in parallel on both cores, and the fsyncs are shared
// (13–30 records per fsync).
//
// # Layout
//
// Keys are laid out per capsule (see keys.go): entries by seqno, entry hash
// to seqno, Merkle interior nodes by (level, index), heartbeats by seqno,
// abandoned entries by (epoch, seqno), evidence. Only each capsule's head
// and tree frontier live in memory, plus a bounded cache of interior nodes
// for proofs; a capsule of any length is reopened with O(log n) reads.
package store
