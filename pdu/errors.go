package pdu

import "errors"

// Errors returned by Decode, Validate and Append. They are sentinels so that a
// receiver can count drops by reason without allocating; compare with
// errors.Is.
var (
	ErrShort       = errors.New("pdu: shorter than the fixed header")
	ErrVersion     = errors.New("pdu: unsupported version")
	ErrHeaderLen   = errors.New("pdu: bad header length")
	ErrLength      = errors.New("pdu: payload length does not match datagram")
	ErrOption      = errors.New("pdu: option overruns the header")
	ErrUnknownType = errors.New("pdu: unknown type")
	ErrCode        = errors.New("pdu: code must be non-zero in a NAK and zero otherwise")
	ErrTooBig      = errors.New("pdu: larger than the maximum")
)
