package wire

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/gdpnet/gdpnet/pdu"
)

// TestSyncPossessionRoundTrip: a SYNC with its nonce (key 11) and an
// answer with its possession tag (key 30) decode to the same fields; a
// message without them encodes without the keys (an older peer's bytes).
func TestSyncPossessionRoundTrip(t *testing.T) {
	c := make([]byte, 32)
	nonce := bytes.Repeat([]byte{0x5a}, NonceLen)
	for _, m := range []*Message{
		{Op: OpSync, ID: 7, Capsule: c, From: 3, Hash: nonce},
		{Op: OpSync, ID: 7, Status: StatusOK, Capsule: c, Head: 9, Heartbeat: []byte{1}, Possession: bytes.Repeat([]byte{0xa5}, PossessionLen)},
	} {
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		back, err := Unmarshal(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, m) {
			t.Fatalf("decoded %+v, want %+v", back, m)
		}
	}
	b, err := (&Message{Op: OpSync, ID: 7, Status: StatusOK, Capsule: c, Head: 9}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte{0x18, 0x1e}) {
		t.Fatalf("an answer without a tag encodes key 30: %x", b)
	}
}

// TestPossessionDerivation: the seqno is 1 + the first 8 bytes of its
// hash mod head, within [1, head]; the tag changes with every input
// (nonce, server, head, either entry), so it cannot be reused for another
// challenge, replica or entry.
func TestPossessionDerivation(t *testing.T) {
	var c, server pdu.Name
	c[0], server[0] = 1, 2
	nonce := bytes.Repeat([]byte{3}, NonceLen)
	h := sha256.Sum256(append(append(append([]byte("gdp sync possession seqno v1\x00"), c[:]...), nonce...), binary.BigEndian.AppendUint64(nil, 1000)...))
	if got, want := PossessionSeqno(c, nonce, 1000), 1+binary.BigEndian.Uint64(h[:8])%1000; got != want {
		t.Fatalf("seqno %d, want %d", got, want)
	}
	// The worked figure of PROTOCOL.md §8.6 (the vectors' capsule and
	// nonce; testdata/check_vectors.py computes it too).
	var vc pdu.Name
	for i := range vc {
		vc[i] = byte(i)
	}
	if k := PossessionSeqno(vc, possessionNonce(), 1000); k != 377 {
		t.Fatalf("§8.6's head 1,000 covers entry %d, the document says 377", k)
	}
	if PossessionSeqno(c, nonce, 1) != 1 || PossessionSeqno(c, nonce, 0) != 0 {
		t.Fatal("head 1 must pick entry 1, head 0 none")
	}
	seen := map[uint64]bool{}
	for i := range 200 {
		n := bytes.Repeat([]byte{byte(i)}, NonceLen)
		k := PossessionSeqno(c, n, 10)
		if k < 1 || k > 10 {
			t.Fatalf("seqno %d outside [1, 10]", k)
		}
		seen[k] = true
	}
	if len(seen) != 10 {
		t.Fatalf("200 nonces picked %d of 10 entries", len(seen))
	}
	base := PossessionTag(c, server, nonce, 1000, []byte("head"), []byte("k"))
	other := bytes.Repeat([]byte{4}, NonceLen)
	for name, tag := range map[string][]byte{
		"nonce":      PossessionTag(c, server, other, 1000, []byte("head"), []byte("k")),
		"server":     PossessionTag(c, pdu.Name{9}, nonce, 1000, []byte("head"), []byte("k")),
		"capsule":    PossessionTag(pdu.Name{9}, server, nonce, 1000, []byte("head"), []byte("k")),
		"head":       PossessionTag(c, server, nonce, 999, []byte("head"), []byte("k")),
		"head entry": PossessionTag(c, server, nonce, 1000, []byte("heaD"), []byte("k")),
		"entry":      PossessionTag(c, server, nonce, 1000, []byte("head"), []byte("K")),
	} {
		if bytes.Equal(tag, base) {
			t.Errorf("the tag does not cover the %s", name)
		}
	}
	if len(base) != PossessionLen {
		t.Fatalf("tag of %d bytes", len(base))
	}
}

