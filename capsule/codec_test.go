package capsule

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/gdpnet/gdpnet/certs"

	"github.com/gdpnet/gdpnet/pdu"
)

var (
	testName = pdu.Name(sha256.Sum256([]byte("gdpnet test capsule")))
	testKey  = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x42}, 32))
	testInfo = Info{Name: testName, Writer: testKey.Public().(ed25519.PublicKey)}
)

// The hand-written record codec must produce exactly what the library's
// deterministic mode produces for the same map.
func TestRecordMatchesLibraryEncoding(t *testing.T) {
	prev := Hash(sha256.Sum256([]byte("prev")))
	for _, r := range []Record{
		NewRecord(testName, 1, 0, Hash{}, nil),
		NewRecord(testName, 23, 23, prev, []byte("x")),
		NewRecord(testName, 24, 1<<40, prev, bytes.Repeat([]byte{7}, 255)),
		NewRecord(testName, 1<<32, 1<<62, prev, bytes.Repeat([]byte{7}, 70000)),
		NewHole(testName, 5, prev),
	} {
		m := map[int]any{keyCapsule: r.Capsule[:], keySeqno: r.Seqno, keyPrev: r.Prev[:]}
		if !r.Hole {
			m[keyTime] = uint64(r.Time)
			m[keyDataHash] = r.DataHash[:]
		}
		hdr, err := codec.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Hole {
			m[keyData] = append([]byte{}, r.Data...)
		}
		wire, _ := codec.Marshal(m)
		if got := r.AppendHeader(nil); !bytes.Equal(got, hdr) {
			t.Fatalf("seqno %d header\n got %x\nwant %x", r.Seqno, got, hdr)
		}
		if got := r.Marshal(); !bytes.Equal(got, wire) || r.EncodedLen() != len(wire) {
			t.Fatalf("seqno %d wire differs from the library's", r.Seqno)
		}
		if r.Hash() != Hash(sha256.Sum256(hdr)) {
			t.Fatalf("seqno %d hash", r.Seqno)
		}
		back, err := UnmarshalRecord(wire)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(back.Marshal(), wire) {
			t.Fatal("round trip")
		}
	}
}

