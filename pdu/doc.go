// Package pdu encodes, decodes and validates the gdpnet PDU ("fiber") header
// fixed by docs/PROTOCOL.md §1: a 76-byte header, optional TLV options and a
// payload of at most 65,535 bytes.
//
// Decoding never allocates, never panics and never trusts a length field: a
// Header decoded with Decode points into the caller's buffer. Encoding appends
// to a caller's slice. The package does no I/O.
package pdu
