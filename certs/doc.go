// Package certs holds gdpnet's identities and the certificates that bind
// names to places.
//
// Every principal (capsule, router, capsule server, client, handoff agent,
// trust domain, resolver) is described by canonical Metadata; its 256-bit
// Name is the SHA-256 of that metadata's bytes, so names are
// self-certifying: whoever shows the metadata proves which key owns the name.
//
// Three signed certificates, each with a validity window
// NotBefore <= now < NotAfter, tie names to routers:
//
//   - AdCert, signed by a capsule's owner key: "server S may host and
//     advertise capsule C";
//   - RtCert, signed by an endpoint S: "S, and the names S holds AdCerts for,
//     are reachable through router R";
//   - membership cert, signed by a trust domain D: "node X belongs to D".
//
// A Chain carries all of them with the metadata they refer to, and a
// Verifier accepts a route for name N at router R only when every link
// holds (docs/PROTOCOL.md §3). A rejection is a *ChainError naming the link
// and one of the sentinel errors (ErrBadSignature, ErrExpired, ...).
//
// Encodings are deterministic CBOR (RFC 8949 §4.2.1) with small integer map
// keys; certificates are COSE_Sign1 (RFC 9052) with EdDSA over Ed25519, the
// certificate kind bound into the signature as external AAD. Every parser is
// strict: it re-encodes what it decoded and refuses input whose bytes differ,
// so there is exactly one encoding of each object and no malleability.
//
// Private keys live in a Keystore directory, one 0600 file per key, next to
// the identity's metadata; never in configuration files.
package certs