func TestUnmarshalRecordRejects(t *testing.T) {
	good := NewRecord(testName, 7, 1000, Hash{1}, []byte("data")).Marshal()
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"truncated", good[:len(good)-1], ErrMalformed},
		{"trailing byte", append(bytes.Clone(good), 0), ErrMalformed},
		{"array not map", mut(func(b []byte) []byte { b[0] = 0x86; return b }), ErrMalformed},
		{"wrong entry count", mut(func(b []byte) []byte { b[0] = 0xa5; return b }), ErrMalformed},
		{"keys out of order", mut(func(b []byte) []byte { b[1] = 0x02; return b }), ErrMalformed},
		{"short capsule", mut(func(b []byte) []byte { b[2] = 0x58; b[3] = 0x1f; return b }), ErrMalformed},
		{"non-shortest seqno", append(append(bytes.Clone(good[:36]), 0x18, 0x07), good[37:]...), ErrMalformed},
		{"seqno zero", mut(func(b []byte) []byte { b[36] = 0x00; return b }), ErrMalformed},
		{"indefinite data", mut(func(b []byte) []byte { b[len(b)-5] = 0x5f; return b }), ErrMalformed},
		{"huge data length", append(bytes.Clone(good[:len(good)-5]), 0x5b, 0, 0, 0, 1, 0, 0, 0, 0), ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := UnmarshalRecord(tt.in); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestRecordVerify(t *testing.T) {
	r := NewRecord(testName, 1, 5, Hash{}, bytes.Repeat([]byte{1}, 100))
	if _, err := r.Verify(0); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Verify(99); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
	bad := r
	bad.Data = bytes.Repeat([]byte{2}, 100)
	if _, err := bad.Verify(0); !errors.Is(err, ErrBadDataHash) {
		t.Fatalf("tampered data: %v", err)
	}
	h := NewHole(testName, 2, Hash{})
	h.Data = []byte{1}
	if _, err := h.Verify(0); !errors.Is(err, ErrMalformed) {
		t.Fatalf("hole with data: %v", err)
	}
}

func TestHeartbeat(t *testing.T) {
	hb := &Heartbeat{Capsule: testName, Seqno: 9, Root: Hash{9}, Time: 12345, Holes: []uint64{3, 4}, Epoch: 1, Base: 2}
	hb.Sign(testKey)
	if err := hb.Verify(testName, testInfo.Writer); err != nil {
		t.Fatal(err)
	}
	w := hb.Marshal()
	if w[0] != 0xd2 {
		t.Fatalf("not a tagged COSE_Sign1: %x", w[:4])
	}
	back, err := UnmarshalHeartbeat(w)
	if err != nil || !back.Equal(hb) {
		t.Fatalf("round trip: %v", err)
	}
	// The library must decode it as a plain COSE_Sign1 array.
	var arr []cbor.RawMessage
	if err := cbor.Unmarshal(w[1:], &arr); err != nil || len(arr) != 4 {
		t.Fatalf("not a 4-element array: %v", err)
	}
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	tests := []struct {
		name   string
		mutate func(h *Heartbeat)
		key    ed25519.PublicKey
		want   error
	}{
		{"wrong key", func(h *Heartbeat) {}, other.Public().(ed25519.PublicKey), ErrBadSignature},
		{"root changed", func(h *Heartbeat) { h.Root[0] ^= 1 }, nil, ErrBadSignature},
		{"seqno changed", func(h *Heartbeat) { h.Seqno++ }, nil, ErrBadSignature},
		{"hole dropped", func(h *Heartbeat) { h.Holes = h.Holes[:1] }, nil, ErrBadSignature},
		{"other capsule", func(h *Heartbeat) { h.Capsule[0] ^= 1 }, nil, ErrWrongCapsule},
		{"holes unordered", func(h *Heartbeat) { h.Holes = []uint64{4, 3} }, nil, ErrMalformed},
		{"hole beyond seqno", func(h *Heartbeat) { h.Holes = []uint64{10} }, nil, ErrMalformed},
		{"base without epoch", func(h *Heartbeat) { h.Epoch = 0 }, nil, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := *hb
			h.Holes = append([]uint64(nil), hb.Holes...)
			tt.mutate(&h)
			key := tt.key
			if key == nil {
				key = testInfo.Writer
			}
			if err := h.Verify(testName, key); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	// A re-encoding with a non-canonical body is refused.
	if _, err := UnmarshalHeartbeat(append(w, 0)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("trailing byte: %v", err)
	}
}

func TestProofWire(t *testing.T) {
	p := &InclusionProof{Index: 3, Size: 10, Path: []Hash{{1}, {2}}}
	back, err := UnmarshalInclusionProof(p.Marshal())
	if err != nil || back.Index != 3 || back.Size != 10 || !hashesEqual(back.Path, p.Path) {
		t.Fatalf("inclusion round trip: %v", err)
	}
	c := &ConsistencyProof{Old: 3, New: 10, Path: []Hash{{3}}}
	cb, err := UnmarshalConsistencyProof(c.Marshal())
	if err != nil || cb.Old != 3 || cb.New != 10 || !hashesEqual(cb.Path, c.Path) {
		t.Fatalf("consistency round trip: %v", err)
	}
	if _, err := UnmarshalInclusionProof((&InclusionProof{Index: 10, Size: 10, Path: []Hash{}}).Marshal()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("index == size: %v", err)
	}
}

func TestParseInfo(t *testing.T) {
	owner := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32))
	m, err := certs.NewCapsule(owner, testInfo.Writer, "test capsule")
	if err != nil {
		t.Fatal(err)
	}
	raw := m.Marshal()
	info, err := ParseInfo(m.Name(), raw)
	if err != nil || info.Name != m.Name() || !info.Writer.Equal(testInfo.Writer) {
		t.Fatalf("ParseInfo: %v", err)
	}
	if _, err := ParseInfo(testName, raw); !errors.Is(err, ErrWrongCapsule) {
		t.Fatalf("metadata for another name: %v", err)
	}
	id, err := certs.NewIdentity(certs.KindRouter, "a router")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseInfo(id.Name, id.Meta.Marshal()); !errors.Is(err, ErrNotCapsule) {
		t.Fatalf("router metadata: %v", err)
	}
	if _, err := ParseInfo(m.Name(), raw[:len(raw)-1]); err == nil {
		t.Fatal("truncated metadata accepted")
	}
}

// The hand-written heartbeat, COSE and Sig_structure encoders must agree
// with the library's deterministic encoding.
func TestHeartbeatMatchesLibraryEncoding(t *testing.T) {
	for _, hb := range []*Heartbeat{
		{Capsule: testName, Seqno: 0, Root: EmptyRoot},
		{Capsule: testName, Seqno: 24, Root: Hash{1}, Time: 1 << 40, Holes: []uint64{1, 23, 24}},
		{Capsule: testName, Seqno: 1 << 33, Root: Hash{2}, Time: 5, Epoch: 3, Base: 1 << 32},
	} {
		want, err := codec.Marshal(hbBody{Capsule: hb.Capsule[:], Seqno: hb.Seqno, Root: hb.Root[:],
			Time: uint64(hb.Time), Holes: hb.Holes, Epoch: hb.Epoch, Base: hb.Base})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(hb.Body(), want) {
			t.Fatalf("body\n got %x\nwant %x", hb.Body(), want)
		}
		hb.Sign(testKey)
		si, _ := codec.Marshal([]any{"Signature1", protectedEdDSA, []byte(HeartbeatAAD), want})
		if !bytes.Equal(sigInput(want), si) {
			t.Fatal("sig structure differs")
		}
		w, _ := codec.Marshal(sign1Wire{Protected: protectedEdDSA, Unprotected: cbor.RawMessage{0xa0}, Payload: want, Signature: hb.Sig})
		if !bytes.Equal(hb.Marshal(), append([]byte{tagSign1}, w...)) {
			t.Fatal("COSE_Sign1 differs")
		}
		back, err := UnmarshalHeartbeat(hb.Marshal())
		if err != nil || !back.Equal(hb) {
			t.Fatalf("round trip: %v", err)
		}
	}
}
