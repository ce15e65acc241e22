package capsule

import (
	"bytes"
	"strings"
	"testing"
)

// seed adds every test vector whose name has one of the prefixes.
func seed(f *testing.F, prefixes ...string) {
	for name, b := range readVectors(f) {
		for _, p := range prefixes {
			if strings.HasPrefix(name, p) {
				f.Add(b)
			}
		}
	}
}

// Every decoder: no panic, and whatever decodes re-encodes to the same
// bytes (one byte form per object).

func FuzzRecord(f *testing.F) {
	seed(f, "entry")
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := UnmarshalRecord(b)
		if err != nil {
			return
		}
		if !bytes.Equal(r.Marshal(), b) || r.EncodedLen() != len(b) {
			t.Fatalf("round trip differs for %x", b)
		}
		r.Verify(0)
		_ = r.Hash()
	})
}

func FuzzHeartbeat(f *testing.F) {
	seed(f, "heartbeat.wire")
	f.Fuzz(func(t *testing.T, b []byte) {
		hb, err := UnmarshalHeartbeat(b)
		if err != nil {
			return
		}
		if !bytes.Equal(hb.Marshal(), b) {
			t.Fatalf("round trip differs for %x", b)
		}
		hb.Verify(testName, testInfo.Writer)
	})
}

func FuzzInclusionProof(f *testing.F) {
	seed(f, "inclusion", "consistency")
	vec := readVectors(f)
	root := Hash(vec["root.4"])
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := UnmarshalInclusionProof(b)
		if err != nil {
			return
		}
		if !bytes.Equal(p.Marshal(), b) {
			t.Fatalf("round trip differs for %x", b)
		}
		p.Verify(Hash(vec["entry2.hash"]), root)
	})
}

func FuzzConsistencyProof(f *testing.F) {
	seed(f, "inclusion", "consistency")
	vec := readVectors(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := UnmarshalConsistencyProof(b)
		if err != nil {
			return
		}
		if !bytes.Equal(p.Marshal(), b) {
			t.Fatalf("round trip differs for %x", b)
		}
		p.Verify(Hash(vec["root.3"]), Hash(vec["root.4"]))
	})
}

func FuzzEvidence(f *testing.F) {
	f.Add(testEvidence(f).Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := UnmarshalEvidence(b)
		if err != nil {
			return
		}
		if !bytes.Equal(e.Marshal(), b) {
			t.Fatalf("round trip differs for %x", b)
		}
		e.Verify(testInfo)
	})
}

// FuzzVerifyProofs feeds arbitrary paths, indexes and sizes to the RFC 9162
// verifiers: they must never panic, and must never accept a proof for a
// leaf that is not in the fixed tree.
func FuzzVerifyProofs(f *testing.F) {
	vec := readVectors(f)
	f.Add(uint64(1), uint64(4), vec["node.1.1"], uint64(3))
	f.Fuzz(func(t *testing.T, index, size uint64, pathBytes []byte, m uint64) {
		var path []Hash
		for len(pathBytes) >= HashLen && len(path) < MaxProofLen {
			path = append(path, Hash(pathBytes[:HashLen]))
			pathBytes = pathBytes[HashLen:]
		}
		forged := Hash(vec["root.0"]) // not an entry of the tree
		if VerifyInclusion(forged, index, size, path, Hash(vec["root.4"])) == nil {
			t.Fatalf("forged inclusion accepted: %d/%d", index, size)
		}
		VerifyConsistency(m, size, Hash(vec["root.3"]), Hash(vec["root.4"]), path)
	})
}

// testEvidence is a small valid piece of equivocation evidence.
func testEvidence(tb testing.TB) *Evidence {
	w := newTestWriter()
	writeN(w, 3)
	var a, b MemTree
	for _, r := range w.pending {
		a.Append(r.Hash())
		b.Append(r.Hash())
	}
	fork := *w
	fork.tree = *w.tree.Clone()
	a.Append(w.Append([]byte("a")).Hash())
	b.Append(fork.Append([]byte("b")).Hash())
	_, hbA := w.Flush()
	_, hbB := fork.Flush()
	e, err := NewEvidence(hbA, hbB, 4, &a, &b)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}
