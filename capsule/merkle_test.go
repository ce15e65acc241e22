package capsule

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"
)

// refMTH is RFC 9162 §2.1.1 MTH written straight from the definition.
func refMTH(d []Hash) Hash {
	switch len(d) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return LeafHash(d[0])
	}
	k := int(largestPow2Below(uint64(len(d))))
	return NodeHash(refMTH(d[:k]), refMTH(d[k:]))
}

// refPath is RFC 9162 §2.1.3.1 PATH from the definition.
func refPath(m int, d []Hash) []Hash {
	if len(d) <= 1 {
		return nil
	}
	k := int(largestPow2Below(uint64(len(d))))
	if m < k {
		return append(refPath(m, d[:k]), refMTH(d[k:]))
	}
	return append(refPath(m-k, d[k:]), refMTH(d[:k]))
}

// refProof is RFC 9162 §2.1.4.1 PROOF from the definition.
func refProof(m int, d []Hash) []Hash {
	var sub func(m int, d []Hash, b bool) []Hash
	sub = func(m int, d []Hash, b bool) []Hash {
		if m == len(d) {
			if b {
				return nil
			}
			return []Hash{refMTH(d)}
		}
		k := int(largestPow2Below(uint64(len(d))))
		if m <= k {
			return append(sub(m, d[:k], b), refMTH(d[k:]))
		}
		return append(sub(m-k, d[k:], false), refMTH(d[:k]))
	}
	return sub(m, d, true)
}

func entries(n int) []Hash {
	d := make([]Hash, n)
	for i := range d {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(i))
		d[i] = sha256.Sum256(b[:])
	}
	return d
}

func hashesEqual(a, b []Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestTreeAgainstReference(t *testing.T) {
	const max = 70
	d := entries(max)
	var mt MemTree
	for n := 1; n <= max; n++ {
		mt.Append(d[n-1])
		if got, want := mt.Root(), refMTH(d[:n]); got != want {
			t.Fatalf("size %d: root %s, want %s", n, got, want)
		}
		if r, err := RootAt(&mt, uint64(n)); err != nil || r != refMTH(d[:n]) {
			t.Fatalf("RootAt(%d) = %s, %v", n, r, err)
		}
		lt, err := LoadTree(&mt, uint64(n))
		if err != nil || lt.Root() != mt.Root() {
			t.Fatalf("LoadTree(%d): %v", n, err)
		}
		for m := 0; m < n; m++ {
			p, err := InclusionPath(&mt, uint64(m), uint64(n))
			if err != nil {
				t.Fatal(err)
			}
			if !hashesEqual(p, refPath(m, d[:n])) {
				t.Fatalf("PATH(%d, %d) differs from the reference", m, n)
			}
			if err := VerifyInclusion(d[m], uint64(m), uint64(n), p, mt.Root()); err != nil {
				t.Fatalf("inclusion %d/%d: %v", m, n, err)
			}
		}
		for m := 1; m <= n; m++ {
			p, err := ConsistencyPath(&mt, uint64(m), uint64(n))
			if err != nil {
				t.Fatal(err)
			}
			if m < n && !hashesEqual(p, refProof(m, d[:n])) {
				t.Fatalf("PROOF(%d, %d) differs from the reference", m, n)
			}
			if err := VerifyConsistency(uint64(m), uint64(n), refMTH(d[:m]), mt.Root(), p); err != nil {
				t.Fatalf("consistency %d->%d: %v", m, n, err)
			}
		}
	}
	if (&Tree{}).Root() != EmptyRoot || EmptyRoot != refMTH(nil) {
		t.Fatal("empty root")
	}
}

// Every single-bit change to a proof, a root, an index or a size must fail.
func TestProofsRejectTampering(t *testing.T) {
	d := entries(37)
	var mt MemTree
	for _, e := range d {
		mt.Append(e)
	}
	root := mt.Root()
	for _, n := range []uint64{1, 2, 5, 8, 16, 31, 37} {
		r, _ := RootAt(&mt, n)
		for m := uint64(0); m < n; m++ {
			p, _ := InclusionPath(&mt, m, n)
			for i := range p {
				bad := append([]Hash(nil), p...)
				bad[i][i%HashLen] ^= 1
				if VerifyInclusion(d[m], m, n, bad, r) == nil {
					t.Fatalf("tampered inclusion %d/%d hash %d verified", m, n, i)
				}
			}
			if len(p) > 0 && VerifyInclusion(d[m], m, n, p[:len(p)-1], r) == nil {
				t.Fatalf("truncated inclusion %d/%d verified", m, n)
			}
			if VerifyInclusion(d[m], m, n, append(p, Hash{}), r) == nil {
				t.Fatalf("extended inclusion %d/%d verified", m, n)
			}
			if n > 1 && VerifyInclusion(d[m], (m+1)%n, n, p, r) == nil {
				t.Fatalf("inclusion %d/%d verified at another index", m, n)
			}
			if VerifyInclusion(d[(m+1)%37], m, n, p, r) == nil {
				t.Fatalf("inclusion %d/%d verified another entry", m, n)
			}
		}
		for m := uint64(1); m < n; m++ {
			p, _ := ConsistencyPath(&mt, m, 37)
			old, _ := RootAt(&mt, m)
			for i := range p {
				bad := append([]Hash(nil), p...)
				bad[i][0] ^= 0x80
				if VerifyConsistency(m, 37, old, root, bad) == nil {
					t.Fatalf("tampered consistency %d->37 hash %d verified", m, i)
				}
			}
			if VerifyConsistency(m, 37, root, root, p) == nil || VerifyConsistency(m, 37, old, old, p) == nil {
				t.Fatalf("consistency %d->37 verified wrong roots", m)
			}
			if VerifyConsistency(m+1, 37, old, root, p) == nil && m+1 < 37 {
				// A different old size can only verify if the trees coincide, which they do not.
				t.Fatalf("consistency %d->37 verified as %d->37", m, m+1)
			}
		}
	}
	if err := VerifyInclusion(d[0], 5, 5, nil, root); !errors.Is(err, ErrBadProof) {
		t.Fatalf("index == size: %v", err)
	}
	if err := VerifyConsistency(5, 4, root, root, nil); !errors.Is(err, ErrBadProof) {
		t.Fatalf("old > new: %v", err)
	}
}
