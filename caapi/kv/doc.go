// Package kv is a key–value store with time travel on a capsule, one of the
// Common Access APIs (DESIGN.md §7–§8).
//
// Every change is one capsule record (a CBOR map, docs/PROTOCOL.md §10): a
// put or a delete of one key. The capsule's single writer (Writer, over
// client.Writer) also writes checkpoints now and then: the whole live state
// at a seqno, in one or more records, with a digest of that state. Every
// later change names the newest complete checkpoint, so a new reader reads
// the head record, then that checkpoint, then the changes after it: it
// never replays the whole log unless it asks for a time before the
// checkpoint (then it reads the older records once and checks that they
// lead to exactly the checkpointed state).
//
// Readers (Store) keep a local index fed by a subscription. Nothing enters
// the index unverified: every entry comes from client.Reader or a
// client.Subscription, which check it against a heartbeat the writer
// signed (hash chain and inclusion proof), and the index checks that each
// page continues the hash chain of the previous one. Index.ApplyPage does
// the same checks for pages obtained elsewhere (a cache, a file).
//
// Time travel: GetAt, ListAt and History answer for any seqno or time (the
// records' writer-signed timestamps) the index covers, in O(log n).
package kv
