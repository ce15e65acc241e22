package pdu

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestNameRoundTrip(t *testing.T) {
	names := []Name{{}, {0: 1}, {31: 0xff}}
	var all Name
	for i := range all {
		all[i] = 0xff
	}
	names = append(names, all)
	for range 200 {
		var n Name
		rand.Read(n[:])
		names = append(names, n)
	}
	for _, n := range names {
		s := n.String()
		if len(s) != NameStringLen || strings.ContainsAny(s, "+/=") {
			t.Fatalf("String() = %q: want 43 unpadded base64url characters", s)
		}
		p, err := ParseName(s)
		if err != nil || p != n {
			t.Fatalf("ParseName(%q) = %v, %v; want %v", s, p, err, n)
		}
	}
	if got := (Name{}).String(); got != strings.Repeat("A", 43) {
		t.Fatalf("zero name prints %q", got)
	}
	if all.String() != strings.Repeat("_", 42)+"8" {
		t.Fatalf("all-ones name prints %q", all.String())
	}
}

func TestParseNameRejects(t *testing.T) {
	good := Name{0: 0xfb, 1: 0xff, 31: 0x42}.String() // starts with "-__" in base64url
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"42 characters", good[:42]},
		{"44 characters", good + "A"},
		{"padded", good[:42] + "="},
		{"padded to 44", good + "="},
		{"standard alphabet +", "+" + good[1:]},
		{"standard alphabet /", "/" + good[1:]},
		{"non-zero trailing bits", good[:42] + "B"},
		{"space", " " + good[1:]},
		{"newline inside", good[:20] + "\n" + good[21:]},
		{"carriage return at end", good[:42] + "\r"},
		// 42 characters that decode (the zero name's, trailing bits zero)
		// and a newline the decoder skips: only the byte count refuses it
		// (mutant: the count check dropped).
		{"newline inside the zero name", strings.Repeat("A", 20) + "\n" + strings.Repeat("A", 22)},
		{"non-ASCII", "é" + good[2:]},
		{"hex instead", strings.Repeat("0", 64)},
		{"huge", strings.Repeat("A", 1<<20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := ParseName(tt.in)
			if err == nil {
				t.Fatalf("ParseName(%q) = %v, want an error", tt.in, n)
			}
			if !errors.Is(err, ErrName) {
				t.Fatalf("error %v does not wrap ErrName", err)
			}
			if len(err.Error()) > 200 {
				t.Fatalf("error message of %d bytes", len(err.Error()))
			}
			if !n.IsZero() {
				t.Fatal("ParseName returned a name with its error")
			}
		})
	}
}

func TestNameText(t *testing.T) {
	type doc struct {
		Peer Name `json:"peer"`
	}
	in := doc{Peer: Name{0: 7, 31: 9}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"peer":"` + in.Peer.String() + `"}`; string(b) != want {
		t.Fatalf("json = %s, want %s", b, want)
	}
	var out doc
	if err := json.Unmarshal(b, &out); err != nil || out != in {
		t.Fatalf("round trip = %v, %v", out, err)
	}
	keep := Name{1}
	if err := keep.UnmarshalText([]byte("short")); !errors.Is(err, ErrName) {
		t.Fatalf("UnmarshalText(short) = %v", err)
	}
	if keep != (Name{1}) {
		t.Fatal("UnmarshalText changed the name on error")
	}
}
