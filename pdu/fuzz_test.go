package pdu

import (
	"bytes"
	"github.com/gdpnet/gdpnet/internal/fuzzseed"
	"testing"
)

// seedVectors adds every golden vector's bytes to f's corpus.
func seedVectors(f *testing.F) []vector {
	vs := loadVectors(f)
	for _, v := range vs {
		fuzzseed.Add(f, v.hex(f, "hex"))
		if _, ok := v.fields["canonical"]; ok {
			fuzzseed.Add(f, v.hex(f, "canonical"))
		}
	}
	return vs
}

// FuzzDecode checks that Decode never panics, reads and keeps nothing beyond
// its input, and that whatever decodes re-encodes to the same bytes (but for
// the reserved flag bits, which are sent as 0) and decodes to the same header.
func FuzzDecode(f *testing.F) {
	seedVectors(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		var h Header
		err := Decode(in, &h)

		// The same bytes followed by garbage in the slice's spare capacity
		// must decode identically: Decode does not look past len(b).
		padded := make([]byte, len(in), len(in)+64)
		copy(padded, in)
		for i := len(in); i < cap(padded); i++ {
			padded[:cap(padded)][i] = 0xa5
		}
		var h2 Header
		if err2 := Decode(padded, &h2); err2 != err || (err == nil && !equalHeader(&h, &h2)) {
			t.Fatalf("spare capacity changed the result: %v / %v", err, err2)
		}
		if err != nil {
			if n, ok := NAK(in, CodeMalformed, Name{1}); ok {
				if _, err := n.Marshal(); err != nil {
					t.Fatalf("NAK about a malformed PDU does not encode: %v", err)
				}
			}
			return
		}
		if cap(h2.Payload) != len(h2.Payload) || cap(h2.Options) != len(h2.Options) {
			t.Fatal("decoded slices reach past the input")
		}
		if !inside(h.Payload, in) || !inside(h.Options, in) {
			t.Fatal("decoded slices do not alias the input")
		}
		_, _ = h.Reporter()
		if len(in) > 12 {
			_, _ = h.Option(in[12])
		}

		enc, err := h.Marshal()
		if err != nil {
			t.Fatalf("decoded header does not encode: %v", err)
		}
		want := bytes.Clone(in)
		want[4] &= byte(knownFlags)
		if !bytes.Equal(enc, want) {
			t.Fatalf("encode(decode(b)) =\n%x\nwant\n%x", enc, want)
		}
		var back Header
		if err := Decode(enc, &back); err != nil || !equalHeader(&back, &h) {
			t.Fatalf("decode(encode(h)) = %+v, %v; want %+v", back, err, h)
		}
		if n, ok := NAK(in, CodeNoRoute, Name{1}); ok {
			if _, err := n.Marshal(); err != nil {
				t.Fatalf("NAK does not encode: %v", err)
			}
		}
	})
}

// inside reports whether s is empty or lies within b.
func inside(s, b []byte) bool {
	if len(s) == 0 {
		return true
	}
	for i := 0; i+len(s) <= len(b); i++ {
		if &b[i] == &s[0] {
			return true
		}
	}
	return false
}

// FuzzHeader builds a header from arbitrary fields and checks that whatever
// validates encodes, and decodes back to the same header (options padded,
// reserved flags cleared).
func FuzzHeader(f *testing.F) {
	vs := loadVectors(f)
	for _, v := range vs {
		if _, bad := v.fields["error"]; bad {
			continue
		}
		h := v.header(f)
		fuzzseed.Add(f, uint8(h.Type), h.TTL, uint8(h.Flags), uint8(h.Code), h.Sequence, h.Dst[:], h.Src[:], h.Options, h.Payload)
	}
	fuzzseed.Add(f, uint8(9), uint8(0), uint8(0xff), uint8(0), uint32(0), []byte{}, []byte{1}, []byte{5, 9}, []byte{})
	f.Fuzz(func(t *testing.T, typ, ttl, flags, code uint8, seq uint32, dst, src, opts, payload []byte) {
		h := Header{Type: Type(typ), TTL: ttl, Flags: Flags(flags), Code: Code(code), Sequence: seq, Options: opts, Payload: payload}
		copy(h.Dst[:], dst)
		copy(h.Src[:], src)
		prefix := []byte{0xee}
		b, err := h.Append(prefix)
		if err != nil {
			if len(b) != 1 || b[0] != 0xee {
				t.Fatal("Append wrote despite an error")
			}
			return
		}
		var back Header
		if err := Decode(b[1:], &back); err != nil {
			t.Fatalf("Decode(Append(h)): %v", err)
		}
		want := h
		want.Flags &= knownFlags
		want.Options = nilIfEmpty(append(bytes.Clone(opts), make([]byte, h.HeaderSize()-HeaderLen-len(opts))...))
		if !equalHeader(&back, &want) {
			t.Fatalf("decode(encode(h)) =\n %+v\nwant\n %+v", back, want)
		}
	})
}

// FuzzParseName checks that ParseName never panics and accepts only the
// strings String produces.
func FuzzParseName(f *testing.F) {
	for _, v := range loadVectors(f) {
		if s, ok := v.fields["dst"]; ok {
			fuzzseed.Add(f, s)
			fuzzseed.Add(f, s[:42]+"B")
			fuzzseed.Add(f, s+"=")
		}
	}
	fuzzseed.Add(f, "")
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseName(s)
		if err != nil {
			return
		}
		if got := n.String(); got != s {
			t.Fatalf("ParseName(%q) accepted a non-canonical form of %q", s, got)
		}
	})
}
