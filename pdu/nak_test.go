package pdu

import (
	"bytes"
	"errors"
	"testing"
)

func TestNAK(t *testing.T) {
	reporter := Name{0: 0xee, 31: 0xee}
	data := testPDU(TypeData, 0, 0, nil, bytes.Repeat([]byte{0xab}, 500))
	tests := []struct {
		name     string
		orig     []byte
		code     Code
		wantOK   bool
		wantEcho int
	}{
		{"long DATA: 128 bytes echoed", data, CodeNoRoute, true, MaxNAKEcho},
		{"TTL expired", with(data, 3, 0), CodeTTLExpired, true, MaxNAKEcho},
		{"bare header: all 76 echoed", testPDU(TypeEchoRequest, 0, 0, nil, nil), CodeNoRoute, true, HeaderLen},
		{"100 bytes: all echoed", testPDU(TypeData, 0, 0, nil, make([]byte, 24)), CodeTooBig, true, 100},
		{"malformed length field still NAKed", with(data, 6, 0), CodeMalformed, true, MaxNAKEcho},
		{"MULTICAST does not stop a NAK", testPDU(TypeData, FlagMulticast, 0, nil, nil), CodeForbidden, true, HeaderLen},
		{"never about a NAK", testPDU(TypeNAK, 0, CodeNoRoute, nil, nil), CodeNoRoute, false, 0},
		{"NO_NAK honoured", testPDU(TypeData, FlagNoNAK, 0, nil, []byte("x")), CodeNoRoute, false, 0},
		{"NO_NAK with other flags", testPDU(TypeData, 0xff, 0, nil, nil), CodeRateLimited, false, 0},
		{"too short to name a source", data[:HeaderLen-1], CodeMalformed, false, 0},
		{"another version", with(data, 0, 2), CodeMalformed, false, 0},
		{"zero source name", func() []byte {
			b := bytes.Clone(data)
			clear(b[44:76])
			return b
		}(), CodeNoRoute, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := bytes.Clone(tt.orig)
			n, ok := NAK(orig, tt.code, reporter)
			if ok != tt.wantOK {
				t.Fatalf("NAK ok = %v, want %v", ok, tt.wantOK)
			}
			if !ok {
				return
			}
			if n.Type != TypeNAK || n.Code != tt.code || n.TTL != DefaultTTL || n.Flags != 0 {
				t.Fatalf("NAK = type %v code %v ttl %d flags %v", n.Type, n.Code, n.TTL, n.Flags)
			}
			if n.Sequence != 0x01020304 || n.Dst != testSrc || n.Src != reporter {
				t.Fatalf("NAK seq %#x dst %v src %v: want the original's sequence, to its source, from the reporter", n.Sequence, n.Dst, n.Src)
			}
			if rep, ok := n.Reporter(); !ok || rep != reporter {
				t.Fatalf("Reporter() = %v, %v", rep, ok)
			}
			if len(n.Payload) != tt.wantEcho || !bytes.Equal(n.Payload, tt.orig[:tt.wantEcho]) {
				t.Fatalf("NAK echoes %d bytes, want the first %d of the original", len(n.Payload), tt.wantEcho)
			}
			// The echo is a copy: the router may reuse its receive buffer.
			clear(orig)
			if !bytes.Equal(n.Payload, tt.orig[:tt.wantEcho]) {
				t.Fatal("NAK payload aliases the original buffer")
			}
			b, err := n.Marshal()
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			var back Header
			if err := Decode(b, &back); err != nil {
				t.Fatalf("Decode(NAK): %v", err)
			}
			if !equalHeader(&back, &n) {
				t.Fatalf("Decode(Marshal(NAK)) =\n %+v\nwant\n %+v", back, n)
			}
			if _, again := NAK(b, CodeNoRoute, reporter); again {
				t.Fatal("a NAK about the NAK was allowed")
			}
		})
	}
}

func TestNAKWithoutCodeIsNotEncoded(t *testing.T) {
	n, ok := NAK(testPDU(TypeData, 0, 0, nil, nil), CodeNone, Name{1})
	if !ok {
		t.Fatal("NAK refused")
	}
	if _, err := n.Marshal(); !errors.Is(err, ErrCode) {
		t.Fatalf("Marshal of a NAK with code NONE: %v, want ErrCode", err)
	}
}
