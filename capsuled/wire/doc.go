// Package wire is the capsule command protocol of docs/PROTOCOL.md §8: the
// request, response and push messages a capsule server (capsuled) and its
// clients (client.CapsuleClient) exchange as DATA PDU payloads.
//
// Every message is one deterministic CBOR map (RFC 8949 §4.2.1) with small
// integer keys, decoded strictly: unknown or duplicate keys, indefinite
// lengths and any encoding that does not re-encode to the same bytes are
// refused, so each message has exactly one byte form. A message is at most
// pdu.MaxPayload bytes; Budget says how much of that records may take.
//
// The package also holds Pending, the request-id matcher both sides use to
// pair responses with the requests that caused them.
package wire
