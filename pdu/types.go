package pdu

import (
	"strconv"
	"strings"
)

// Type is the PDU type byte (offset 2).
type Type uint8

// PDU types, as PROTOCOL.md §1 numbers them.
const (
	TypeData            Type = 0x00
	TypeNAK             Type = 0x01
	TypeAdvertise       Type = 0x02
	TypeWithdraw        Type = 0x03
	TypeAdvertiseResult Type = 0x04
	TypeEchoRequest     Type = 0x05
	TypeEchoReply       Type = 0x06
	TypeKeepalive       Type = 0x07

	maxType = TypeKeepalive
)

var typeNames = [...]string{"DATA", "NAK", "ADVERTISE", "WITHDRAW", "ADVERTISE_RESULT", "ECHO_REQUEST", "ECHO_REPLY", "KEEPALIVE"}

// Known reports whether t is a type this version understands.
func (t Type) Known() bool { return t <= maxType }

func (t Type) String() string {
	if t.Known() {
		return typeNames[t]
	}
	return "TYPE(" + strconv.Itoa(int(t)) + ")"
}

// Code is the NAK reason carried in the code byte (offset 5) of a NAK PDU.
type Code uint8

// NAK codes.
const (
	CodeNone        Code = 0
	CodeNoRoute     Code = 1
	CodeTTLExpired  Code = 2
	CodeTooBig      Code = 3
	CodeRateLimited Code = 4
	CodeForbidden   Code = 5
	CodeMalformed   Code = 6

	maxCode = CodeMalformed
)

var codeNames = [...]string{"NONE", "NO_ROUTE", "TTL_EXPIRED", "TOO_BIG", "RATE_LIMITED", "FORBIDDEN", "MALFORMED"}

// Known reports whether c is a code this version understands.
func (c Code) Known() bool { return c <= maxCode }

func (c Code) String() string {
	if c.Known() {
		return codeNames[c]
	}
	return "CODE(" + strconv.Itoa(int(c)) + ")"
}

// Flags is the flags byte (offset 4).
type Flags uint8

// Flag bits. Bits 2–7 are reserved: sent as 0 and ignored on receipt.
const (
	FlagMulticast Flags = 1 << 0
	FlagNoNAK     Flags = 1 << 1

	knownFlags = FlagMulticast | FlagNoNAK
)

// String returns the set flags joined by "|" (reserved bits in hex), or "0".
func (f Flags) String() string {
	if f == 0 {
		return "0"
	}
	var parts []string
	if f&FlagMulticast != 0 {
		parts = append(parts, "MULTICAST")
	}
	if f&FlagNoNAK != 0 {
		parts = append(parts, "NO_NAK")
	}
	if r := f &^ knownFlags; r != 0 {
		parts = append(parts, "0x"+strconv.FormatUint(uint64(r), 16))
	}
	return strings.Join(parts, "|")
}
