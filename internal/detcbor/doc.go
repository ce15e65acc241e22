// Package detcbor is the one place the gdpnet wire formats get their CBOR
// modes: RFC 8949 §4.2.1 core deterministic encoding, and a strict decoder
// that refuses duplicate map keys, unknown struct fields, indefinite
// lengths and tags, within per-format size limits.
//
// Strictness the decoder cannot see (shortest integer forms, map key
// order) comes from re-encoding the decoded value and comparing bytes:
// UnmarshalStrict does that, so every accepted object has exactly one byte
// form. Callers wrap the errors in their own sentinel (ErrMalformed and the
// like); ErrNotCanonical lets them tell a non-canonical encoding apart.
package detcbor
