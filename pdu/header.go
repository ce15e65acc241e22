package pdu

import "encoding/binary"

// Sizes fixed by the protocol.
const (
	Version        = 0x01
	HeaderLen      = 76     // fixed header, no options
	MaxHeaderLen   = 63 * 4 // 252 bytes, options included
	MaxOptionsLen  = MaxHeaderLen - HeaderLen
	MaxPayload     = 65535 // bytes after the header
	MaxPDU         = MaxHeaderLen + MaxPayload
	NameLen        = 32
	DefaultTTL     = 32
	MaxNAKEcho     = 128 // bytes of the offending PDU a NAK carries
	minHeaderWords = HeaderLen / 4
	maxHeaderWords = MaxHeaderLen / 4
)

// Name is a 256-bit flat name (SHA-256 of a principal's canonical metadata).
// certs.Name is the same type; it lives here so the bottom package needs no
// import.
type Name [NameLen]byte

// Header is a decoded PDU header. After Decode, Options and Payload alias the
// decoded buffer (capped at its length, so appending to them never writes into
// it); they are nil when empty.
type Header struct {
	Type     Type
	TTL      uint8
	Flags    Flags
	Code     Code
	Sequence uint32
	Dst      Name
	Src      Name
	// Options holds the raw TLV bytes after the fixed header, padding
	// included; its length is a multiple of 4 after Decode. Append pads a
	// shorter value with Pad1 bytes.
	Options []byte
	Payload []byte
}

// HeaderSize returns the encoded header length (fixed part plus options,
// padded to 4 bytes).
func (h *Header) HeaderSize() int {
	return HeaderLen + (len(h.Options)+3)&^3
}

// Len returns the encoded length of the whole PDU.
func (h *Header) Len() int { return h.HeaderSize() + len(h.Payload) }

// Decode parses b into h without allocating. It validates every field:
// version, header length, exact total length, options that stay inside the
// header, a known type and a code that fits the type. Reserved flag bits are
// cleared, as the protocol says they are ignored on receipt. On error h is
// left unchanged. Options and Payload alias b; Decode reads nothing outside
// b[:len(b)] and keeps nothing beyond it.
func Decode(b []byte, h *Header) error {
	if len(b) < HeaderLen {
		return ErrShort
	}
	if len(b) > MaxPDU {
		return ErrTooBig
	}
	if b[0] != Version {
		return ErrVersion
	}
	words := int(b[1])
	if words < minHeaderWords || words > maxHeaderWords {
		return ErrHeaderLen
	}
	hl := words * 4
	if len(b) != hl+int(binary.BigEndian.Uint16(b[6:8])) {
		return ErrLength
	}
	t, c := Type(b[2]), Code(b[5])
	if !t.Known() {
		return ErrUnknownType
	}
	if (t == TypeNAK) != (c != CodeNone) {
		return ErrCode
	}
	opts := b[HeaderLen:hl:hl]
	if err := checkOptions(opts); err != nil {
		return err
	}
	h.Type = t
	h.TTL = b[3]
	h.Flags = Flags(b[4]) & knownFlags
	h.Code = c
	h.Sequence = binary.BigEndian.Uint32(b[8:12])
	h.Dst = Name(b[12:44])
	h.Src = Name(b[44:76])
	h.Options = nilIfEmpty(opts)
	h.Payload = nilIfEmpty(b[hl:len(b):len(b)])
	return nil
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// Validate checks that h can be encoded: a known type, a code that fits the
// type, sizes within limits and well-formed options. Reserved flag bits are
// not an error: Append sends them as 0.
func (h *Header) Validate() error {
	if !h.Type.Known() {
		return ErrUnknownType
	}
	if (h.Type == TypeNAK) != (h.Code != CodeNone) {
		return ErrCode
	}
	if len(h.Payload) > MaxPayload {
		return ErrTooBig
	}
	if len(h.Options) > MaxOptionsLen {
		return ErrHeaderLen
	}
	return checkOptions(h.Options)
}

// Append encodes h and appends it to b. Options are padded with Pad1 bytes
// to a 4-byte boundary; reserved flag bits are sent as 0. On error b is
// returned unchanged: nothing is half-written.
func (h *Header) Append(b []byte) ([]byte, error) {
	if err := h.Validate(); err != nil {
		return b, err
	}
	hl := h.HeaderSize()
	var fixed [HeaderLen]byte
	fixed[0] = Version
	fixed[1] = byte(hl / 4)
	fixed[2] = byte(h.Type)
	fixed[3] = h.TTL
	fixed[4] = byte(h.Flags & knownFlags)
	fixed[5] = byte(h.Code)
	binary.BigEndian.PutUint16(fixed[6:8], uint16(len(h.Payload)))
	binary.BigEndian.PutUint32(fixed[8:12], h.Sequence)
	copy(fixed[12:44], h.Dst[:])
	copy(fixed[44:76], h.Src[:])
	b = append(b, fixed[:]...)
	b = append(b, h.Options...)
	for i := len(h.Options); i < hl-HeaderLen; i++ {
		b = append(b, OptPad1)
	}
	return append(b, h.Payload...), nil
}

// Marshal returns the encoded PDU in a new slice.
func (h *Header) Marshal() ([]byte, error) {
	return h.Append(make([]byte, 0, h.Len()))
}
