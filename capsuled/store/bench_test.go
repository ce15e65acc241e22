package store

import (
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
)

const benchRecord = 256 // bytes of data per record

// BenchmarkStoreEngines runs the capsule workload on both engines in one
// run: durable appends of 256-byte records with a heartbeat per 256-record
// batch (8 concurrent writers) and with a heartbeat per record (64
// concurrent writers), and verified reads by seqno range. Every append is
// verified (signature, hashes, chain, root) and acknowledged only after its
// fsync. Baselines from the same run: raw file writes with an fsync per
// record and per 256 records, and one Ed25519 verify.
func BenchmarkStoreEngines(b *testing.B) {
	for _, eng := range engines {
		b.Run(eng+"/append-batch256", func(b *testing.B) { benchAppend(b, eng, 8, 256) })
		b.Run(eng+"/append-hb-per-record", func(b *testing.B) { benchAppend(b, eng, 64, 1) })
		b.Run(eng+"/append-hb-per-record-1writer", func(b *testing.B) { benchPipelined(b, eng, 64) })
		b.Run(eng+"/read-verified", func(b *testing.B) { benchRead(b, eng) })
		b.Run(eng+"/inclusion-proof", func(b *testing.B) { benchProof(b, eng) })
	}
	b.Run("baseline/fsync-per-record", func(b *testing.B) { benchFsync(b, 1) })
	b.Run("baseline/fsync-per-256", func(b *testing.B) { benchFsync(b, 256) })
	b.Run("baseline/ed25519-verify", func(b *testing.B) {
		tc := newTestCapsule(b, 1)
		msg := make([]byte, 120)
		sig := ed25519.Sign(tc.key, msg)
		for i := 0; i < b.N; i++ {
			ed25519.Verify(tc.info.Writer, msg, sig)
		}
	})
}

type benchBatch struct {
	recs []capsule.Record
	hb   *capsule.Heartbeat
}

func benchAppend(b *testing.B, eng string, writers, perBatch int) {
	ctx := context.Background()
	s := openTest(b, b.TempDir(), eng)
	defer s.Close()
	batchesPer := (b.N + writers*perBatch - 1) / (writers * perBatch)
	tcs := make([]testCapsule, writers)
	work := make([][]benchBatch, writers)
	var wg sync.WaitGroup
	for i := range tcs {
		tcs[i] = newTestCapsule(b, byte(100+i))
		if err := s.Create(ctx, tcs[i].name, tcs[i].meta); err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() { // the writers' side: build and sign outside the timer
			defer wg.Done()
			w := tcs[i].writer()
			for j := 0; j < batchesPer; j++ {
				recs, hb := writeRecs(w, perBatch, benchRecord)
				work[i] = append(work[i], benchBatch{recs, hb})
			}
		}()
	}
	wg.Wait()
	groups0 := s.commit.groups.Load()
	cpu0 := cpuTime()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	errs := make(chan error, writers)
	for i := range tcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, bb := range work[i] {
				if err := s.Append(ctx, tcs[i].name, bb.recs, bb.hb); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	n := float64(writers * batchesPer * perBatch)
	b.ReportMetric(n/el.Seconds(), "records/s")
	b.ReportMetric(float64(writers*batchesPer)/el.Seconds(), "heartbeats/s")
	b.ReportMetric(n/float64(s.commit.groups.Load()-groups0), "records/fsync")
	// CPU time of this process per record: what the machine's load cannot
	// distort. Capacity on an idle machine is about cores / this.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/n, "cpu-us/record")
}

// cpuTime is the process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchPipelined is one capsule whose single writer keeps inflight appends
// of one record and one heartbeat each in flight, dispatched in seqno order
// to a pool of connections (goroutines), as a server sees a pipelining
// client.
func benchPipelined(b *testing.B, eng string, inflight int) {
	ctx := context.Background()
	s := openTest(b, b.TempDir(), eng)
	defer s.Close()
	tc := newTestCapsule(b, 200)
	if err := s.Create(ctx, tc.name, tc.meta); err != nil {
		b.Fatal(err)
	}
	w := tc.writer()
	work := make([]benchBatch, b.N)
	for i := range work {
		recs, hb := writeRecs(w, 1, benchRecord)
		work[i] = benchBatch{recs, hb}
	}
	groups0, cpu0 := s.commit.groups.Load(), cpuTime()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	queue := make(chan benchBatch, inflight)
	errs := make(chan error, inflight)
	var wg sync.WaitGroup
	for i := 0; i < inflight; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var first error
			for bb := range queue { // keep draining after an error: the sender must not block
				if err := s.Append(ctx, tc.name, bb.recs, bb.hb); err != nil && first == nil {
					first = err
				}
			}
			if first != nil {
				errs <- first
			}
		}()
	}
	for _, bb := range work {
		queue <- bb
	}
	close(queue)
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), "records/s")
	b.ReportMetric(float64(b.N)/float64(s.commit.groups.Load()-groups0), "records/fsync")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-us/record")
}

