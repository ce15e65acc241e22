package capsuled_test

import (
	"context"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/store"
	"github.com/gdpnet/gdpnet/client"
)

const benchRecord = 100 // bytes of data per record

// BenchmarkAppendReplicatedW2of3 appends through routers (QUIC tunnels on
// loopback): replicas a, b at r1 and c at r2, the writer at r1, W=2 of 3.
// Compare records/s with BenchmarkAppendStoreDirect, the same batches
// straight into one local store (no network, no replication).
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
	start := time.Now()
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
	b.ReportMetric(float64(b.N*benchRecord)/el/1e6, "MB/s")
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
	start := time.Now()
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
	b.ReportMetric(float64(b.N*benchRecord)/el/1e6, "MB/s")
	b.ReportMetric(float64(batch), "records/batch")
}
