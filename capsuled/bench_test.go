package capsuled_test

import (
	"context"
	"os"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled"
	"github.com/gdpnet/gdpnet/capsuled/store"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/router"
)

const benchRecord = 100 // bytes of data per record

// BenchmarkAppendReplicatedW2of3 appends through routers (QUIC tunnels on
// loopback): replicas a, b at r1 and c at r2, the writer at r1, W=2 of 3.
// Compare records/s with BenchmarkAppendStoreDirect, the same batches
// straight into one local store (no network, no replication).
// GDP_WRITER_INFLIGHT=n sets the writer's MaxInFlight (default 4; 16 was
// no faster on 2026-12-06 at load ~12: the run is CPU-bound, not waiting
// for round trips).
func BenchmarkAppendReplicatedW2of3(b *testing.B) {
	w := newWorld(b)
	r1 := w.router("r1")
	r2 := w.router("r2", r1)
	ra, rb, rc := w.newReplica(r1, "a"), w.newReplica(r1, "b"), w.newReplica(r2, "c")
	writer := w.user(r1, "writer")
	tc := newTestCapsule(b, "bench")
	tc.create(b, writer, 2, ra, rb, rc)
	ctx := context.Background()
	wr, err := writer.NewWriter(ctx, tc.meta.Name(), tc.writer.Key, client.WriterOptions{Cadence: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer wr.Close(ctx)
	data := make([]byte, benchRecord)
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu := time.Now(), cpuTime()
	for i := 0; i < b.N; i++ {
		if _, err := wr.Append(ctx, data); err != nil {
			b.Fatal(err)
		}
	}
	d, err := wr.Flush(ctx)
	if err != nil || !d.Met {
		b.Fatalf("flush: %v %v", err, d)
	}
	el := time.Since(start).Seconds()
	b.ReportMetric(float64(b.N)/el, "records/s")
	b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-µs/record")
	b.ReportMetric(float64(b.N*benchRecord)/el/1e6, "MB/s")
	pulled := 0.0
	for _, r := range []*replica{ra, rb, rc} {
		pulled += r.metric("gdp_capsuled_synced_records_total", "")
	}
	b.ReportMetric(pulled/float64(b.N), "pulled/record")
	b.ReportMetric(float64(writer.Resends.Load())/(float64(b.N)/float64(client.BatchRecords(client.WriterOptions{}, benchRecord))), "resends/batch")
}

// BenchmarkAppendStoreDirect is the baseline: batches as the Writer makes
// them (client.BatchRecords, the Writer's own rule: 220 records of 100
// bytes under one heartbeat with the default options) appended straight
// into a local store, fsync per group commit.
func BenchmarkAppendStoreDirect(b *testing.B) {
	tc := newTestCapsule(b, "bench direct")
	st, err := store.Open(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	c := tc.meta.Name()
	if err := st.Create(ctx, c, tc.meta.Marshal()); err != nil {
		b.Fatal(err)
	}
	w := capsule.NewWriter(c, tc.writer.Key)
	data := make([]byte, benchRecord)
	batch := client.BatchRecords(client.WriterOptions{}, benchRecord)
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu := time.Now(), cpuTime()
	for i := 0; i < b.N; {
		n := min(batch, b.N-i)
		for range n {
			w.Append(data)
		}
		recs, hb := w.Flush()
		if err := st.Append(ctx, c, recs, hb); err != nil {
			b.Fatal(err)
		}
		i += n
	}
	el := time.Since(start).Seconds()
	b.ReportMetric(float64(b.N)/el, "records/s")
	b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-µs/record")
	b.ReportMetric(float64(b.N*benchRecord)/el/1e6, "MB/s")
	b.ReportMetric(float64(batch), "records/batch")
}

// BenchmarkCatchUpAfterRestart: replica c (at r2, a and b at r1) is
// stopped, b.N records are appended with W=2 met by a and b, then c
// restarts over its store. records/s is b.N over the time from the restart
// (re-attaching its tunnel included) until c holds every record, which
// anti-entropy pulls from a and b; streamed-records/s counts from the first
// record c stored (first-ms after the restart; r1, which remembered that c
// had no route while it was down, forgets it at c's first catch-up request,
// so first-ms is no longer up to the negative-cache TTL); cpu-µs/record is the whole process's CPU
// time (routers, a, b, c) over the catch-up. Run with a fixed count, e.g.
//
//	go test -run '^$' -bench CatchUpAfterRestart -benchtime 100000x ./capsuled
//
// GDP_CATCHUP_CPUPROFILE=file writes a CPU profile of the catch-up alone
// (from the restart until c holds every record; not the appends before;
// with -benchtime Nx, N > 1). GDP_SYNC_WINDOW=n sets c's sync_window (1:
// one SYNC at a time, as before range SYNCs).
func BenchmarkCatchUpAfterRestart(b *testing.B) {
	w := newWorld(b)
	r1 := w.router("r1")
	r2 := w.router("r2", r1)
	var conf capsuled.Config
	if n, err := strconv.Atoi(os.Getenv("GDP_SYNC_WINDOW")); err == nil {
		conf.SyncWindow = n
	}
	ra, rb, rc := w.newReplica(r1, "a"), w.newReplica(r1, "b"), w.newReplicaConf(r2, "c", conf)
	writer := w.user(r1, "writer")
	tc := newTestCapsule(b, "bench catch-up")
	tc.create(b, writer, 2, ra, rb, rc)
	ctx := context.Background()
	wr, err := writer.NewWriter(ctx, tc.meta.Name(), tc.writer.Key, client.WriterOptions{Cadence: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer wr.Close(ctx)
	rc.stop()
	eventually(b, 10*time.Second, "r2 dropped c's tunnel", func() bool {
		for _, h := range r2.Router.FIB().Lookup(rc.id.Name) {
			if h.Origin == router.OriginLocal {
				return false
			}
		}
		return true
	})
	data := make([]byte, benchRecord)
	for i := 0; i < b.N; i++ {
		if _, err := wr.Append(ctx, data); err != nil {
			b.Fatal(err)
		}
	}
	if d, err := wr.Flush(ctx); err != nil || !d.Met {
		b.Fatalf("flush: %v %v", err, d)
	}
	b.ReportAllocs()
	b.ResetTimer()
	if f := os.Getenv("GDP_CATCHUP_CPUPROFILE"); f != "" && b.N > 1 {
		out, err := os.Create(f)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.StartCPUProfile(out); err != nil {
			b.Fatal(err)
		}
		defer func() { pprof.StopCPUProfile(); out.Close() }()
	}
	start, cpu := time.Now(), cpuTime()
	w.start(r2, rc)
	attached := time.Since(start)
	var first time.Duration
	var atFirst uint64
	eventually(b, 5*time.Minute, "c caught up", func() bool {
		h := heads(rc)[0]
		if h > 0 && first == 0 {
			first, atFirst = time.Since(start), h
		}
		return h == uint64(b.N)
	})
	el := time.Since(start)
	used := cpuTime() - cpu
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "records/s")
	if el > first {
		b.ReportMetric(float64(uint64(b.N)-atFirst)/(el-first).Seconds(), "streamed-records/s")
	}
	b.ReportMetric(float64(used.Microseconds())/float64(b.N), "cpu-µs/record")
	b.ReportMetric(float64(attached.Milliseconds()), "attach-ms")
	b.ReportMetric(float64(first.Milliseconds()), "first-ms")
	b.ReportMetric(float64(el.Milliseconds()), "catchup-ms")
	// Range SYNC answers c refused as out of line (none expected).
	b.ReportMetric(rc.metric("gdp_capsuled_sync_errors_total", "misaligned"), "misaligned")
}
