// Package capsuled is the capsule server: it hosts DataCapsules placed on it
// with the owner's AdCert, advertises their names through its router, and
// serves the capsule commands of docs/PROTOCOL.md §8 (CREATE, APPEND, READ,
// SUBSCRIBE, METADATA, PROOF, SYNC) as DATA PDUs addressed to a capsule or
// to the server itself.
//
// Storage is capsuled/store (an embedded store with group commit: an APPEND
// is answered only after the fsync that covers it). Replication is
// leaderless: every replica of a capsule receives the writer's APPENDs and
// acknowledges after its own durable commit, so the writer counts W of N.
// A replica that missed batches (killed, partitioned, restarted) catches up
// by anti-entropy: on start-up, every SyncInterval, and whenever an APPEND
// arrives beyond its head, it asks its peers for their head and pulls the
// missing writer batches (SYNC), storing them only after the store has
// verified them like any append. Records and heartbeats are
// self-verifying, so a replica trusts no peer.
//
// The server reaches the overlay through a client.Client it is handed
// (DialRouter builds one over a QUIC tunnel); every goroutine it starts is
// stopped by Close.
package capsuled
