package capsule

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"github.com/gdpnet/gdpnet/internal/fuzzseed"
	"os"
	"strings"
	"testing"
)

// seed adds every test vector whose name has one of the prefixes.
func seed(f *testing.F, prefixes ...string) {
	for name, b := range readVectors(f) {
		for _, p := range prefixes {
			if strings.HasPrefix(name, p) {
				fuzzseed.Add(f, b)
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
	fuzzseed.Add(f, testEvidence(f).Marshal())
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
	fuzzseed.Add(f, uint64(1), uint64(4), vec["node.1.1"], uint64(3))
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

// seedTrust adds the receipt and placement vectors of PROTOCOL.md §8.7
// (testdata/trust_vectors.txt) whose names start with prefix.
func seedTrust(f *testing.F, prefix string) {
	data, err := os.ReadFile(trustVectorsFile)
	if err != nil {
		f.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		name, hx, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(name, "#") || !strings.HasPrefix(name, prefix) {
			continue
		}
		if b, err := hex.DecodeString(hx); err == nil {
			fuzzseed.Add(f, b)
		}
	}
}

// FuzzReceipt: a replica's signed APPEND receipt (§8.7) as the writer
// decodes it from an ack: no panic; what decodes re-encodes to the same
// bytes and verifies only for the fixture's genuine bytes.
func FuzzReceipt(f *testing.F) {
	seedTrust(f, "receipt.wire")
	fx := newTrustFixture(f)
	genuine := fx.receipt.Marshal()
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := UnmarshalReceipt(b)
		if err != nil {
			return
		}
		if !bytes.Equal(r.Marshal(), b) {
			t.Fatalf("round trip differs for %x", b)
		}
		err = r.Verify(fx.hb, fx.srvMeta.Name(), fx.server.Public().(ed25519.PublicKey))
		if (err == nil) != bytes.Equal(b, genuine) {
			t.Fatalf("verify of %x: %v", b, err)
		}
	})
}

// FuzzPlacement: the owner-signed placement record (§8.7) a server takes
// from a CREATE and a writer from METADATA: no panic; what decodes
// re-encodes to the same bytes, and verifies only as the genuine record.
func FuzzPlacement(f *testing.F) {
	seedTrust(f, "placement.wire")
	fx := newTrustFixture(f)
	genuine := fx.placement.Marshal()
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := UnmarshalPlacement(b)
		if err != nil {
			return
		}
		if !bytes.Equal(p.Marshal(), b) {
			t.Fatalf("round trip differs for %x", b)
		}
		if err := p.Verify(fx.meta); (err == nil) != bytes.Equal(b, genuine) {
			t.Fatalf("verify of %x: %v", b, err)
		}
	})
}

// FuzzCapsuleInfo: capsule metadata as a server or reader parses it before
// trusting the writer key (ParseInfo): no panic; accepted only when it
// hashes to the name asked for.
func FuzzCapsuleInfo(f *testing.F) {
	seedTrust(f, "capsule.meta")
	seedTrust(f, "server.meta")
	fx := newTrustFixture(f)
	name := fx.meta.Name()
	f.Fuzz(func(t *testing.T, b []byte) {
		i, err := ParseInfo(name, b)
		if err != nil {
			return
		}
		if i.Name != name || i.Check() != nil {
			t.Fatalf("accepted %x as %s", b, i.Name)
		}
		if !bytes.Equal(b, fx.meta.Marshal()) {
			t.Fatalf("other bytes %x accepted for the capsule", b)
		}
	})
}
