package store

import (
	"context"
	"encoding/binary"
	"flag"
	"os"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
)

var big10M = flag.Bool("store.big10m", false, "run BenchmarkStoreProof10M (builds a 10 M-entry store: ~3 GB on disk, minutes)")

// BenchmarkStoreProof10M measures proofs served from a real store of 10 M
// entries: the tree's nodes are on disk, only the frontier and a bounded
// node cache in memory. The store is filled through a hash-only ingest path
// that writes exactly the keys Append writes (entries of 8-byte records,
// hash index, interior nodes, the heartbeat) in large batches, without
// per-batch verification, because 10 M verified appends would take minutes
// more on 2 shared cores. Opt in with -store.big10m.
func BenchmarkStoreProof10M(b *testing.B) {
	if !*big10M {
		b.Skip("opt in with -store.big10m")
	}
	const n = 10_000_000
	f := getBigFixture(b, n)
	s := openTest(b, f.dir, "pebble")
	defer s.Close()
	tc, hb := f.tc, f.hb
	h, err := s.Head(tc.name)
	if err != nil || h.Seqno != n || h.Heartbeat.Root != hb.Root {
		b.Fatalf("reopened head %d: %v", h.Seqno, err)
	}
	var size int
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		seq := 1 + uint64(i)*7_919_993%n
		p, err := s.InclusionProof(tc.name, seq, n)
		if err != nil {
			b.Fatal(err)
		}
		e, err := s.Read(tc.name, seq, seq)
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Verify(e[0].Hash(), hb.Root); err != nil {
			b.Fatal(err)
		}
		size = len(p.Marshal())
	}
	b.ReportMetric(float64(size), "proof-bytes")
	b.ReportMetric(float64(n)/f.built.Seconds(), "ingest-entries/s")
}

type bigFixture struct {
	dir   string
	tc    testCapsule
	hb    *capsule.Heartbeat
	built time.Duration
}

var bigStore *bigFixture

// getBigFixture builds the n-entry store once per process (the testing
// package calls a benchmark more than once); TestMain removes it.
func getBigFixture(b *testing.B, n uint64) *bigFixture {
	if bigStore != nil {
		return bigStore
	}
	dir, err := os.MkdirTemp("", "capsule-big-bench-")
	if err != nil {
		b.Fatal(err)
	}
	bigStore = &bigFixture{dir: dir, tc: newTestCapsule(b, 77)}
	s := openTest(b, dir, "pebble")
	defer s.Close()
	tc := bigStore.tc
	if err := s.Create(context.Background(), tc.name, tc.meta); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	var tree capsule.Tree
	var prev capsule.Hash
	wb := &writeBatch{}
	data := make([]byte, 8)
	t0 := time.Now().UnixNano()
	for seq := uint64(1); seq <= n; seq++ {
		binary.BigEndian.PutUint64(data, seq)
		r := capsule.NewRecord(tc.name, seq, t0+int64(seq), prev, data)
		prev = r.Hash()
		wb.set(key(tEntry, tc.name, seq), r.Marshal())
		wb.set(hashKey(tc.name, prev), binary.BigEndian.AppendUint64(nil, seq))
		tree.Append(prev, func(level uint8, index uint64, h capsule.Hash) {
			wb.set(nodeKey(tc.name, level, index), h[:])
		})
		if seq%(1<<16) == 0 || seq == n {
			if err := s.eng.commit(wb); err != nil {
				b.Fatal(err)
			}
			wb = &writeBatch{}
		}
	}
	hb := &capsule.Heartbeat{Capsule: tc.name, Seqno: n, Root: tree.Root(), Time: t0 + int64(n)}
	hb.Sign(tc.key)
	wb.set(key(tHeartbeat, tc.name, n), hb.Marshal())
	if err := s.eng.commit(wb); err != nil {
		b.Fatal(err)
	}
	bigStore.hb, bigStore.built = hb, time.Since(start)
	return bigStore
}
