// Package resolver maps names to location records: "name N is reachable at
// router R, at these underlay addresses, until T", together with the
// certificate chain that proves it (DESIGN.md §6, PROTOCOL.md §6).
//
// A Resolver publishes, looks up and withdraws records. Two implementations
// share that interface: Static, an in-memory table for a single site and for
// tests, and DHT, a go-libp2p-kad-dht node in a private network per trust
// domain (protocol prefix /gdp/<domain>), whose record validator verifies the
// whole chain inside every record because it never learns who sent it.
// Federated layers a domain DHT over a global one that border resolvers
// join, and Cache keeps verified answers until they expire (or MaxAge).
// Open builds the whole stack from a Config, for `gdp resolver` and for a
// router embedding one. Routers withdraw with WithdrawIf, which leaves a
// name alone once it points at another router (the name moved).
//
// Every record is self-certifying: its bytes carry the chain (target
// metadata, AdCert, endpoint, RtCert, router, membership, domain) and the
// router's Ed25519 signature, so any node can check a record without
// trusting the node that handed it over.
package resolver
