package pdu

import (
	"bytes"
	"errors"
	"testing"
)

var (
	testDst = Name{0: 0xd5, 31: 0xd5}
	testSrc = Name{0: 0x5c, 31: 0x5c}
)

// testPDU returns the encoding of a DATA PDU with the given options (padded
// here) and payload, built by hand rather than by Append.
func testPDU(typ Type, flags Flags, code Code, opts, payload []byte) []byte {
	opts = append(opts[:len(opts):len(opts)], make([]byte, (4-len(opts)%4)%4)...)
	b := []byte{Version, byte((HeaderLen + len(opts)) / 4), byte(typ), 32, byte(flags), byte(code),
		byte(len(payload) >> 8), byte(len(payload)), 0x01, 0x02, 0x03, 0x04}
	b = append(b, testDst[:]...)
	b = append(b, testSrc[:]...)
	b = append(b, opts...)
	return append(b, payload...)
}

// with returns a copy of b with byte i set to v.
func with(b []byte, i int, v byte) []byte {
	c := bytes.Clone(b)
	c[i] = v
	return c
}

func TestDecode(t *testing.T) {
	data := testPDU(TypeData, 0, 0, nil, []byte("payload"))
	maxPDU := testPDU(TypeData, 0, 0, make([]byte, MaxOptionsLen), make([]byte, MaxPayload))
	tooBig := append(bytes.Clone(maxPDU), 0)
	tests := []struct {
		name    string
		in      []byte
		want    Header // checked when wantErr is nil
		wantErr error
	}{
		{"data", data, Header{Type: TypeData, TTL: 32, Sequence: 0x01020304, Dst: testDst, Src: testSrc, Payload: []byte("payload")}, nil},
		{"no payload", testPDU(TypeKeepalive, 0, 0, nil, nil), Header{Type: TypeKeepalive, TTL: 32, Sequence: 0x01020304, Dst: testDst, Src: testSrc}, nil},
		{"ttl 0 decodes (routers decide)", with(data, 3, 0), Header{Type: TypeData, Sequence: 0x01020304, Dst: testDst, Src: testSrc, Payload: []byte("payload")}, nil},
		{"largest PDU", maxPDU, Header{Type: TypeData, TTL: 32, Sequence: 0x01020304, Dst: testDst, Src: testSrc, Options: make([]byte, MaxOptionsLen), Payload: make([]byte, MaxPayload)}, nil},

		{"nil", nil, Header{}, ErrShort},
		{"75 bytes", data[:75], Header{}, ErrShort},
		{"larger than MaxPDU", tooBig, Header{}, ErrTooBig},

		{"version 0", with(data, 0, 0), Header{}, ErrVersion},
		{"version 2", with(data, 0, 2), Header{}, ErrVersion},
		{"QUIC short header", with(data, 0, 0x41), Header{}, ErrVersion},
		{"QUIC long header", with(data, 0, 0xc1), Header{}, ErrVersion},

		{"header length 0", with(data, 1, 0), Header{}, ErrHeaderLen},
		{"header length 18", with(data, 1, 18), Header{}, ErrHeaderLen},
		{"header length 64", append(with(data, 1, 64), make([]byte, 256)...), Header{}, ErrHeaderLen},
		{"header length 255", with(data, 1, 255), Header{}, ErrHeaderLen},
		{"header length beyond datagram", with(data, 1, 20), Header{}, ErrLength},

		{"payload length too large", with(data, 7, 8), Header{}, ErrLength},
		{"payload length too small", with(data, 7, 6), Header{}, ErrLength},
		{"payload length high byte", with(data, 6, 1), Header{}, ErrLength},
		{"trailing byte", append(bytes.Clone(data), 0), Header{}, ErrLength},

		{"unknown type 8", with(data, 2, 8), Header{}, ErrUnknownType},
		{"unknown type 0xff", with(data, 2, 0xff), Header{}, ErrUnknownType},

		{"code on DATA", with(data, 5, byte(CodeNoRoute)), Header{}, ErrCode},
		{"NAK without code", testPDU(TypeNAK, 0, CodeNone, nil, nil), Header{}, ErrCode},
		{"NAK with unknown code accepted", testPDU(TypeNAK, 0, 99, nil, nil), Header{Type: TypeNAK, TTL: 32, Code: 99, Sequence: 0x01020304, Dst: testDst, Src: testSrc}, nil},

		{"MULTICAST and NO_NAK kept", with(data, 4, 0x03), Header{Type: TypeData, TTL: 32, Flags: FlagMulticast | FlagNoNAK, Sequence: 0x01020304, Dst: testDst, Src: testSrc, Payload: []byte("payload")}, nil},
		{"reserved flags ignored", with(data, 4, 0xfc), Header{Type: TypeData, TTL: 32, Sequence: 0x01020304, Dst: testDst, Src: testSrc, Payload: []byte("payload")}, nil},
		{"reserved and MULTICAST", with(data, 4, 0x81), Header{Type: TypeData, TTL: 32, Flags: FlagMulticast, Sequence: 0x01020304, Dst: testDst, Src: testSrc, Payload: []byte("payload")}, nil},

		{"options: Pad1 only", testPDU(TypeData, 0, 0, []byte{0, 0, 0, 0}, nil), Header{Type: TypeData, TTL: 32, Sequence: 0x01020304, Dst: testDst, Src: testSrc, Options: []byte{0, 0, 0, 0}}, nil},
		{"options: TLV ends at the header's end", testPDU(TypeData, 0, 0, []byte{9, 2, 'h', 'i'}, nil), Header{Type: TypeData, TTL: 32, Sequence: 0x01020304, Dst: testDst, Src: testSrc, Options: []byte{9, 2, 'h', 'i'}}, nil},
		{"options: unknown types skipped", testPDU(TypeData, 0, 0, []byte{0xfe, 1, 0, 0xff, 0, 0, 0, 0}, nil), Header{Type: TypeData, TTL: 32, Sequence: 0x01020304, Dst: testDst, Src: testSrc, Options: []byte{0xfe, 1, 0, 0xff, 0, 0, 0, 0}}, nil},
		{"options: TLV overruns by one", testPDU(TypeData, 0, 0, []byte{9, 3, 'h', 'i'}, nil), Header{}, ErrOption},
		{"options: TLV overruns into payload", testPDU(TypeData, 0, 0, []byte{9, 3, 'h', 'i'}, []byte("x")), Header{}, ErrOption},
		{"options: type without length", testPDU(TypeData, 0, 0, []byte{0, 0, 0, 9}, nil), Header{}, ErrOption},
		{"options: length 255", testPDU(TypeData, 0, 0, []byte{9, 255, 0, 0}, nil), Header{}, ErrOption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sentinel := Header{TTL: 77, Payload: []byte("untouched")}
			got := sentinel
			err := Decode(tt.in, &got)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Decode error = %v, want %v", err, tt.wantErr)
				}
				if !equalHeader(&got, &sentinel) {
					t.Fatalf("Decode changed the header on error: %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !equalHeader(&got, &tt.want) {
				t.Fatalf("Decode =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

// TestDecodeAliasing checks that Decode keeps nothing beyond its input: the
// slices it returns end at len(b), and appending to them cannot write into
// the caller's spare capacity.
func TestDecodeAliasing(t *testing.T) {
	pdu := testPDU(TypeData, 0, 0, []byte{9, 2, 'h', 'i'}, []byte("abc"))
	buf := make([]byte, len(pdu), len(pdu)+64)
	copy(buf, pdu)
	var h Header
	if err := Decode(buf, &h); err != nil {
		t.Fatal(err)
	}
	if cap(h.Payload) != len(h.Payload) || cap(h.Options) != len(h.Options) {
		t.Fatalf("cap(Payload)=%d len=%d, cap(Options)=%d len=%d: slices reach past the input",
			cap(h.Payload), len(h.Payload), cap(h.Options), len(h.Options))
	}
	_ = append(h.Payload, 'X')
	_ = append(h.Options, 'X')
	if spare := buf[len(buf) : len(buf)+1]; spare[0] != 0 {
		t.Fatal("append to Payload wrote into the caller's buffer")
	}
	if !bytes.Equal(buf[:len(pdu)], pdu) {
		t.Fatal("append to Options wrote into the payload")
	}
	// Names are copies: changing the buffer after Decode does not change them.
	buf[12] ^= 0xff
	if h.Dst != testDst {
		t.Fatal("Dst aliases the buffer")
	}
}

func TestValidateAppend(t *testing.T) {
	ok := Header{Type: TypeData, TTL: 5, Sequence: 9, Dst: testDst, Src: testSrc, Payload: []byte("p")}
	set := func(f func(h *Header)) Header {
		h := ok
		f(&h)
		return h
	}
	tests := []struct {
		name    string
		h       Header
		want    []byte // the expected encoding, when wantErr is nil (nil: skip)
		wantErr error
	}{
		{"data", ok, nil, nil},
		{"payload of MaxPayload", set(func(h *Header) { h.Payload = make([]byte, MaxPayload) }), nil, nil},
		{"payload of MaxPayload+1", set(func(h *Header) { h.Payload = make([]byte, MaxPayload+1) }), nil, ErrTooBig},
		{"options of MaxOptionsLen", set(func(h *Header) { h.Options = make([]byte, MaxOptionsLen) }), nil, nil},
		{"options of MaxOptionsLen+1", set(func(h *Header) { h.Options = make([]byte, MaxOptionsLen+1) }), nil, ErrHeaderLen},
		{"option overrun", set(func(h *Header) { h.Options = []byte{9, 4, 1, 2} }), nil, ErrOption},
		{"option cut after type", set(func(h *Header) { h.Options = []byte{9} }), nil, ErrOption},
		{"unknown type", set(func(h *Header) { h.Type = 8 }), nil, ErrUnknownType},
		{"code on DATA", set(func(h *Header) { h.Code = CodeTooBig }), nil, ErrCode},
		{"NAK without code", set(func(h *Header) { h.Type = TypeNAK }), nil, ErrCode},
		{"NAK with code", set(func(h *Header) { h.Type, h.Code = TypeNAK, CodeTooBig }), nil, nil},
		{
			"reserved flags sent as 0",
			set(func(h *Header) { h.Flags = 0xff }),
			func() []byte {
				b := testPDU(TypeData, FlagMulticast|FlagNoNAK, 0, nil, []byte("p"))
				b[3], b[8], b[9], b[10], b[11] = 5, 0, 0, 0, 9
				return b
			}(),
			nil,
		},
		{
			"options padded with Pad1",
			set(func(h *Header) { h.Options = []byte{9, 3, 'a', 'b', 'c'}; h.Sequence = 0x01020304; h.TTL = 32 }),
			testPDU(TypeData, 0, 0, []byte{9, 3, 'a', 'b', 'c', 0, 0, 0}, []byte("p")),
			nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.h.Validate(); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Validate = %v, want %v", err, tt.wantErr)
			}
			prefix := []byte("prefix")
			b, err := tt.h.Append(bytes.Clone(prefix))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Append error = %v, want %v", err, tt.wantErr)
			}
			if !bytes.HasPrefix(b, prefix) {
				t.Fatalf("Append lost the prefix")
			}
			if tt.wantErr != nil {
				if len(b) != len(prefix) {
					t.Fatalf("Append wrote %d bytes despite the error", len(b)-len(prefix))
				}
				return
			}
			enc := b[len(prefix):]
			if len(enc) != tt.h.Len() || tt.h.HeaderSize()%4 != 0 || int(enc[1])*4 != tt.h.HeaderSize() {
				t.Fatalf("encoded %d bytes, header length %d words; Len()=%d HeaderSize()=%d", len(enc), enc[1], tt.h.Len(), tt.h.HeaderSize())
			}
			if tt.want != nil && !bytes.Equal(enc, tt.want) {
				t.Fatalf("Append =\n%x\nwant\n%x", enc, tt.want)
			}
			var back Header
			if err := Decode(enc, &back); err != nil {
				t.Fatalf("Decode(Append(h)): %v", err)
			}
			if back.Flags != tt.h.Flags&knownFlags || back.Sequence != tt.h.Sequence || !bytes.Equal(back.Payload, tt.h.Payload) {
				t.Fatalf("Decode(Append(h)) = %+v", back)
			}
			m, err := tt.h.Marshal()
			if err != nil || !bytes.Equal(m, enc) {
				t.Fatalf("Marshal = %x, %v; want %x", m, err, enc)
			}
		})
	}
}

func TestStrings(t *testing.T) {
	tests := []struct{ got, want string }{
		{TypeData.String(), "DATA"},
		{TypeKeepalive.String(), "KEEPALIVE"},
		{Type(8).String(), "TYPE(8)"},
		{CodeTTLExpired.String(), "TTL_EXPIRED"},
		{CodeMalformed.String(), "MALFORMED"},
		{Code(7).String(), "CODE(7)"},
		{Flags(0).String(), "0"},
		{(FlagMulticast | FlagNoNAK).String(), "MULTICAST|NO_NAK"},
		{Flags(0x84).String(), "0x84"},
		{Flags(0x82).String(), "NO_NAK|0x80"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

// TestNoAllocs pins the zero-allocation promise of Decode and of Append into
// a buffer with room (the benchmarks measure speed).
func TestNoAllocs(t *testing.T) {
	raw := testPDU(TypeData, 0, 0, []byte{9, 2, 'h', 'i'}, make([]byte, 1200))
	var h Header
	if n := testing.AllocsPerRun(100, func() {
		if err := Decode(raw, &h); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Decode allocates %v times", n)
	}
	buf := make([]byte, 0, len(raw))
	if n := testing.AllocsPerRun(100, func() {
		var err error
		if buf, err = h.Append(buf[:0]); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Append allocates %v times", n)
	}
	bad := with(raw, 0, 9)
	if n := testing.AllocsPerRun(100, func() { _ = Decode(bad, &h) }); n != 0 {
		t.Errorf("Decode of a bad PDU allocates %v times", n)
	}
}
