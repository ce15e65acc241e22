package capsule

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"testing"
	"time"
)

// leafOnly is a NodeSource that keeps interior levels in memory and derives
// leaves from their index, so a 10 M-leaf tree fits in ~320 MB and builds
// in seconds: the hash-only path for measuring proofs at scale.
type leafOnly struct {
	levels [][]Hash // levels[l-1] holds level l
	size   uint64
}

func entryOf(i uint64) Hash {
	var e Hash
	binary.BigEndian.PutUint64(e[:], i)
	return e
}

func (s *leafOnly) Node(level uint8, index uint64) (Hash, error) {
	if level == 0 {
		return LeafHash(entryOf(index)), nil
	}
	return s.levels[level-1][index], nil
}

var (
	big10M     *leafOnly
	big10MTree *Tree
	big10MOnce sync.Once
	big10MTook time.Duration
)

const tenMillion = 10_000_000

func build10M() {
	start := time.Now()
	s := &leafOnly{size: tenMillion}
	t := &Tree{}
	for i := uint64(0); i < tenMillion; i++ {
		t.Append(entryOf(i), func(level uint8, index uint64, h Hash) {
			for int(level) > len(s.levels) {
				s.levels = append(s.levels, make([]Hash, 0, tenMillion>>len(s.levels)>>1+1))
			}
			s.levels[level-1] = append(s.levels[level-1], h)
		})
	}
	big10M, big10MTree, big10MTook = s, t, time.Since(start)
}

// BenchmarkInclusion10M measures an inclusion proof at 10 M entries: its
// size on the wire, the time to build it from stored nodes, and the time to
// verify it (the reader's cost). The tree is built once with the hash-only
// path; its build rate is reported too.
func BenchmarkInclusion10M(b *testing.B) {
	big10MOnce.Do(build10M)
	root := big10MTree.Root()
	idx := uint64(tenMillion / 3)
	path, err := InclusionPath(big10M, idx, tenMillion)
	if err != nil {
		b.Fatal(err)
	}
	p := &InclusionProof{Index: idx, Size: tenMillion, Path: path}
	wire := p.Marshal()
	b.Run("verify", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if err := p.Verify(entryOf(idx), root); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(wire)), "proof-bytes")
		b.ReportMetric(float64(len(path)), "hashes")
		b.ReportMetric(float64(tenMillion)/big10MTook.Seconds(), "build-leaves/s")
	})
	b.Run("build", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := InclusionPath(big10M, uint64(i*7919)%tenMillion, tenMillion); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("consistency-verify", func(b *testing.B) {
		m := uint64(tenMillion - 12345)
		cp, err := ConsistencyPath(big10M, m, tenMillion)
		if err != nil {
			b.Fatal(err)
		}
		old, _ := RootAt(big10M, m)
		c := &ConsistencyProof{Old: m, New: tenMillion, Path: cp}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if err := c.Verify(old, root); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(c.Marshal())), "proof-bytes")
	})
}

// BenchmarkTreeAppend is the frontier append (two hashes per leaf on
// average), with SHA-256 of one 64-byte block as its baseline.
func BenchmarkTreeAppend(b *testing.B) {
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		var t Tree
		for i := 0; i < b.N; i++ {
			t.Append(entryOf(uint64(i)), nil)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "leaves/s")
	})
	b.Run("baseline-nodehash", func(b *testing.B) {
		var h Hash
		for i := 0; i < b.N; i++ {
			h = NodeHash(h, h)
		}
	})
}

// BenchmarkRecordCodec is the record hot path: encode, decode, verify a
// 256-byte record.
func BenchmarkRecordCodec(b *testing.B) {
	r := NewRecord(testName, 12345, 1_700_000_000_000_000_000, Hash{1}, make([]byte, 256))
	wire := r.Marshal()
	b.Run("marshal", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 512)
		for i := 0; i < b.N; i++ {
			buf = r.Append(buf[:0])
		}
	})
	b.Run("baseline-sha256-record", func(b *testing.B) {
		// Verification's floor: the data hash plus the header hash.
		b.SetBytes(int64(len(wire)))
		for i := 0; i < b.N; i++ {
			sha256.Sum256(r.Data)
			sha256.Sum256(wire[:len(wire)-len(r.Data)-3])
		}
	})
	b.Run("unmarshal+verify", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(wire)))
		for i := 0; i < b.N; i++ {
			d, err := UnmarshalRecord(wire)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := d.Verify(0); err != nil {
				b.Fatal(err)
			}
		}
	})
}