var (
	readStores   = map[string]*readFixture{}
	readStoresMu sync.Mutex
)

type readFixture struct {
	dir string
	tc  testCapsule
	n   uint64
}

// getReadFixture fills a store with 262,144 records once per engine (removed
// by TestMain).
func getReadFixture(b *testing.B, eng string) *readFixture {
	readStoresMu.Lock()
	defer readStoresMu.Unlock()
	if f := readStores[eng]; f != nil {
		return f
	}
	dir, err := os.MkdirTemp("", "capsule-read-bench-")
	if err != nil {
		b.Fatal(err)
	}
	f := &readFixture{dir: dir, tc: newTestCapsule(b, 99), n: 1 << 18}
	s := openTest(b, dir, eng)
	defer s.Close()
	if err := s.Create(context.Background(), f.tc.name, f.tc.meta); err != nil {
		b.Fatal(err)
	}
	w := f.tc.writer()
	for w.Seqno() < f.n {
		recs, hb := writeRecs(w, 4096, benchRecord)
		mustAppend(b, s, f.tc.name, recs, hb)
	}
	readStores[eng] = f
	return f
}

func benchRead(b *testing.B, eng string) {
	f := getReadFixture(b, eng)
	s := openTest(b, f.dir, eng)
	defer s.Close()
	hb, err := s.Heartbeat(f.tc.name)
	if err != nil {
		b.Fatal(err)
	}
	const span = 256
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	read := 0
	for from := uint64(1); read < b.N; from += span {
		if from+span-1 > f.n {
			from = 1
		}
		to := from + span - 1
		recs, err := s.Read(f.tc.name, from, to)
		if err != nil {
			b.Fatal(err)
		}
		p, err := s.InclusionProof(f.tc.name, to, hb.Seqno)
		if err != nil {
			b.Fatal(err)
		}
		if err := capsule.VerifyRange(f.tc.info, hb, recs, p, 0); err != nil {
			b.Fatal(err)
		}
		read += span
	}
	el := time.Since(start)
	b.ReportMetric(float64(read)/el.Seconds(), "records/s")
}

func benchFsync(b *testing.B, per int) {
	f, err := os.Create(filepath.Join(b.TempDir(), "fsync"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	rec := make([]byte, benchRecord+64)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := f.Write(rec); err != nil {
			b.Fatal(err)
		}
		if (i+1)%per == 0 {
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
		}
	}
	f.Sync()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}

// benchProof builds inclusion proofs from the store's nodes (the server's
// cost of a PROOF request) at the fixture's 262,144 entries.
func benchProof(b *testing.B, eng string) {
	f := getReadFixture(b, eng)
	s := openTest(b, f.dir, eng)
	defer s.Close()
	b.ReportAllocs()
	b.ResetTimer()
	var size int
	for i := 0; i < b.N; i++ {
		p, err := s.InclusionProof(f.tc.name, 1+uint64(i*7919)%f.n, f.n)
		if err != nil {
			b.Fatal(err)
		}
		size = len(p.Marshal())
	}
	b.ReportMetric(float64(size), "proof-bytes")
}
