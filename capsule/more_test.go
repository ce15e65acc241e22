package capsule

import (
	"bytes"
	"errors"
	"testing"
)

func TestUnmarshalHeartbeatRejects(t *testing.T) {
	hb := &Heartbeat{Capsule: testName, Seqno: 3, Root: Hash{3}, Time: 7, Holes: []uint64{2}}
	hb.Sign(testKey)
	good := hb.Marshal()
	body := hb.Body()
	sign1 := func(protected, unprotected, payload, sig []byte) []byte {
		b := []byte{tagSign1, 0x84}
		b = appendHead(b, majBytes, uint64(len(protected)))
		b = append(b, protected...)
		b = append(b, unprotected...)
		b = appendHead(b, majBytes, uint64(len(payload)))
		b = append(b, payload...)
		b = appendHead(b, majBytes, uint64(len(sig)))
		return append(b, sig...)
	}
	if !bytes.Equal(sign1(protectedEdDSA, []byte{0xa0}, body, hb.Sig), good) {
		t.Fatal("test encoder differs")
	}
	tests := []struct {
		name string
		in   []byte
	}{
		{"untagged", good[1:]},
		{"other alg", sign1([]byte{0xa1, 0x01, 0x26}, []byte{0xa0}, body, hb.Sig)},
		{"unprotected header set", sign1(protectedEdDSA, []byte{0xa1, 0x04, 0x41, 0x00}, body, hb.Sig)},
		{"short signature", sign1(protectedEdDSA, []byte{0xa0}, body, hb.Sig[:63])},
		{"body with a trailing byte", sign1(protectedEdDSA, []byte{0xa0}, append(bytes.Clone(body), 0), hb.Sig)},
		{"body with an empty holes array", sign1(protectedEdDSA, []byte{0xa0},
			append(append([]byte{0xa5}, body[1:len(body)-3]...), 0x05, 0x80), hb.Sig)},
		{"body with an unknown key", sign1(protectedEdDSA, []byte{0xa0},
			append(append([]byte{0xa6}, body[1:]...), 0x08, 0x01), hb.Sig)},
		{"hole beyond seqno", sign1(protectedEdDSA, []byte{0xa0},
			append(bytes.Clone(body[:len(body)-1]), 0x04), hb.Sig)},
		{"empty", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := UnmarshalHeartbeat(tt.in); !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
}

func TestIsBranch(t *testing.T) {
	hb := func(epoch, base uint64) *Heartbeat { return &Heartbeat{Epoch: epoch, Base: base} }
	tests := []struct {
		name   string
		a, b   *Heartbeat
		size   uint64
		branch bool
	}{
		{"same epoch", hb(0, 0), hb(0, 0), 5, false},
		{"next epoch, beyond its base", hb(0, 0), hb(1, 4), 5, true},
		{"next epoch, at its base", hb(0, 0), hb(1, 5), 5, false},
		{"order does not matter", hb(1, 4), hb(0, 0), 5, true},
		{"epochs two apart prove nothing", hb(0, 0), hb(2, 10), 5, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsBranch(tt.a, tt.b, tt.size); got != tt.branch {
				t.Fatalf("IsBranch = %v, want %v", got, tt.branch)
			}
		})
	}
}

// Overlay must describe exactly the tree of the shared prefix plus the new
// leaves.
func TestOverlay(t *testing.T) {
	d := entries(50)
	var base, want MemTree
	for i, e := range d {
		want.Append(e)
		if i < 20 {
			base.Append(e)
		}
	}
	for i := 20; i < 30; i++ { // the base continues differently
		base.Append(Hash{byte(i)})
	}
	o := &Overlay{Base: &base, Prefix: 20, Leaves: d[20:]}
	for n := uint64(1); n <= 50; n++ {
		got, err := RootAt(o, n)
		if err != nil {
			t.Fatal(err)
		}
		if w, _ := RootAt(&want, n); got != w {
			t.Fatalf("root at %d differs", n)
		}
	}
	if _, err := o.Node(0, 50); err == nil {
		t.Fatal("node beyond the overlay served")
	}
	var eq *EquivocationError
	err := error(&EquivocationError{Evidence: testEvidence(t)})
	if !errors.As(err, &eq) || !errors.Is(err, ErrEquivocation) || eq.Error() == "" {
		t.Fatal("EquivocationError does not wrap ErrEquivocation")
	}
}
