package pdu

import (
	"bytes"
	"errors"
	"testing"
)

func TestOption(t *testing.T) {
	tests := []struct {
		name   string
		opts   []byte
		typ    uint8
		want   []byte
		wantOK bool
	}{
		{"absent", nil, 5, nil, false},
		{"found", []byte{5, 2, 'h', 'i'}, 5, []byte("hi"), true},
		{"after Pad1 and unknown", []byte{0, 0x7f, 1, 'x', 5, 1, 'y', 0}, 5, []byte("y"), true},
		{"first of two", []byte{5, 1, 'a', 5, 1, 'b'}, 5, []byte("a"), true},
		{"zero length", []byte{5, 0, 0, 0}, 5, []byte{}, true},
		{"zero length, last", []byte{5, 0}, 5, []byte{}, true}, // mutant: i+2 > len → >=
		{"Pad1 is not an option", []byte{0, 0, 0, 0}, OptPad1, nil, false},
		{"overrun", []byte{5, 9, 'h'}, 5, nil, false},
		{"behind an overrun", []byte{6, 9, 5, 1, 'z'}, 5, nil, false},
		{"type without length", []byte{5}, 5, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := Header{Options: tt.opts}
			got, ok := h.Option(tt.typ)
			if ok != tt.wantOK || !bytes.Equal(got, tt.want) {
				t.Fatalf("Option(%d) = %x, %v; want %x, %v", tt.typ, got, ok, tt.want, tt.wantOK)
			}
			if ok && cap(got) != len(got) {
				t.Fatalf("Option value has spare capacity %d over its length %d", cap(got), len(got))
			}
		})
	}
}

func TestReporter(t *testing.T) {
	r := Name{1, 2, 3}
	tests := []struct {
		name   string
		opts   []byte
		wantOK bool
	}{
		{"present", append([]byte{OptReporter, NameLen}, r[:]...), true},
		{"absent", []byte{9, 0}, false},
		{"wrong length", append([]byte{OptReporter, NameLen - 1}, r[:NameLen-1]...), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := Header{Options: tt.opts}
			got, ok := h.Reporter()
			if ok != tt.wantOK || (ok && got != r) {
				t.Fatalf("Reporter() = %v, %v", got, ok)
			}
		})
	}
}

func TestAddOption(t *testing.T) {
	tests := []struct {
		name    string
		start   []byte
		typ     uint8
		val     []byte
		want    []byte
		wantErr bool
		is      error
	}{
		{"first", nil, 5, []byte("ab"), []byte{5, 2, 'a', 'b'}, false, nil},
		{"second", []byte{5, 0}, 6, []byte("c"), []byte{5, 0, 6, 1, 'c'}, false, nil},
		{"empty value", nil, 5, nil, []byte{5, 0}, false, nil},
		{"fills the header exactly", nil, 5, make([]byte, MaxOptionsLen-2), append([]byte{5, MaxOptionsLen - 2}, make([]byte, MaxOptionsLen-2)...), false, nil},
		{"one byte too many", nil, 5, make([]byte, MaxOptionsLen-1), nil, true, ErrHeaderLen},
		{"type 0 is padding", nil, OptPad1, []byte("x"), nil, true, nil},
		{"value over 255", nil, 5, make([]byte, 256), nil, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := Header{Type: TypeData, Options: bytes.Clone(tt.start)}
			err := h.AddOption(tt.typ, tt.val)
			if (err != nil) != tt.wantErr || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Fatalf("AddOption error = %v, want error %v (%v)", err, tt.wantErr, tt.is)
			}
			if tt.wantErr {
				if !bytes.Equal(h.Options, tt.start) {
					t.Fatalf("AddOption changed Options on error: %x", h.Options)
				}
				return
			}
			if !bytes.Equal(h.Options, tt.want) {
				t.Fatalf("Options = %x, want %x", h.Options, tt.want)
			}
			if err := h.Validate(); err != nil {
				t.Fatalf("Validate after AddOption: %v", err)
			}
		})
	}
}

// TestAddOptionAfterDecode checks that adding an option to a decoded header
// never writes into the decoded buffer (its payload follows the options).
func TestAddOptionAfterDecode(t *testing.T) {
	b := testPDU(TypeData, 0, 0, []byte{5, 2, 'h', 'i'}, []byte("payload"))
	orig := bytes.Clone(b)
	var h Header
	if err := Decode(b, &h); err != nil {
		t.Fatal(err)
	}
	if err := h.AddOption(6, []byte("zz")); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, orig) {
		t.Fatal("AddOption wrote into the decoded buffer")
	}
}

// TestContentOption: the CONTENT option of a QUIC packet (vector
// data-quic) reads back as ContentQUIC; absent or of the wrong length it is
// 0 (an application message).
func TestContentOption(t *testing.T) {
	for _, v := range loadVectors(t) {
		if v.get(t, "name") != "data-quic" {
			continue
		}
		var h Header
		if err := Decode(v.hex(t, "hex"), &h); err != nil {
			t.Fatal(err)
		}
		if got := h.Content(); got != ContentQUIC {
			t.Fatalf("data-quic: content %d, want %d", got, ContentQUIC)
		}
		return
	}
	t.Fatal("no data-quic vector")
}

func TestContentOptionAbsentOrMalformed(t *testing.T) {
	var h Header
	if h.Content() != 0 {
		t.Fatal("no options: content not 0")
	}
	if err := h.AddOption(OptContent, []byte{ContentQUIC, 0}); err != nil {
		t.Fatal(err)
	}
	if h.Content() != 0 {
		t.Fatal("two-byte CONTENT taken as a content type")
	}
}
