package kv

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/certs"
)

// bench1M is an index of 1,000,000 versions (10,000 keys × 100 puts),
// every page of 4,096 records verified by ApplyPage (heartbeat signature,
// hash chain, inclusion proof), built once per process.
var bench1M struct {
	once sync.Once
	ix   *Index
	keys []string
	cur  map[string][]byte // the baseline: each key's newest value
	head uint64
	err  error
}

const (
	benchKeys     = 10_000
	benchVersions = 1_000_000
)

func build1M() {
	b := &bench1M
	pub, key, _ := ed25519.GenerateKey(nil)
	_, owner, _ := ed25519.GenerateKey(nil)
	meta, err := certs.NewCapsule(owner, pub, "kv bench")
	if err != nil {
		b.err = err
		return
	}
	info, _ := capsule.InfoOf(meta)
	w := capsule.NewWriter(info.Name, key)
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	w.Now = func() time.Time { clock += 1000; return time.Unix(0, clock) }
	var tree capsule.MemTree
	b.ix, b.cur = NewIndex(info), make(map[string][]byte, benchKeys)
	for i := 0; i < benchKeys; i++ {
		b.keys = append(b.keys, fmt.Sprintf("sensor/%05d", i))
	}
	ctx := context.Background()
	mw := newWriter(funcAppender{app: func(_ context.Context, data []byte) (capsule.Record, error) {
		r := w.Append(data)
		tree.Append(r.Hash())
		return r, nil
	}, seq: w.Seqno}, NewIndex(info), WriterOptions{CheckpointEvery: -1})
	const page = 4096
	for done := 0; done < benchVersions; {
		n := min(page, benchVersions-done)
		for i := 0; i < n; i++ {
			k := b.keys[(done+i)%benchKeys]
			v := []byte(fmt.Sprintf("%016d", done+i))
			if _, err := mw.Put(ctx, k, v); err != nil {
				b.err = err
				return
			}
			b.cur[k] = v
		}
		recs, hb := w.Flush()
		p := Page{Heartbeat: hb.Marshal()}
		for _, r := range recs {
			p.Records = append(p.Records, r.Marshal())
		}
		path, err := capsule.InclusionPath(&tree, hb.Seqno-1, hb.Seqno)
		if err != nil {
			b.err = err
			return
		}
		p.Proof = (&capsule.InclusionProof{Index: hb.Seqno - 1, Size: hb.Seqno, Path: path}).Marshal()
		if err := b.ix.ApplyPage(p); err != nil {
			b.err = err
			return
		}
		done += n
	}
	b.head = b.ix.Head()
}

// funcAppender adapts two functions to Appender.
type funcAppender struct {
	app func(ctx context.Context, data []byte) (capsule.Record, error)
	seq func() uint64
}

func (f funcAppender) AppendRecord(ctx context.Context, data []byte) (capsule.Record, error) {
	return f.app(ctx, data)
}

func (f funcAppender) Seqno() uint64 { return f.seq() }

// BenchmarkKVGetAsOf1M: get-as-of (a random key at a random seqno) on a
// local verified index of 1 M versions, beside its baseline in the same
// run, a Go map lookup of the same keys. Reports each one's p50 and p99
// (per-lookup clock reads, the same overhead on both) and their ratio;
// the target is p50 ≤ 5 µs.
func BenchmarkKVGetAsOf1M(b *testing.B) {
	bench1M.once.Do(build1M)
	if bench1M.err != nil {
		b.Fatal(bench1M.err)
	}
	ix, keys, cur, head := bench1M.ix, bench1M.keys, bench1M.cur, bench1M.head
	rng := rand.New(rand.NewPCG(1, 2))
	n := max(b.N, 1000)
	type q struct {
		k string
		s uint64
	}
	qs := make([]q, n)
	for i := range qs {
		qs[i] = q{keys[rng.IntN(len(keys))], 1 + rng.Uint64N(head)}
	}
	kvLat := make([]time.Duration, n)
	mapLat := make([]time.Duration, n)
	var sink int
	runtime.GC() // the build's garbage is not this benchmark's
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < n; i++ {
		t0 := time.Now()
		v, err := ix.GetAt(qs[i].k, AtSeqno(qs[i].s))
		kvLat[i] = time.Since(t0)
		if err == nil {
			sink += len(v.Value)
		}
	}
	b.StopTimer()
	for i := 0; i < n; i++ {
		t0 := time.Now()
		v := cur[qs[i].k]
		mapLat[i] = time.Since(t0)
		sink += len(v)
	}
	if sink == 0 {
		b.Fatal("no lookup found a value")
	}
	p := func(l []time.Duration, q float64) float64 {
		slices.Sort(l)
		return float64(l[int(q*float64(len(l)-1))].Nanoseconds())
	}
	kp50, kp99, mp50, mp99 := p(kvLat, 0.5), p(kvLat, 0.99), p(mapLat, 0.5), p(mapLat, 0.99)
	b.ReportMetric(kp50, "p50-ns")
	b.ReportMetric(kp99, "p99-ns")
	b.ReportMetric(mp50, "map-p50-ns")
	b.ReportMetric(mp99, "map-p99-ns")
	b.ReportMetric(kp50/max(mp50, 1), "p50-vs-map")
	b.ReportMetric(float64(head), "versions")
}