// TestPossessionSamples: a sampled tag covers min(s, head) distinct
// entries in [1, head], ascending — every entry of a log no longer than s
// — drawn by Floyd's algorithm from the nonce (t_j = 1 + hash mod j, or j
// when t_j is taken); over many nonces every entry is drawn about as
// often. The tag changes with s, the nonce, the server and every entry.
func TestPossessionSamples(t *testing.T) {
	var c, server pdu.Name
	c[0], server[0] = 1, 2
	nonce := bytes.Repeat([]byte{3}, NonceLen)
	// The derivation, spelled out for one small case.
	var want []uint64
	taken := map[uint64]bool{}
	for j := uint64(1000 - 3 + 1); j <= 1000; j++ {
		b := append(append(append([]byte("gdp sync possession samples v2\x00"), c[:]...), nonce...), binary.BigEndian.AppendUint64(nil, 1000)...)
		h := sha256.Sum256(binary.BigEndian.AppendUint64(b, j))
		k := 1 + binary.BigEndian.Uint64(h[:8])%j
		if taken[k] {
			k = j
		}
		taken[k] = true
		want = append(want, k)
	}
	slices.Sort(want)
	if got := PossessionSamples(c, nonce, 1000, 3); !slices.Equal(got, want) {
		t.Fatalf("samples %v, want %v", got, want)
	}
	// The worked figure of PROTOCOL.md §8.6 (testdata/check_vectors.py
	// computes it too).
	var vc pdu.Name
	for i := range vc {
		vc[i] = byte(i)
	}
	if got, doc := PossessionSamples(vc, possessionNonce(), 1000, 16), workedSamples; !slices.Equal(got, doc) {
		t.Fatalf("§8.6's head 1,000 with 16 samples covers %v, the document says %v", got, doc)
	}
	for _, tc := range []struct{ head, s uint64 }{{0, 16}, {1, 16}, {5, 16}, {16, 16}, {17, 16}, {1000, 16}, {1000, 64}, {64, 64}, {1 << 40, 64}, {1000, 0}} {
		got := PossessionSamples(c, nonce, tc.head, tc.s)
		if uint64(len(got)) != min(tc.head, tc.s) {
			t.Fatalf("head %d, s %d: %d samples", tc.head, tc.s, len(got))
		}
		for i, k := range got {
			if k < 1 || k > tc.head || (i > 0 && k <= got[i-1]) {
				t.Fatalf("head %d, s %d: %v not distinct ascending seqnos in [1, head]", tc.head, tc.s, got)
			}
		}
	}
	// Uniform: 2,000 nonces of 16 samples of 100 entries draw each entry
	// 320 times on average; none below half of that or above twice.
	counts := make([]int, 101)
	for i := range 2000 {
		n := sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(i)))
		for _, k := range PossessionSamples(c, n[:], 100, 16) {
			counts[k]++
		}
	}
	for k := 1; k <= 100; k++ {
		if counts[k] < 160 || counts[k] > 640 {
			t.Fatalf("entry %d drawn %d times of 32,000 (expected ~320)", k, counts[k])
		}
	}
	entries := [][]byte{[]byte("a"), []byte("b")}
	base := PossessionSampledTag(c, server, nonce, 1000, 2, []byte("head"), entries)
	other := bytes.Repeat([]byte{4}, NonceLen)
	for name, tag := range map[string][]byte{
		"samples":    PossessionSampledTag(c, server, nonce, 1000, 3, []byte("head"), entries),
		"nonce":      PossessionSampledTag(c, server, other, 1000, 2, []byte("head"), entries),
		"server":     PossessionSampledTag(c, pdu.Name{9}, nonce, 1000, 2, []byte("head"), entries),
		"capsule":    PossessionSampledTag(pdu.Name{9}, server, nonce, 1000, 2, []byte("head"), entries),
		"head":       PossessionSampledTag(c, server, nonce, 999, 2, []byte("head"), entries),
		"head entry": PossessionSampledTag(c, server, nonce, 1000, 2, []byte("heaD"), entries),
		"entry 1":    PossessionSampledTag(c, server, nonce, 1000, 2, []byte("head"), [][]byte{[]byte("A"), []byte("b")}),
		"entry 2":    PossessionSampledTag(c, server, nonce, 1000, 2, []byte("head"), [][]byte{[]byte("a"), []byte("B")}),
		"one-entry":  PossessionTag(c, server, nonce, 1000, []byte("head"), []byte("a")),
	} {
		if bytes.Equal(tag, base) {
			t.Errorf("the sampled tag does not cover the %s", name)
		}
	}
	if len(base) != PossessionLen {
		t.Fatalf("tag of %d bytes", len(base))
	}
}

// workedSamples are the 16 entries §8.6 says its nonce picks in a log of 1,000.
var workedSamples = []uint64{22, 49, 58, 116, 131, 164, 345, 376, 389, 538, 589, 596, 718, 777, 872, 986}

// TestSampledSyncOlderDecoders: why the sample count rides on key 24. The
// decoder refuses unknown keys (§8.1): a SYNC with a new key would be
// dropped as malformed by every replica before Session 11, so anti-entropy
// with them would stop. Key 24 (limit) is one every version decodes, and
// a SYNC's answerer before Session 11 never read it.
func TestSampledSyncOlderDecoders(t *testing.T) {
	c := make([]byte, 32)
	withNewKey, err := codec.Marshal(map[int]any{1: int(OpSync), 2: 1, 4: c, 11: possessionNonce(), 31: 16})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Unmarshal(withNewKey); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a SYNC with an unknown key 31: %v, want ErrMalformed", err)
	}
	b, err := (&Message{Op: OpSync, ID: 1, Capsule: c, Hash: possessionNonce(), Limit: 16}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if m, err := Unmarshal(b); err != nil || m.Limit != 16 {
		t.Fatalf("a SYNC stating 16 samples in key 24: %v, limit %d", err, m.Limit)
	}
}
