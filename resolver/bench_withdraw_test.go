package resolver

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// benchWithdraw publishes a record for a node's own name and withdraws it,
// timing the withdrawal only, through withdraw (the conditional one or the
// unconditional one, its baseline: same cluster, same records).
func benchWithdraw(b *testing.B, withdraw func(ctx context.Context, d *DHT, rec *Record) error) {
	c := benchCluster(b)
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := i % benchNodes
		b.StopTimer()
		name, chain := bench.w.capsuleAt(c.routers[k], fmt.Sprintf("withdraw bench %d", k), 24*time.Hour)
		rec := bench.w.location(c.routers[k], name, chain, NextSequence())
		if err := c.nodes[k].Publish(ctx, rec); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		if err := withdraw(ctx, c.nodes[k], rec); err != nil {
			b.Fatalf("withdraw %d: %v", i, err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

// BenchmarkDHTWithdrawIf: a router's conditional withdrawal on the 64-node
// DHT (a whole lookup, then the tombstone put).
func BenchmarkDHTWithdrawIf(b *testing.B) {
	benchWithdraw(b, func(ctx context.Context, d *DHT, rec *Record) error {
		return d.WithdrawIf(ctx, rec.Name, rec.Router())
	})
}

// BenchmarkDHTWithdraw is the baseline: a plain tombstone put — the
// record forgotten, its tombstone (sequence one higher) put as a set of
// one on the closest peers — with no lookup, no gather and no merge.
func BenchmarkDHTWithdraw(b *testing.B) {
	benchWithdraw(b, func(ctx context.Context, d *DHT, rec *Record) error {
		d.forget(rec)
		t, err := rec.Tombstone(d.cfg.Identity.Key, max(NextSequence(), rec.Sequence+1))
		if err != nil {
			return err
		}
		_, err = d.put(ctx, rec.Name, []*Record{t})
		return err
	})
}
