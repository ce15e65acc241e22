// Package pdu encodes, decodes and validates the gdpnet PDU ("fiber") header
// fixed by docs/PROTOCOL.md §1: a 76-byte header, optional TLV options and a
// payload of at most 65,535 bytes.
//
// Decode validates while it decodes, never allocates, never panics and never
// trusts a length field: a Header decoded with Decode points into the
// caller's buffer and reaches no further than its length. Append encodes into
// a caller's slice and writes nothing when the header is invalid. NAK builds
// the NAK a router returns about a PDU it could not deliver. Errors are
// sentinels (ErrShort, ErrVersion, …) so that receivers can count drops by
// reason without allocating. The package does no I/O.
//
// testdata/vectors.txt holds golden vectors written by an independent
// encoder (testdata/gen_vectors.py); docs/PROTOCOL.md quotes them.
package pdu
