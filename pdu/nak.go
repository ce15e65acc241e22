package pdu

import "encoding/binary"

// NAK builds the NAK a router sends to the source of the offending PDU orig
// (raw bytes as received, possibly malformed). The NAK carries orig's sequence
// number so the source can match it, the first MaxNAKEcho bytes of orig as
// its payload (copied: orig may be reused), and the reporter's name both as
// its source and in an OptReporter option.
//
// It returns false when no NAK may be sent: orig is itself a NAK, its source
// asked for none (NO_NAK), it is too short or of another version to name a
// source, or its source name is zero.
func NAK(orig []byte, code Code, reporter Name) (Header, bool) {
	if len(orig) < HeaderLen || orig[0] != Version ||
		Type(orig[2]) == TypeNAK || Flags(orig[4])&FlagNoNAK != 0 {
		return Header{}, false
	}
	src := Name(orig[44:76])
	if src.IsZero() {
		return Header{}, false
	}
	// One allocation holds the reporter option, already padded to the
	// 4-byte boundary so that the Header equals its own decoded encoding, and
	// the echoed bytes.
	const optLen = (2 + NameLen + 3) &^ 3
	n := min(len(orig), MaxNAKEcho)
	buf := make([]byte, optLen+n)
	buf[0], buf[1] = OptReporter, NameLen
	copy(buf[2:optLen], reporter[:])
	copy(buf[optLen:], orig[:n])
	return Header{
		Type:     TypeNAK,
		TTL:      DefaultTTL,
		Code:     code,
		Sequence: binary.BigEndian.Uint32(orig[8:12]),
		Dst:      src,
		Src:      reporter,
		Options:  buf[:optLen:optLen],
		Payload:  buf[optLen:],
	}, true
}
