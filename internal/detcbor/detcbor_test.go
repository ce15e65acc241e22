package detcbor

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

type msg struct {
	A uint64   `cbor:"1,keyasint"`
	B []string `cbor:"2,keyasint,omitempty"`
}

func TestUnmarshalStrict(t *testing.T) {
	c := Must(Limits{MaxArrayElements: 16, MaxMapPairs: 16, MaxNestedLevels: 4})
	tests := []struct {
		name          string
		hex           string
		want          msg
		wantErr       bool
		wantCanonical bool // the error is ErrNotCanonical
	}{
		{name: "canonical", hex: "a201181802816161", want: msg{A: 24, B: []string{"a"}}},
		{name: "long integer form", hex: "a20119001802816161", wantErr: true, wantCanonical: true},
		{name: "keys out of order", hex: "a202816161011818", wantErr: true, wantCanonical: true},
		{name: "duplicate key", hex: "a201010102", wantErr: true},
		{name: "unknown key", hex: "a1030a", wantErr: true},
		{name: "indefinite array", hex: "a1029f6161ff", wantErr: true},
		{name: "tag", hex: "a101c11a00000001", wantErr: true},
		{name: "array over limit", hex: "a10291" + strings.Repeat("6161", 17), wantErr: true},
		{name: "invalid utf-8", hex: "a1028161ff", wantErr: true},
		{name: "truncated", hex: "a20118", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := hex.DecodeString(tt.hex)
			if err != nil {
				t.Fatal(err)
			}
			var got msg
			err = c.UnmarshalStrict(b, &got)
			if (err != nil) != tt.wantErr {
				t.Fatalf("UnmarshalStrict(%s) error = %v, wantErr %v", tt.hex, err, tt.wantErr)
			}
			if errors.Is(err, ErrNotCanonical) != tt.wantCanonical {
				t.Fatalf("UnmarshalStrict(%s) error = %v, want ErrNotCanonical: %v", tt.hex, err, tt.wantCanonical)
			}
			if err != nil {
				return
			}
			if got.A != tt.want.A || len(got.B) != len(tt.want.B) || got.B[0] != tt.want.B[0] {
				t.Fatalf("UnmarshalStrict(%s) = %+v, want %+v", tt.hex, got, tt.want)
			}
			again, err := c.Marshal(got)
			if err != nil || hex.EncodeToString(again) != tt.hex {
				t.Fatalf("Marshal = %x, %v; want %s", again, err, tt.hex)
			}
		})
	}
}

func TestNewRefusesBadLimits(t *testing.T) {
	if _, err := New(Limits{MaxNestedLevels: 1 << 30}); err == nil {
		t.Fatal("New accepted a nesting bound the library refuses")
	}
}

func TestUnmarshalSkipsCanonicalCheck(t *testing.T) {
	c := Must(Limits{})
	var m msg
	b, _ := hex.DecodeString("a101190018")
	if err := c.Unmarshal(b, &m); err != nil || m.A != 24 {
		t.Fatalf("Unmarshal = %+v, %v; want A=24", m, err)
	}
	if err := c.UnmarshalStrict(b, &m); !errors.Is(err, ErrNotCanonical) {
		t.Fatalf("UnmarshalStrict error = %v, want ErrNotCanonical", err)
	}
}
