package store

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"math/bits"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
)

var engines = []string{"pebble", "bbolt"}

// testCapsule is a capsule with its writer key and metadata.
type testCapsule struct {
	name pdu.Name
	meta []byte
	key  ed25519.PrivateKey
	info capsule.Info
}

func newTestCapsule(t testing.TB, seed byte) testCapsule {
	t.Helper()
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32))
	owner := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed ^ 0xff}, 32))
	// Fixed creation time and nonce: the same seed gives the same name in
	// every process (the crash test's child and parent).
	m := &certs.Metadata{Kind: certs.KindCapsule, Key: owner.Public().(ed25519.PublicKey),
		WriterKey: key.Public().(ed25519.PublicKey), Created: time.Unix(1_700_000_000, 0).UTC(),
		Nonce: [16]byte{seed}, Description: "test capsule"}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	return testCapsule{name: m.Name(), meta: m.Marshal(), key: key,
		info: capsule.Info{Name: m.Name(), Writer: key.Public().(ed25519.PublicKey)}}
}

func (tc testCapsule) writer() *capsule.Writer {
	w := capsule.NewWriter(tc.name, tc.key)
	t := time.Unix(1_700_000_000, 0)
	w.Now = func() time.Time { t = t.Add(time.Microsecond); return t }
	return w
}

func openTest(t testing.TB, dir, eng string) *Store {
	t.Helper()
	s, err := Open(dir, Options{Engine: eng})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func payload(seq uint64, n int) []byte {
	b := make([]byte, n)
	binary.BigEndian.PutUint64(b, seq)
	h := sha256.Sum256(b[:8])
	for i := 8; i < n; i++ {
		b[i] = h[i%32]
	}
	return b
}

func writeRecs(w *capsule.Writer, n, size int) ([]capsule.Record, *capsule.Heartbeat) {
	for i := 0; i < n; i++ {
		w.Append(payload(w.Seqno()+1, size))
	}
	return w.Flush()
}

// verifyAll reads the whole durable log and verifies it against the newest
// heartbeat the way a reader would; it also checks that the store holds no
// entry beyond the head (nothing half-written).
func verifyAll(t testing.TB, s *Store, tc testCapsule) capsule.Head {
	t.Helper()
	h, err := s.Head(tc.name)
	if err != nil {
		t.Fatal(err)
	}
	if h.Seqno == 0 {
		return h
	}
	recs, err := s.Read(tc.name, 1, h.Seqno)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.InclusionProof(tc.name, h.Seqno, h.Seqno)
	if err != nil {
		t.Fatal(err)
	}
	if err := capsule.VerifyRange(tc.info, h.Heartbeat, recs, p, 0); err != nil {
		t.Fatalf("log of %d entries does not verify: %v", h.Seqno, err)
	}
	extra := 0
	s.eng.scan(key(tEntry, tc.name, h.Seqno+1), prefixEnd(key(tEntry, tc.name)), func(k, v []byte) bool { extra++; return true })
	if extra != 0 {
		t.Fatalf("%d entries stored beyond head %d", extra, h.Seqno)
	}
	return h
}

func mustAppend(t testing.TB, s *Store, c pdu.Name, recs []capsule.Record, hb *capsule.Heartbeat) {
	t.Helper()
	if err := s.Append(context.Background(), c, recs, hb); err != nil {
		t.Fatal(err)
	}
}

// checkNodes checks that every stored Merkle node of the capsule is complete
// in the current log and equals the node recomputed from the stored entries:
// nothing stale survives a branch.
func checkNodes(t testing.TB, s *Store, tc testCapsule) {
	t.Helper()
	h, err := s.Head(tc.name)
	if err != nil {
		t.Fatal(err)
	}
	var mt capsule.MemTree
	if h.Seqno > 0 {
		recs, err := s.Read(tc.name, 1, h.Seqno)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			mt.Append(r.Hash())
		}
	}
	n := 0
	s.eng.scan(key(tNode, tc.name), prefixEnd(key(tNode, tc.name)), func(k, v []byte) bool {
		pos := u64(k[33:]) + 1 // (2i+1) << level
		level := uint8(bits.TrailingZeros64(pos))
		index := (pos>>level - 1) / 2
		if (index+1)<<level > h.Seqno {
			t.Errorf("node (%d,%d) stored beyond the head %d", level, index, h.Seqno)
			return true
		}
		want, _ := mt.Node(level, index)
		if capsule.Hash(v) != want {
			t.Errorf("node (%d,%d) is stale", level, index)
		}
		n++
		return true
	})
	if want := int(h.Seqno) - bits.OnesCount64(h.Seqno); n != want {
		t.Errorf("%d nodes stored for %d entries, want %d", n, h.Seqno, want)
	}
}
