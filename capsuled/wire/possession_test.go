package wire

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"reflect"
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
