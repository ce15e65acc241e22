package pdu

import "fmt"

// Option types. 0 is Pad1 (one byte, no length); other types are TLVs
// `type u8, length u8, value[length]`, and a receiver skips types it does not
// know.
const (
	OptPad1 uint8 = 0
	// OptReporter carries the 32-byte name of the router that produced a NAK
	// (TTL_EXPIRED uses it for traceroute).
	OptReporter uint8 = 1
	// OptContent says what a DATA PDU's payload is, so that an endpoint
	// can hand it to the right consumer without looking inside (one byte,
	// a Content value). A DATA PDU without it carries application messages
	// (capsule commands, client payloads).
	OptContent uint8 = 2
)

// Content values of the OptContent option.
const (
	// ContentQUIC: the payload is one QUIC packet of a connection over
	// names (docs/PROTOCOL.md §9).
	ContentQUIC uint8 = 1
)

// Content returns the value of a one-byte OptContent option, or 0 when it is
// absent or not one byte long.
func (h *Header) Content() uint8 {
	v, ok := h.Option(OptContent)
	if !ok || len(v) != 1 {
		return 0
	}
	return v[0]
}

// checkOptions reports whether o is a sequence of Pad1 bytes and whole TLVs.
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

// Option returns the value of the first option of type typ, if present. The
// value aliases h.Options.
func (h *Header) Option(typ uint8) ([]byte, bool) {
	if typ == OptPad1 {
		return nil, false
	}
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
			return o[i+2 : i+2+n : i+2+n], true
		}
		i += 2 + n
	}
	return nil, false
}

// Reporter returns the name in the OptReporter option of a NAK, if the option
// is present and exactly one name long.
func (h *Header) Reporter() (Name, bool) {
	v, ok := h.Option(OptReporter)
	if !ok || len(v) != NameLen {
		return Name{}, false
	}
	return Name(v), true
}

// AddOption appends a TLV option to h.Options. It fails, leaving h unchanged,
// if typ is the padding type, val is longer than 255 bytes, or the header
// would exceed MaxHeaderLen.
func (h *Header) AddOption(typ uint8, val []byte) error {
	if typ == OptPad1 {
		return fmt.Errorf("pdu: add option: type 0 is padding")
	}
	if len(val) > 255 {
		return fmt.Errorf("pdu: add option %d: value of %d bytes exceeds 255", typ, len(val))
	}
	n := len(h.Options) + 2 + len(val)
	if n > MaxOptionsLen {
		return fmt.Errorf("pdu: add option %d: options of %d bytes exceed %d: %w", typ, n, MaxOptionsLen, ErrHeaderLen)
	}
	h.Options = append(append(h.Options, typ, byte(len(val))), val...)
	return nil
}
