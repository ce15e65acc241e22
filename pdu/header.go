package pdu

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Sizes fixed by the protocol.
const (
	Version        = 0x01
	HeaderLen      = 76     // fixed header, no options
	MaxHeaderLen   = 63 * 4 // 252 bytes, options included
	MaxPayload     = 65535  // bytes after the header
	MaxPDU         = MaxHeaderLen + MaxPayload
	NameLen        = 32
	DefaultTTL     = 32
	MaxNAKEcho     = 128 // bytes of the offending PDU a NAK carries
	minHeaderWords = HeaderLen / 4
)

// Name is a 256-bit flat name (SHA-256 of a principal's canonical metadata).
// certs.Name is the same type; it lives here so the bottom package needs no
// import.
type Name [NameLen]byte

// Errors returned by Decode. Callers count drops by them.
var (
	ErrShort       = errors.New("pdu: shorter than the fixed header")
	ErrVersion     = errors.New("pdu: unsupported version")
	ErrHeaderLen   = errors.New("pdu: bad header length")
	ErrLength      = errors.New("pdu: payload length does not match datagram")
	ErrOption      = errors.New("pdu: option overruns the header")
	ErrUnknownType = errors.New("pdu: unknown type")
	ErrTooBig      = errors.New("pdu: larger than the maximum")
)

// Header is a decoded PDU header. After Decode, Options and Payload alias the
// decoded buffer.
type Header struct {
	Type     Type
	TTL      uint8
	Flags    Flags
	Code     Code
	Sequence uint32
	Dst      Name
	Src      Name
	// Options holds the raw TLV bytes after the fixed header, padding
	// included; its length is a multiple of 4 after Decode.
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

// Decode parses b into h without allocating. Options and Payload alias b.
// It validates every field: version, header length, exact total length,
// options that stay inside the header, and a known type. Reserved flag bits
// are cleared, as the protocol says they are ignored.
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
	if words < minHeaderWords || words*4 > MaxHeaderLen {
		return ErrHeaderLen
	}
	hl := words * 4
	pl := int(binary.BigEndian.Uint16(b[6:8]))
	if len(b) != hl+pl {
		return ErrLength
	}
	t := Type(b[2])
	if !t.Known() {
		return ErrUnknownType
	}
	opts := b[HeaderLen:hl]
	if err := checkOptions(opts); err != nil {
		return err
	}
	h.Type = t
	h.TTL = b[3]
	h.Flags = Flags(b[4]) & knownFlags
	h.Code = Code(b[5])
	h.Sequence = binary.BigEndian.Uint32(b[8:12])
	copy(h.Dst[:], b[12:44])
	copy(h.Src[:], b[44:76])
	h.Options = opts[:len(opts):len(opts)]
	h.Payload = b[hl:]
	return nil
}

func checkOptions(o []byte) error {
	for i := 0; i < len(o); {
		if o[i] == OptPad1 {
			i++
			continue
		}
		if i+2 > len(o) || i+2+int(o[i+1]) > len(o) {
			return ErrOption
		}
		i += 2 + int(o[i+1])
	}
	return nil
}

// Option returns the value of the first option of type typ, if present.
func (h *Header) Option(typ uint8) ([]byte, bool) {
	o := h.Options
	for i := 0; i < len(o); {
		if o[i] == OptPad1 {
			i++
			continue
		}
		if i+2 > len(o) {
			return nil, false
		}
		n := int(o[i+1])
		if i+2+n > len(o) {
			return nil, false
		}
		if o[i] == typ {
			return o[i+2 : i+2+n], true
		}
		i += 2 + n
	}
	return nil, false
}

// AddOption appends a TLV option to h.Options. It fails if the header would
// exceed MaxHeaderLen.
func (h *Header) AddOption(typ uint8, val []byte) error {
	if typ == OptPad1 {
		return fmt.Errorf("pdu: option type 0 is padding")
	}
	if len(val) > 255 {
		return fmt.Errorf("pdu: option value of %d bytes exceeds 255", len(val))
	}
	n := len(h.Options) + 2 + len(val)
	if HeaderLen+(n+3)&^3 > MaxHeaderLen {
		return fmt.Errorf("pdu: options of %d bytes exceed the header limit", n)
	}
	h.Options = append(append(h.Options, typ, byte(len(val))), val...)
	return nil
}

// Validate checks that h can be encoded: known type, sizes within limits,
// well-formed options.
func (h *Header) Validate() error {
	if !h.Type.Known() {
		return ErrUnknownType
	}
	if len(h.Payload) > MaxPayload {
		return ErrTooBig
	}
	if h.HeaderSize() > MaxHeaderLen {
		return ErrHeaderLen
	}
	return checkOptions(h.Options)
}

// Append encodes h and appends it to b. Options are padded with Pad1 bytes
// to a 4-byte boundary; reserved flag bits are sent as 0.
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

// NAK builds the NAK a router sends to the source of the offending PDU orig
// (raw bytes, possibly malformed); the NAK carries orig's sequence number so
// the source can match it. reporter is the router's name. It returns
// false when no NAK may be sent: orig is itself a NAK, asks for NO_NAK, or is
// too short to name a source.
func NAK(orig []byte, code Code, reporter Name) (Header, bool) {
	if len(orig) < HeaderLen || Type(orig[2]) == TypeNAK || Flags(orig[4])&FlagNoNAK != 0 {
		return Header{}, false
	}
	var h Header
	h.Type = TypeNAK
	h.TTL = DefaultTTL
	h.Code = code
	h.Sequence = binary.BigEndian.Uint32(orig[8:12])
	copy(h.Dst[:], orig[44:76])
	h.Src = reporter
	h.Options = append(make([]byte, 0, 36), OptReporter, NameLen)
	h.Options = append(h.Options, reporter[:]...)
	n := min(len(orig), MaxNAKEcho)
	h.Payload = orig[:n:n]
	return h, true
}
