// Package router is the gdpnet router: it forwards PDUs by their flat 256-bit
// destination names (DESIGN.md §5).
//
// An endpoint attaches over an authenticated tunnel (a Face) and ADVERTISEs
// names with their certificate chains; the router verifies each chain
// (certs.Verifier), installs FIB entries that expire with the chain, and
// publishes a location record to the resolver. Forwarding looks the
// destination up in the FIB (a sharded map read without a global lock); a
// miss asks the resolver, parking the PDU in a bounded queue, and remembers
// failures in a negative cache. Routers reach each other over tunnels opened
// on demand from signed router records, or over statically configured peers.
//
// Every face has an ingress token bucket and a bounded egress queue, so a
// flood from one face cannot starve the others; malformed input is dropped
// and counted.
//
// Files hold one idea each: fib.go and fibtable.go (the table), forward.go
// (the pipeline), advertise.go (ADVERTISE/WITHDRAW handling; the payload
// codec is package advert, shared with endpoints),
// publish.go (location records), resolve.go (misses),
// nak.go, dedup.go, ratelimit.go, face.go, peers.go (peer routers),
// tunnel.go and node.go (running on real tunnels), admin.go, metrics.go,
// config.go and router.go (the wiring). routertest/ holds in-memory links
// and certificate fixtures for tests above the router.
package router
